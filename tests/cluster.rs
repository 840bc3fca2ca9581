//! The cluster on real processes: a nats-server (Debian's, with JetStream, on a free loopback
//! port and a temporary store), `aiocr serve` nodes and `aiocr worker`s, talking over NATS as
//! in production (docs/cluster.md). Every wait polls for a condition with a generous bound;
//! nothing asserts on time.
//!
//! The two tests take the machine in turn (each starts five processes that load the models).

mod common;

use aiocr::cluster::wire::{self, WireOutcome, WireResult};
use common::{base64, fixture, ledger_verify, manifest, Client, Server, BIN};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

const START_POINTS: i64 = 100_000;
const ACK_WAIT_MS: u64 = 1500;
/// Deliveries before a worker fails a job unrun (remote_max_deliver).
const MAX_DELIVER: u32 = 2;

/// Settings every node and worker of a test cluster shares: short deadlines so that failures
/// resolve within seconds, one recognition thread each (five processes on two cores).
fn cluster_settings(nats: &str) -> Vec<String> {
    [
        format!("nats_url={nats}"),
        "recognition_cores=0".into(),
        "recognition_wide_threads=1".into(),
        // Long enough for a job queued behind others on a loaded two-core machine.
        "remote_timeout_ms=20000".into(),
        format!("remote_ack_wait_ms={ACK_WAIT_MS}"),
        format!("remote_max_deliver={MAX_DELIVER}"),
        "heartbeat_ms=200".into(),
        "node_ttl_ms=2000".into(),
        "nats_reconnect_max_ms=300".into(),
        "nats_request_timeout_ms=2000".into(),
        // A forwarded charge waits 2 + 3 s for its acknowledgement: room for a loaded machine.
        "forward_ack_timeout_ms=3000".into(),
    ]
    .to_vec()
}

/// A generous bound on a node's stop (drain_timeout_ms + nats_stop_grace_ms, and the time a
/// loaded machine takes to flush): a node that never exits fails the test.
const STOP_BOUND: Duration = Duration::from_secs(60);

/// Polls `condition` every 20 ms, at most `bound` times (a bound, never an assertion on time).
fn wait_until(what: &str, bound: u32, mut condition: impl FnMut() -> bool) {
    for _ in 0..bound {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("waited in vain for {what}");
}

/// A nats-server with JetStream on a free loopback port; killed when dropped.
struct Nats {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl Nats {
    fn start() -> Nats {
        let mut nats = Nats::reserve();
        nats.launch();
        nats
    }

    /// A free port and a store for a nats-server not started yet: its URL points at nothing
    /// until `launch`.
    fn reserve() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Nats {
            child: None,
            port,
            store: common::fresh_data_dir("nats"),
        }
    }

    /// SIGSTOP or SIGCONT: a stopped nats-server keeps its connections open and answers
    /// nothing (as a server that hangs, or a link that drops every packet).
    fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }

    fn launch(&mut self) {
        // As tuning/nats/nats-server.conf, on loopback: JetStream on disk, and messages
        // large enough for a slide job of the default max_image_bytes.
        let config = self.store.join("nats.conf");
        let text = format!(
            "listen: 127.0.0.1:{}\nmax_payload: 2MB\njetstream {{\n  store_dir: {:?}\n}}\n",
            self.port,
            self.store.join("js")
        );
        std::fs::write(&config, text).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("nats-server to listen", 3000, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// A nats-server without JetStream (as a plain `nats-server` starts).
    fn start_without_jetstream() -> Nats {
        let mut nats = Nats::start();
        nats.kill9();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &nats.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        nats.child = Some(child);
        let port = nats.port;
        wait_until("nats-server to listen", 3000, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        let _ = child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// An `aiocr worker`; killed when dropped.
struct Worker {
    child: Option<Child>,
    name: String,
    settings: Vec<String>,
}

impl Worker {
    fn start(name: &str, settings: &[String]) -> Worker {
        let mut worker = Worker {
            child: None,
            name: name.to_string(),
            settings: settings.to_vec(),
        };
        worker.launch();
        worker
    }

    fn launch(&mut self) {
        let mut command = Command::new(BIN);
        command
            .args(["worker", "--name", &self.name, "--model-dir"])
            .arg(common::model_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for setting in &self.settings {
            command.args(["--set", setting]);
        }
        let mut child = command.spawn().expect("aiocr worker");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("aiocr worker:"));
        assert!(ready, "the worker exited before it was ready");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        let _ = child.wait();
    }

    /// SIGSTOP or SIGCONT: a stopped worker keeps the jobs it holds (and the ones its
    /// pending pull requests receive) but tells JetStream nothing more about them.
    fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A node of the cluster: `node_id`, `shards`, the shared settings, remote recognition.
fn start_node(node_id: u16, shards: u16, nats: &Nats, admin: Option<&str>) -> Server {
    start_node_with(node_id, shards, nats, admin, &[])
}

/// `start_node` with some of the shared settings replaced (`key=value` each).
fn start_node_with(
    node_id: u16,
    shards: u16,
    nats: &Nats,
    admin: Option<&str>,
    replaced: &[&str],
) -> Server {
    let data_dir = common::fresh_data_dir(&format!("node{node_id}"));
    if let Some(admin) = admin {
        // A node whose demo names another node has: its admin made by the operator command,
        // claimed across the platform first.
        let status = Command::new(BIN)
            .args(["user", "add", "--role", "admin", "--username", admin])
            .args(["--password", &format!("password-{admin}")])
            .args([
                "--shards",
                &shards.to_string(),
                "--node-id",
                &node_id.to_string(),
            ])
            .args(["--nats", &nats.url(), "--data"])
            .arg(&data_dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut settings = cluster_settings(&nats.url());
    for setting in replaced {
        let key = setting.split('=').next().unwrap();
        settings.retain(|kept| kept.split('=').next() != Some(key));
        settings.push(setting.to_string());
    }
    settings.extend([
        format!("node_id={node_id}"),
        "recognition_split=remote".into(),
        "cache_entries=0".into(),
        "rate_limit_per_sec=100000".into(),
        "rate_limit_burst=100000".into(),
    ]);
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let server = Server::start_in(data_dir, shards, &settings);
    server.wait_for_log("nats: ready");
    server
}

fn metric(server: &Server, name: &str) -> f64 {
    server
        .metrics()
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn upload(server: &Server, token: &str, file: &str, model: &str, wait: bool) -> serde_json::Value {
    let body = json!({ "file": base64(&fixture(file)), "model": model }).to_string();
    let path = format!("/v2/decode/upload-base64?wait={}", u8::from(wait));
    let answer = server.client().post_json(&path, Some(token), &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data"].clone()
}

fn result(server: &Server, token: &str, id: &str) -> serde_json::Value {
    let mut client = server.client();
    common::poll_until_finished(&mut client, token, id)
}

/// Client threads uploading without waiting, one per (port, token), until stopped; each
/// remembers the ids the node acknowledged. A connection that breaks (a node killed) is
/// opened again.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
    acknowledged: Arc<std::sync::atomic::AtomicUsize>,
}

impl Load {
    fn start(targets: &[(u16, String)]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
        let threads = targets
            .iter()
            .map(|(port, token)| {
                let (port, auth) = (*port, format!("Bearer {token}"));
                let (stop, acknowledged, body) = (stop.clone(), acknowledged.clone(), body.clone());
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    let mut client: Option<Client> = None;
                    while !stop.load(Ordering::SeqCst) {
                        let Some(connected) = client.as_mut() else {
                            client = TcpStream::connect(("127.0.0.1", port))
                                .ok()
                                .map(Client::over);
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        let headers = [
                            ("Authorization", auth.as_str()),
                            ("Content-Type", "application/json"),
                        ];
                        let path = "/v2/decode/upload-base64";
                        match connected.try_request("POST", path, &headers, body.as_bytes()) {
                            None => client = None,
                            Some(answer) if answer.status == 200 => {
                                ids.push(answer.json()["data"]["id"].as_str().unwrap().to_string());
                                acknowledged.fetch_add(1, Ordering::SeqCst);
                            }
                            // Busy (5001) while a node is away: nothing charged.
                            Some(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                        // Paced so that jobs queue up without flooding two cores.
                        std::thread::sleep(Duration::from_millis(15));
                    }
                    ids
                })
            })
            .collect();
        Load {
            stop,
            threads,
            acknowledged,
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits until `more` further uploads were acknowledged.
    fn wait_for(&self, more: usize) {
        let target = self.acknowledged() + more;
        wait_until("acknowledged uploads", 3000, || {
            self.acknowledged() >= target
        });
    }

    /// Stops the clients; the acknowledged ids of each target, in order.
    fn stop(self) -> Vec<Vec<String>> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect()
    }
}

/// Every acknowledged upload is done or refunded; the user was charged exactly for the done
/// ones (`cut`: plus at most one upload whose answer a killed node never sent).
fn check_user(server: &Server, token: &str, ids: &[String], spent_before: i64, cut: bool) -> i64 {
    let mut done = 0;
    for id in ids {
        let data = result(server, token, id);
        let status = data["status"].as_str().unwrap().to_string();
        assert!(status == "done" || status == "failed", "{data}");
        done += i64::from(status == "done");
    }
    let (points, reserved) = server.balance(token);
    assert_eq!(reserved, 0);
    let spent = START_POINTS - points - spent_before;
    let extra = i64::from(cut);
    assert!(
        (done..=done + extra).contains(&spent),
        "charged {spent} for {done} done uploads"
    );
    START_POINTS - points
}

/// Sends a result to a node as a worker would, and returns the node's answer.
fn send_result(nats: &Nats, node: u16, result: &WireResult) -> String {
    on_nats(nats, |client| async move {
        let subject = format!("aiocr.results.{node}");
        let answer = client
            .request(subject, wire::encode_result(result).into())
            .await
            .unwrap();
        String::from_utf8(answer.payload.to_vec()).unwrap()
    })
}

/// Runs `work` with a client of `nats` of its own (a runtime of its own, as a test thread
/// has none).
fn on_nats<T, F: std::future::Future<Output = T>>(
    nats: &Nats,
    work: impl FnOnce(async_nats::Client) -> F,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        work(client).await
    })
}

/// The consumers of JetStream stream `name`, as nats-server counts them.
fn stream_consumers(nats: &Nats, name: &str) -> usize {
    on_nats(nats, |client| async move {
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(name).await.unwrap();
        stream.info().await.unwrap().state.consumer_count
    })
}

/// Writes a claim of `username` for `node` straight into the bucket, without the create's
/// check (as a create the server let through by mistake would be stored); returns how the
/// write went and the claim the bucket holds after it.
fn second_claim_write(nats: &Nats, username: &str, node: u16) -> (Result<(), String>, String) {
    on_nats(nats, |client| async move {
        let js = async_nats::jetstream::new(client);
        let bucket = aiocr::cluster::names::USERNAMES_BUCKET;
        let key = aiocr::cluster::names::username_key(username);
        let subject = format!("$KV.{bucket}.{key}");
        let written = async {
            let ack = js.publish(subject, node.to_string().into()).await?;
            ack.await.map(|_| ())
        };
        let written = written.await.map_err(|e| e.to_string());
        let store = js.get_key_value(bucket).await.unwrap();
        let stored = store.get(&key).await.unwrap().expect("claimed");
        (written, String::from_utf8(stored.to_vec()).unwrap())
    })
}

#[test]
fn two_nodes_and_two_workers_serve_every_user_from_either_node() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let nats = Nats::start();
    let settings = cluster_settings(&nats.url());
    let mut node_a = start_node(1, 1, &nats, None);
    let mut node_b = start_node(2, 2, &nats, Some("admin-b"));
    let workers = [
        Worker::start("w1", &settings),
        Worker::start("w2", &settings),
    ];
    let admin_a = node_a.admin_token();
    let admin_b = node_b.login("admin-b", "password-admin-b");
    assert_ne!(
        node_a.demo_password, "",
        "the first node has the demo users"
    );

    // Usernames are unique across nodes, under concurrent creation of the same names.
    let names: Vec<String> = (0..8).map(|i| format!("both{i}")).collect();
    let creators: Vec<_> = names
        .iter()
        .flat_map(|name| {
            [
                (node_a.port, admin_a.clone(), 1u16),
                (node_b.port, admin_b.clone(), 2),
            ]
            .map(|t| (name.clone(), t))
        })
        .map(|(name, (port, admin, node))| {
            std::thread::spawn(move || {
                let body =
                    format!(r#"{{"username":"{name}","password":"password-{name}","points":10}}"#);
                let answer =
                    Client::connect(port).post_json("/v2/admin/users", Some(&admin), &body);
                (name, node, answer.status, answer.code())
            })
        })
        .collect();
    let mut created: HashMap<String, u16> = HashMap::new();
    for creator in creators {
        let (name, node, status, code) = creator.join().unwrap();
        match status {
            200 => assert!(created.insert(name, node).is_none(), "created twice"),
            _ => assert_eq!(code, 1001, "the other node refuses the name"),
        }
    }
    assert_eq!(created.len(), names.len(), "every name created once");
    // Whatever the server's check of a create does under concurrency (nats-server before
    // 2.9.21 could let two through on a replicated stream), the bucket itself stores no
    // second claim of a name: a plain write over one is refused, the claim stays.
    let (name, node) = created.iter().next().unwrap();
    let (overwrite, stored) = second_claim_write(&nats, name, if *node == 1 { 2 } else { 1 });
    assert!(overwrite.is_err(), "a second claim of {name} was stored");
    assert_eq!(stored, node.to_string());
    for (name, node) in &created {
        for entry in [&node_a, &node_b] {
            let answer = entry.client().post_json(
                "/v2/user/login",
                None,
                &format!(r#"{{"username":"{name}","password":"password-{name}"}}"#),
            );
            assert_eq!(answer.status, 200, "{name} through {}", entry.port);
            let user_id: u64 = answer.json()["data"]["user_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(aiocr::store::ids::node_of(user_id), *node);
        }
    }

    // Users of both nodes, uploading through both nodes, recognised by the workers.
    let (_, user_a) = node_a.create_user(&admin_a, "user-a", START_POINTS, "user");
    let (_, user_b) = node_b.create_user(&admin_b, "user-b", START_POINTS, "user");
    // user-a logs in through node B, and works through it.
    let user_a_via_b = node_b.login("user-a", "password-user-a");
    let fixtures: Vec<_> = manifest().into_iter().take(24).collect();
    let mut done_ids: Vec<(bool, String)> = Vec::new();
    for (index, (file, old, beta)) in fixtures.iter().enumerate() {
        let (model, expected) = if index % 3 == 0 {
            ("beta", beta)
        } else {
            ("old", old)
        };
        let (entry, token, is_a) = match index % 4 {
            0 => (&node_a, &user_a, true),
            1 => (&node_b, &user_a_via_b, true),
            2 => (&node_a, &user_b, false),
            _ => (&node_b, &user_b, false),
        };
        let data = upload(entry, token, file, model, true);
        assert_eq!(data["status"], "done", "{file}: {data}");
        assert_eq!(&data["result"], expected.as_str(), "{file} ({model})");
        done_ids.push((is_a, data["id"].as_str().unwrap().to_string()));
    }
    let remote_results = |server: &Server| metric(server, "aiocr_worker_results_total{");
    assert_eq!(remote_results(&node_a) + remote_results(&node_b), 24.0);
    assert_eq!(metric(&node_a, "aiocr_remote_fallbacks_total"), 0.0);
    assert_eq!(metric(&node_b, "aiocr_remote_fallbacks_total"), 0.0);
    assert!(metric(&node_b, "aiocr_node_forwarded_out_total") >= 6.0);
    assert_eq!(node_a.balance(&user_a), (START_POINTS - 12, 0));
    assert_eq!(node_b.balance(&user_a_via_b), (START_POINTS - 12, 0));
    assert_eq!(
        node_a.balance(&user_b),
        (START_POINTS - 12, 0),
        "user-b through node A"
    );

    // An API key of user-a, made and used through node B: the head names another node's
    // user (a body follows, authenticated from the head), the body names it (2captcha's
    // key), the key alone in the query.
    let key = node_b
        .client()
        .post_json("/v2/user/apikey", Some(&user_a_via_b), "{}")
        .json()["data"]["api_key"]
        .as_str()
        .expect("a key made through node B")
        .to_string();
    let data = upload(&node_b, &key, "0001.png", "old", true);
    assert_eq!(
        (&data["status"], &data["result"]),
        (&json!("done"), &json!("lspznk"))
    );
    let fields = [("key", key.as_str()), ("method", "post"), ("json", "1")];
    let (content_type, body) = common::multipart("file", &fixture("0001.png"), &fields);
    let submitted = node_b.client().post("/in.php", None, &content_type, &body);
    assert_eq!(submitted.json()["status"], 1, "{}", submitted.text());
    let balance = node_b
        .client()
        .get(&format!("/res.php?key={key}&action=getbalance"), None);
    assert_eq!(balance.status, 200, "{}", balance.text());
    let spent_by_key = 2;
    wait_until("the 2captcha upload to finish", 3000, || {
        node_a.balance(&user_a).1 == 0
    });
    assert_eq!(
        node_a.balance(&user_a),
        (START_POINTS - 12 - spent_by_key, 0)
    );
    let user_a_spent = 12 + spent_by_key;

    // A result that arrives twice is applied once: a second, different one changes nothing.
    let (_, first_id) = done_ids.iter().find(|(is_a, _)| *is_a).unwrap();
    let before = result(&node_a, &user_a, first_id);
    let duplicate = WireResult {
        upload_id: first_id.parse().unwrap(),
        node: 1,
        shard: 0,
        outcome: WireOutcome::Text {
            text: "not-the-answer".into(),
            confidence: None,
        },
        queued_us: 1,
        recognize_us: 1,
        batch_size: 1,
        worker: "test".into(),
        delivered: 2,
    };
    assert_eq!(send_result(&nats, 1, &duplicate), "ok");
    assert_eq!(result(&node_a, &user_a, first_id), before);
    assert_eq!(node_a.balance(&user_a), (START_POINTS - user_a_spent, 0));
    assert!(metric(&node_a, "aiocr_remote_stale_results_total") >= 1.0);

    // /v2/servers lists both live nodes, on either node.
    let servers = node_b.client().get("/v2/servers", None).json()["data"]["servers"].clone();
    let ids: Vec<&str> = servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2"], "{servers}");
    // The heartbeats (one every 200 ms a node here) read the bucket without a consumer: one
    // a beat would be memory nats-server 2.9 never gives back (src/cluster/bridge.rs).
    assert_eq!(stream_consumers(&nats, "KV_aiocr_nodes"), 0);

    // A forwarded upload whose answer the forwarding node does not receive in time: node B
    // paused (SIGSTOP) once it forwarded user-a's upload (wait=1) to node A, for longer
    // than its forward deadline. Node A answers, no acknowledgement comes, and it gives the
    // charge back; node B, resumed, answers its client 5001, and that is true.
    for worker in &workers {
        worker.signal(libc::SIGSTOP);
    }
    let forwarded_before = metric(&node_a, "aiocr_node_forwarded_in_total");
    let paused_upload = forwarded_upload_in_background(node_b.port, user_a_via_b.clone());
    wait_until("node A to receive the forwarded upload", 3000, || {
        metric(&node_a, "aiocr_node_forwarded_in_total") > forwarded_before
    });
    node_b.signal(libc::SIGSTOP);
    for worker in &workers {
        worker.signal(libc::SIGCONT);
    }
    wait_until(
        "node A to give the unacknowledged charge back",
        3000,
        || metric(&node_a, "aiocr_forward_withdrawn_total") >= 1.0,
    );
    node_b.signal(libc::SIGCONT);
    assert_eq!(paused_upload.join().unwrap(), (503, 5001));
    assert_eq!(metric(&node_a, "aiocr_forward_unacknowledged_total"), 1.0);
    assert_eq!(
        node_a.balance(&user_a),
        (START_POINTS - user_a_spent, 0),
        "a 5001 costs nothing"
    );

    // NATS hangs (a paused nats-server: connections open, nothing answered). Every wait on it
    // ends at nats_request_timeout_ms: a request forwarded to another node, a username
    // claimed; both answer 5001 instead of hanging. Then both nodes stop on SIGTERM.
    nats.signal(libc::SIGSTOP);
    let forwarded = node_b.client().get("/v2/user/point", Some(&user_a_via_b));
    assert_eq!(
        (forwarded.status, forwarded.code()),
        (503, 5001),
        "{}",
        forwarded.text()
    );
    let body = r#"{"username":"while-paused","password":"password-x","points":1}"#;
    let claimed = node_b
        .client()
        .post_json("/v2/admin/users", Some(&admin_b), body);
    assert_eq!(claimed.code(), 5001, "{}", claimed.text());
    for node in [&mut node_a, &mut node_b] {
        assert_eq!(node.terminate_within(STOP_BOUND), Some(0), "stopped");
        let (code, output) = ledger_verify(&node.data_dir);
        assert_eq!(code, 0, "{output}");
    }
    nats.signal(libc::SIGCONT);
}

/// A user's login through `server`: its status and, on success, the node of its user id.
fn login_node(server: &Server, name: &str) -> (u16, Option<u16>) {
    let body = format!(r#"{{"username":"{name}","password":"password-{name}"}}"#);
    let answer = server.client().post_json("/v2/user/login", None, &body);
    let node = (answer.status == 200).then(|| {
        let user_id = answer.json()["data"]["user_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        aiocr::store::ids::node_of(user_id)
    });
    (answer.status, node)
}

#[test]
fn a_nats_that_lost_its_store_gets_the_names_back_from_the_nodes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut nats = Nats::start();
    let mut node_a = start_node(1, 2, &nats, None);
    let mut node_b = start_node(2, 1, &nats, Some("admin-b"));
    let admin_a = node_a.admin_token();
    let admin_b = node_b.login("admin-b", "password-admin-b");
    for name in ["kept", "contested"] {
        node_a.create_user(&admin_a, name, 10, "user");
    }

    // NATS loses its store (killed, its files thrown away, started empty) while node A is
    // paused, and node B takes one of node A's names before node A is back.
    node_a.signal(libc::SIGSTOP);
    nats.kill9();
    std::fs::remove_dir_all(nats.store.join("js")).unwrap();
    nats.launch();
    let body = r#"{"username":"contested","password":"password-contested","points":1}"#;
    wait_until("node B to take the name", 3000, || {
        let answer = node_b
            .client()
            .post_json("/v2/admin/users", Some(&admin_b), body);
        answer.status == 200
    });
    node_a.signal(libc::SIGCONT);

    // Node A claims its names again: the one still free is its own again, everywhere; the
    // one node B took is a conflict, reported and not shared.
    let line = node_a.wait_for_log("CONFLICT: username");
    assert!(
        line.contains("\"contested\"") && line.contains("node 2"),
        "{line}"
    );
    wait_until("the conflict in /metrics", 3000, || {
        metric(&node_a, "aiocr_username_conflicts") == 1.0
    });
    assert_eq!(login_node(&node_b, "kept"), (200, Some(1)));
    assert_eq!(login_node(&node_b, "contested"), (200, Some(2)));
    assert_eq!(
        login_node(&node_a, "contested").0,
        200,
        "node A's user still logs in there"
    );
    let recorded = std::fs::read_to_string(node_a.data_dir.join("username-conflicts")).unwrap();
    assert_eq!(recorded, "contested\t2\n");
    assert!(
        metric(&node_a, "aiocr_usernames_reclaimed_total") >= 3.0,
        "demo, admin, kept"
    );
    for node in [&mut node_a, &mut node_b] {
        assert_eq!(node.terminate_within(STOP_BOUND), Some(0), "stopped");
        let (code, output) = ledger_verify(&node.data_dir);
        assert_eq!(code, 0, "{output}");
    }
}

/// The test as a worker that dies holding a job: it takes text jobs of model `old` from
/// the shared consumer and never acknowledges them.
struct DyingWorker {
    runtime: tokio::runtime::Runtime,
    consumer: async_nats::jetstream::consumer::PullConsumer,
}

impl DyingWorker {
    fn new(nats: &Nats) -> DyingWorker {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let settings = cluster_settings(&nats.url());
        let flags: Vec<(&str, String)> = settings
            .iter()
            .map(|s| s.split_once('=').unwrap())
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let config = aiocr::config::Config::load(None, &[], &flags).unwrap();
        let consumer = runtime.block_on(async {
            let client = async_nats::connect(nats.url()).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let stream = aiocr::cluster::nats::ensure_jobs_stream(&js, &config)
                .await
                .unwrap();
            let subject = "aiocr.jobs.ocr.old";
            let consumer_config = aiocr::cluster::worker::consumer_config(&config, subject);
            let name = aiocr::cluster::names::consumer_name(subject);
            stream
                .get_or_create_consumer(&name, consumer_config)
                .await
                .unwrap()
        });
        DyingWorker { runtime, consumer }
    }

    /// Takes upload `upload_id`'s job at each delivery until JetStream has delivered it
    /// `MAX_DELIVER` times, and lets each lapse: the next worker to get it must fail it
    /// unrun. The first delivery may have gone to a pull request of a worker killed a moment
    /// before: nats-server hands a job to any pull request whose reply subject still has a
    /// subscriber, and drops a killed client's ones only once it has handled the closed
    /// connection (on a loaded machine, after the job came). That delivery counts as much as
    /// one to this worker (the job comes again after the ack deadline), so this takes them
    /// in whatever order they come, one at a time and never past the limit.
    fn take_every_delivery(&self, upload_id: u64) {
        let mut last = 0;
        while last < i64::from(MAX_DELIVER) {
            let (id, delivered) = self.take_one();
            assert_eq!(id, upload_id, "the only job of its subject");
            assert!(
                delivered > last && delivered <= i64::from(MAX_DELIVER),
                "delivery {delivered} after {last}: the consumer stops at MAX_DELIVER + 1"
            );
            last = delivered;
        }
    }

    /// Waits until every job delivered on the consumer is acknowledged (a worker answered
    /// by its node acknowledges a moment later: killed before that, its job would come
    /// once more, to whoever pulls next).
    fn wait_for_acknowledgements(&self) {
        wait_until("the jobs to be acknowledged", 3000, || {
            let info = self.runtime.block_on(self.consumer.get_info()).unwrap();
            info.num_ack_pending == 0
        });
    }

    /// Takes the next job and lets it lapse; returns its upload id and delivery count.
    fn take_one(&self) -> (u64, i64) {
        use futures_util::StreamExt;
        self.runtime.block_on(async {
            let mut batch = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(60))
                .messages()
                .await
                .unwrap();
            let message = batch.next().await.expect("a job").unwrap();
            let delivered = message.info().unwrap().delivered;
            let (header, _) = wire::decode_job(&message.payload).unwrap();
            (header.upload_id, delivered)
        })
    }
}

/// A synchronous upload (0001.png, wait=1) sent to node B with a token of a user of node A,
/// so node B forwards it; the thread returns the answer's status and code.
fn forwarded_upload_in_background(
    port_b: u16,
    token: String,
) -> std::thread::JoinHandle<(u16, i64)> {
    std::thread::spawn(move || {
        let body = json!({ "file": base64(&fixture("0001.png")), "model": "old" }).to_string();
        let path = "/v2/decode/upload-base64?wait=1";
        let answer = Client::connect(port_b).post_json(path, Some(&token), &body);
        (answer.status, answer.code())
    })
}

/// Node B forwards user-a's upload (wait=1) to node A, which is paused (SIGSTOP) until node
/// B has sent it and is paused in turn, so that no acknowledgement comes; node A is killed
/// once the upload is done and charged (and that is on disk), restarted, and must give the
/// charge back when its
/// window passes (node B still paused: longer than its own request timeout). Then node B
/// resumes and refuses its client. Returns node A, restarted.
fn forwarded_charge_across_a_kill(
    mut node_a: Server,
    node_b: &Server,
    user_a: &str,
    admin_a: &str,
) -> Server {
    let user_a_via_b = node_b.login("user-a", "password-user-a");
    let (points, _) = node_a.balance(user_a);
    let received = metric(&node_a, "aiocr_node_forwarded_in_total");
    let sent = metric(node_b, "aiocr_node_forwarded_out_total");
    node_a.signal(libc::SIGSTOP);
    let paused_upload = forwarded_upload_in_background(node_b.port, user_a_via_b);
    wait_until("node B to forward the upload", 3000, || {
        metric(node_b, "aiocr_node_forwarded_out_total") > sent
    });
    node_b.signal(libc::SIGSTOP);
    node_a.signal(libc::SIGCONT);
    wait_until("node A to receive the forwarded upload", 3000, || {
        metric(&node_a, "aiocr_node_forwarded_in_total") > received
    });
    wait_until("node A to finish the forwarded upload", 3000, || {
        node_a.balance(user_a) == (points - 1, 0)
    });
    // A write node A answers once it is durable (its one shard's group commit): the
    // upload's result, applied before it, is on disk too; killed before that, the upload
    // would be pending at the start and voided, whatever its acknowledgement.
    node_a.create_user(admin_a, "flushed", 0, "user");
    node_a.kill9();
    let node_a = node_a.restart();
    node_a.wait_for_log("nats: ready");
    wait_until("node A to give the charge back", 3000, || {
        node_a.balance(user_a) == (points, 0)
    });
    node_b.signal(libc::SIGCONT);
    assert_eq!(
        paused_upload.join().unwrap(),
        (503, 5001),
        "node B, paused before the answer came, refuses its client: free"
    );
    assert_eq!(node_a.balance(user_a), (points, 0), "given back once");
    node_a
}

#[test]
fn kills_of_workers_nodes_and_nats_finish_or_refund_every_upload_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut nats = Nats::start();
    let settings = cluster_settings(&nats.url());
    // Node A's forwarded charges wait 2 + 8 s for their acknowledgement: time enough, on a
    // loaded machine, to finish a forwarded upload and kill node A inside the window.
    let mut node_a = start_node_with(1, 1, &nats, None, &["forward_ack_timeout_ms=8000"]);
    let mut node_b = start_node(2, 2, &nats, Some("admin-b"));
    let admin_a = node_a.admin_token();
    let admin_b = node_b.login("admin-b", "password-admin-b");
    let (_, user_a) = node_a.create_user(&admin_a, "user-a", START_POINTS, "user");
    let (_, user_b) = node_b.create_user(&admin_b, "user-b", START_POINTS, "user");

    // A worker dies holding a job (the test plays it): JetStream delivers the job again after
    // the ack deadline, a live worker runs it, the upload is done and charged once. No other
    // pull request was ever open on the consumer: the first delivery is the test's.
    let dying = DyingWorker::new(&nats);
    let id = upload(&node_a, &user_a, "0001.png", "old", false)["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(dying.take_one(), (id.parse().unwrap(), 1));
    let mut w1 = Worker::start("w1", &settings);
    let data = result(&node_a, &user_a, &id);
    assert_eq!(
        (&data["status"], &data["result"]),
        (&json!("done"), &json!("lspznk"))
    );
    assert_eq!(
        node_a.balance(&user_a),
        (START_POINTS - 1, 0),
        "charged once"
    );
    // At least the one redelivery; w1 starved past its in-progress period on a loaded
    // machine gets the job once more, and that copy's result changes nothing.
    assert!(metric(&node_a, "aiocr_remote_redelivered_total") >= 1.0);

    // A job delivered too often (every holder died) is failed unrun and refunded.
    dying.wait_for_acknowledgements();
    w1.kill9();
    let id = upload(&node_a, &user_a, "0001.png", "old", false)["id"]
        .as_str()
        .unwrap()
        .to_string();
    dying.take_every_delivery(id.parse().unwrap());
    w1.launch();
    let data = result(&node_a, &user_a, &id);
    assert_eq!(data["status"], "failed", "{data}");
    assert!(data["error"]
        .as_str()
        .unwrap()
        .contains("abandoned after 2 deliveries"));
    assert_eq!(node_a.balance(&user_a), (START_POINTS - 1, 0));
    let (mut spent_a, mut spent_b) = (1, 0);

    // kill -9 of a worker in the middle of its batches, under load on both nodes.
    let mut w2 = Worker::start("w2", &settings);
    let load = Load::start(&[(node_a.port, user_a.clone()), (node_b.port, user_b.clone())]);
    load.wait_for(40);
    let w2_results = || {
        metric(&node_a, "aiocr_worker_results_total{worker=\"w2\"}")
            + metric(&node_b, "aiocr_worker_results_total{worker=\"w2\"}")
    };
    wait_until("w2 to take jobs", 3000, || w2_results() >= 5.0);
    let redelivered = || {
        metric(&node_a, "aiocr_remote_redelivered_total")
            + metric(&node_b, "aiocr_remote_redelivered_total")
    };
    // Frozen first, so that it surely holds jobs when it dies: the jobs it holds come to
    // w1 after their ack deadline (counted as redelivered). Should it have held none at
    // that instant (between two pulls), it runs on and is frozen again.
    let before = redelivered();
    let mut holds_jobs = false;
    for _ in 0..10 {
        w2.signal(libc::SIGSTOP);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !holds_jobs && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            holds_jobs = redelivered() > before;
        }
        if holds_jobs {
            break;
        }
        w2.signal(libc::SIGCONT);
        load.wait_for(10);
    }
    assert!(holds_jobs, "w2 never held a job when frozen");
    w2.kill9();
    load.wait_for(40);
    w2.launch();
    load.wait_for(20);
    let ids = load.stop();
    spent_a = check_user(&node_a, &user_a, &ids[0], spent_a, false);
    spent_b = check_user(&node_b, &user_b, &ids[1], spent_b, false);

    // kill -9 of an owner inside the acknowledgement window of a forwarded charge: node B
    // forwards user-a's upload (wait=1) to node A and is paused (SIGSTOP) before it can
    // acknowledge the answer; node A, killed once the upload is done and charged, finds the
    // charge on its disk at its start and gives it back when its window has passed (at the
    // start, or by the sweep if some of it is left): exactly once.
    node_a = forwarded_charge_across_a_kill(node_a, &node_b, &user_a, &admin_a);

    // kill -9 of a node under load: its acknowledged uploads end done or refunded (voided at
    // its start; the workers' late results change nothing), and it serves again.
    let load = Load::start(&[(node_a.port, user_a.clone()), (node_b.port, user_b.clone())]);
    load.wait_for(40);
    node_b.kill9();
    load.wait_for(20);
    let ids = load.stop();
    node_b = node_b.restart();
    node_b.wait_for_log("nats: ready");
    spent_a = check_user(&node_a, &user_a, &ids[0], spent_a, false);
    spent_b = check_user(&node_b, &user_b, &ids[1], spent_b, true);
    let load = Load::start(&[(node_b.port, user_b.clone())]);
    load.wait_for(20);
    let ids = load.stop();
    spent_b = check_user(&node_b, &user_b, &ids[0], spent_b, false);

    // kill -9 of nats-server under load: the nodes keep serving on their own threads, then
    // reconnect by themselves and publish again once it is back.
    let load = Load::start(&[(node_a.port, user_a.clone()), (node_b.port, user_b.clone())]);
    load.wait_for(40);
    nats.kill9();
    wait_until("the nodes to see NATS gone", 3000, || {
        metric(&node_a, "aiocr_nats_connected") == 0.0
            && metric(&node_b, "aiocr_nats_connected") == 0.0
    });
    load.wait_for(40);
    nats.launch();
    wait_until("the nodes to reconnect", 3000, || {
        metric(&node_a, "aiocr_nats_connected") == 1.0
            && metric(&node_b, "aiocr_nats_connected") == 1.0
    });
    let published = metric(&node_a, "aiocr_remote_published_total");
    load.wait_for(40);
    wait_until("node A to publish again", 3000, || {
        metric(&node_a, "aiocr_remote_published_total") > published
    });
    let ids = load.stop();
    check_user(&node_a, &user_a, &ids[0], spent_a, false);
    check_user(&node_b, &user_b, &ids[1], spent_b, false);

    for node in [&mut node_a, &mut node_b] {
        assert_eq!(node.terminate(), 0);
        let (code, output) = ledger_verify(&node.data_dir);
        assert_eq!(code, 0, "{output}");
    }
}

/// A node alone on `nats` (split remote, no worker: its jobs wait in the stream until the
/// stop voids them), with short waits on NATS and a short drain. Its `nats_url` lists a
/// second server where nothing ever listens, as a three-server list would one that is down.
fn lone_node_settings(nats: &Nats) -> Vec<String> {
    let never_there = Nats::reserve();
    let servers = format!("{},{}", never_there.url(), nats.url());
    let mut settings = cluster_settings(&servers);
    settings.extend([
        "node_id=1".into(),
        "recognition_split=remote".into(),
        "cache_entries=0".into(),
        "nats_request_timeout_ms=1000".into(),
        "drain_timeout_ms=2000".into(),
        "nats_stop_grace_ms=1000".into(),
    ]);
    settings
}

/// SIGTERM under load: the node exits with 0 (within a generous bound: a node that never
/// exits fails), and its data directory is free again and verifies clean.
fn stop_under_load(node: &mut Server, load: Load) -> Vec<String> {
    assert_eq!(node.terminate_within(STOP_BOUND), Some(0), "stopped");
    let ids = load.stop().remove(0);
    let (code, output) = ledger_verify(&node.data_dir);
    assert_eq!(code, 0, "{output}");
    ids
}

#[test]
fn a_node_stops_on_sigterm_whatever_nats_does() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut nats = Nats::reserve();
    let settings = lone_node_settings(&nats);
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();

    // nats_url points at nothing: the start gives up claiming the demo names at its bound,
    // and the node stops at once.
    let mut node = Server::start(1, &settings);
    node.wait_for_log("no demo users here");
    assert_eq!(node.terminate_within(STOP_BOUND), Some(0), "stopped");
    let status = Command::new(BIN)
        .args([
            "user",
            "add",
            "--username",
            "user-s",
            "--password",
            "password-user-s",
        ])
        .args([
            "--points",
            &START_POINTS.to_string(),
            "--node-id",
            "1",
            "--data",
        ])
        .arg(&node.data_dir)
        .status()
        .unwrap();
    assert!(status.success());

    // Still nothing there, under load (the jobs run locally).
    let mut node = node.restart();
    let token = node.login("user-s", "password-user-s");
    let load = Load::start(&[(node.port, token.clone())]);
    load.wait_for(20);
    let mut ids = stop_under_load(&mut node, load);

    // NATS up, then paused under load: published jobs wait in the stream, later ones run
    // locally once their publish is not acknowledged; SIGTERM meanwhile.
    nats.launch();
    let mut node = node.restart();
    node.wait_for_log("nats: ready");
    let load = Load::start(&[(node.port, token.clone())]);
    load.wait_for(20);
    let published = metric(&node, "aiocr_remote_published_total");
    assert!(published > 0.0, "jobs went to NATS");
    nats.signal(libc::SIGSTOP);
    // Its heartbeat unanswered, the node sends no more jobs there.
    node.wait_for_log("nats: not answering");
    load.wait_for(10);
    ids.extend(stop_under_load(&mut node, load));
    nats.signal(libc::SIGCONT);

    // NATS killed under load, SIGTERM meanwhile.
    let mut node = node.restart();
    node.wait_for_log("nats: ready");
    let load = Load::start(&[(node.port, token.clone())]);
    load.wait_for(20);
    nats.kill9();
    load.wait_for(10);
    ids.extend(stop_under_load(&mut node, load));

    // Every upload acknowledged in the three runs ended done or refunded, charged once.
    let mut node = node.restart();
    check_user(&node, &token, &ids, 0, false);
    assert_eq!(node.terminate_within(STOP_BOUND), Some(0), "stopped");
}

/// `aiocr doctor`'s "nats" check: (status, detail) with `nats_url` set to `url`.
fn doctor_nats(url: &str) -> (String, String) {
    let data = common::fresh_data_dir("doctor");
    let output = Command::new(BIN)
        .args(["doctor", "--json", "--shards", "1", "--model-dir"])
        .arg(common::model_dir())
        .arg("--data")
        .arg(&data)
        .args(["--set", &format!("nats_url={url}")])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nats")
        .unwrap_or_else(|| panic!("no nats check: {report}"))
        .clone();
    let _ = std::fs::remove_dir_all(&data);
    let text = |key: &str| check[key].as_str().unwrap_or_default().to_string();
    (
        text("status"),
        format!("{} / {}", text("detail"), text("fix")),
    )
}

#[test]
fn doctor_checks_the_nats_connection_jetstream_and_the_job_stream() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut nats = Nats::start();
    let (status, detail) = doctor_nats(&nats.url());
    assert_eq!(status, "OK", "{detail}");
    assert!(detail.contains("JetStream"), "{detail}");
    assert!(detail.contains("made by the first node"), "{detail}");

    // Once a worker made the stream, its state is reported.
    let worker = Worker::start("w1", &cluster_settings(&nats.url()));
    let (status, detail) = doctor_nats(&nats.url());
    assert_eq!(status, "OK", "{detail}");
    assert!(detail.contains("0 job(s) waiting"), "{detail}");
    drop(worker);

    // Gone: a failure naming the fix.
    nats.kill9();
    let (status, detail) = doctor_nats(&nats.url());
    assert_eq!(status, "FAIL", "{detail}");
    assert!(detail.contains("nats-server"), "{detail}");

    // Up, but without JetStream.
    let plain = Nats::start_without_jetstream();
    let (status, detail) = doctor_nats(&plain.url());
    assert_eq!(status, "FAIL", "{detail}");
    assert!(detail.contains("without JetStream"), "{detail}");
}

/// The NATS configurations of `tuning/nats/` are valid for the nats-server set-up installs,
/// and each takes the largest job of the default settings.
#[test]
fn the_shipped_nats_configurations_are_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tuning/nats");
    let largest = aiocr::cluster::nats::max_job_bytes(&aiocr::config::Config::default());
    for name in [
        "nats-server.conf",
        "nats-1.conf",
        "nats-2.conf",
        "nats-3.conf",
    ] {
        let path = dir.join(name);
        let output = Command::new("nats-server")
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .output()
            .expect("nats-server (scripts/setup.sh installs it)");
        let said = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && said.contains("is valid"),
            "{name}: {said}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let payload_mb: usize = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("max_payload:"))
            .and_then(|value| value.trim().strip_suffix("MB")?.parse().ok())
            .unwrap_or_else(|| panic!("{name} sets max_payload in MB"));
        assert!(payload_mb * 1024 * 1024 >= largest, "{name}: max_payload");
        assert!(text.contains("jetstream"), "{name}: JetStream on");
    }
}

/// Runs `work` on the models bucket, as a client of NATS sees it.
fn on_models_bucket<T, F: std::future::Future<Output = T>>(
    nats: &Nats,
    work: impl FnOnce(async_nats::jetstream::object_store::ObjectStore) -> F,
) -> T {
    on_nats(nats, |client| async move {
        let js = async_nats::jetstream::new(client);
        work(js.get_object_store("aiocr_models").await.unwrap()).await
    })
}

/// The objects of the models bucket (names). Not for a bucket whose objects may all be
/// deleted: nats-server before 2.10.15 never ends such a listing (its consumer counts messages
/// pending that it never delivers; nats.go issue 1610, nats-server pull 5339), so the listing
/// has a bound and fails the test past it; `model_object_live` asks for one name instead.
fn model_objects(nats: &Nats) -> Vec<String> {
    use futures_util::StreamExt;
    on_models_bucket(nats, |bucket| async move {
        let listing = async {
            let mut list = bucket.list().await.unwrap();
            let mut names = Vec::new();
            while let Some(info) = list.next().await {
                names.push(info.unwrap().name);
            }
            names
        };
        tokio::time::timeout(Duration::from_secs(30), listing)
            .await
            .expect("the models bucket's listing ends")
    })
}

/// Whether the models bucket holds object `name`, not deleted (its last meta message, read
/// without a consumer).
fn model_object_live(nats: &Nats, name: &str) -> bool {
    use async_nats::jetstream::object_store::InfoErrorKind;
    let name = name.to_string();
    on_models_bucket(nats, |bucket| async move {
        match bucket.info(&name).await {
            Ok(info) => !info.deleted,
            Err(error) if error.kind() == InfoErrorKind::NotFound => false,
            Err(error) => panic!("info of {name}: {error}"),
        }
    })
}

/// Deletes an object of the models bucket behind the node's back.
fn delete_model_object(nats: &Nats, name: &str) {
    let name = name.to_string();
    on_models_bucket(nats, |bucket| async move {
        bucket.delete(&name).await.unwrap();
    });
}

/// `POST /v2/models` of `common_old.onnx` with a charsets.json of the shared fixtures'
/// variant `variant`: the model's digest.
fn add_fixture_model(server: &Server, token: &str, name: &str, variant: &str) -> String {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/custom-models");
    let charsets = std::fs::read(fixtures.join(variant).join("charsets.json")).unwrap();
    let onnx = std::fs::read(common::model_dir().join("common_old.onnx")).unwrap();
    let (content_type, body) = common::multipart_form(
        &[("name", name)],
        &[("onnx", &onnx), ("charsets", &charsets)],
    );
    let answer = server
        .client()
        .post("/v2/models", Some(token), &content_type, &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data"]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// ddddocr's answers through its import path for the first images of a variant
/// (tests/fixtures/custom-models/manifest.tsv): (image file, answer).
fn fixture_model_answers(variant: &str, count: usize) -> Vec<(String, String)> {
    let manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/custom-models/manifest.tsv");
    std::fs::read_to_string(manifest)
        .unwrap()
        .lines()
        .map(|line| line.split('\t').collect::<Vec<&str>>())
        .filter(|cols| cols[0] == variant)
        .take(count)
        .map(|cols| (cols[2].to_string(), cols[3].to_string()))
        .collect()
}

/// A user's model added over the API on a node runs on a worker that never saw its files:
/// the node puts them in the models bucket, the job carries the digest, the worker fetches,
/// checks and caches them (answers as ddddocr's import path gives them). A job whose model
/// is missing from the bucket fails at once and is refunded; the model's removal deletes the
/// node's object.
#[test]
fn a_users_model_runs_on_a_worker_that_fetches_it_from_nats() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let nats = Nats::start();
    let node = start_node(1, 1, &nats, None);
    let mut settings = cluster_settings(&nats.url());
    let cache = common::fresh_data_dir("worker-models");
    settings.push(format!("data_dir={}", cache.display()));
    let _worker = Worker::start("fetcher", &settings);
    let admin = node.admin_token();
    let (_, token) = node.create_user(&admin, "modeler", START_POINTS, "user");

    let added = std::time::Instant::now();
    let digest = add_fixture_model(&node, &token, "site", "same-as-default");
    assert_eq!(model_objects(&nats), vec![format!("{digest}.n1")]);
    let answers = fixture_model_answers("same-as-default", 4);
    for (index, (file, expected)) in answers.iter().enumerate() {
        let data = upload(&node, &token, file, "site", true);
        assert_eq!(data["status"], "done", "{file}: {data}");
        assert_eq!(&data["result"], expected.as_str(), "{file}");
        if index == 0 {
            // A figure for docs/cluster.md, not an assertion.
            eprintln!(
                "POST /v2/models to the first answer on a worker: {} ms",
                added.elapsed().as_millis()
            );
        }
    }
    assert_eq!(metric(&node, "aiocr_worker_results_total{"), 4.0);
    assert_eq!(metric(&node, "aiocr_remote_fallbacks_total"), 0.0);
    let cached = cache.join("model-cache").join(format!("{digest}.onnx"));
    assert!(cached.exists(), "the worker keeps the files it fetched");
    assert_eq!(node.balance(&token), (START_POINTS - 4, 0));

    // A model whose object is gone from the bucket: the worker cannot get it, the job fails
    // at once (not at the node's deadline) and costs nothing.
    let missing = add_fixture_model(&node, &token, "gone", "permuted-charset");
    delete_model_object(&nats, &format!("{missing}.n1"));
    let (file, _) = &fixture_model_answers("permuted-charset", 1)[0];
    let body = json!({ "file": base64(&fixture(file)), "model": "gone" }).to_string();
    let failed = node
        .client()
        .post_json("/v2/decode/upload-base64?wait=1", Some(&token), &body);
    assert_eq!(failed.code(), 5003, "{}", failed.text());
    assert!(
        failed.text().contains("not in the models bucket"),
        "{}",
        failed.text()
    );
    assert_eq!(metric(&node, "aiocr_remote_timeouts_total"), 0.0);
    assert_eq!(node.balance(&token), (START_POINTS - 4, 0));

    // The last record of a digest goes: so does the node's object.
    let (content_type, body) = common::multipart_form(&[("name", "site")], &[]);
    let removed = node
        .client()
        .post("/v2/models/remove", Some(&token), &content_type, &body);
    assert_eq!(removed.status, 200, "{}", removed.text());
    let object = format!("{digest}.n1");
    wait_until("the removed model's object to go", 3000, || {
        !model_object_live(&nats, &object)
    });
    let _ = std::fs::remove_dir_all(&cache);
}
