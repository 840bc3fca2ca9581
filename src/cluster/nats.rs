//! Connecting to NATS and making sure the job stream and the buckets exist, with the same
//! settings on nodes and workers (whoever comes first creates them; the others find them).

use super::link::{Claim, LinkError};
use super::names;
use crate::config::Config;
use async_nats::jetstream::{self, kv, stream};
use std::time::Duration;

/// The first pause between reconnection attempts; it doubles up to `nats_reconnect_max_ms`.
const RECONNECT_FIRST_MS: u64 = 100;
/// Room in a job message beyond its images (the header: options, ids, deadline).
const JOB_HEADER_ROOM: usize = 64 * 1024;
/// How long the stream remembers message ids to drop a job published twice.
const MAX_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The single-threaded tokio runtime every NATS client of aiocr runs on (the node's bridge
/// thread, a worker, the one-off claim and doctor probe): async-nats needs tokio, and one
/// thread is all a client's I/O takes.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime for NATS: {e}"))
}

/// Connects in the background: the call returns at once, and the client keeps reconnecting
/// (forever, with a capped exponential pause) whenever the server is away. `on_event` is
/// told of connections and disconnections.
pub async fn connect(
    config: &Config,
    name: &str,
    on_event: impl Fn(async_nats::Event) + Send + Sync + 'static,
) -> Result<async_nats::Client, String> {
    let max_ms = config.cluster.nats_reconnect_max_ms;
    let on_event = std::sync::Arc::new(on_event);
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| backoff(attempts, max_ms))
        .request_timeout(Some(Duration::from_millis(
            config.cluster.nats_request_timeout_ms,
        )))
        .connection_timeout(Duration::from_millis(
            config.cluster.nats_request_timeout_ms,
        ))
        .event_callback(move |event| {
            let on_event = on_event.clone();
            async move { on_event(event) }
        })
        .connect(config.cluster.nats_servers()?)
        .await
        .map_err(|e| format!("nats {}: {e}", config.cluster.nats_url))
}

/// The pause before reconnection attempt `attempts`: 100 ms doubling, at most `max_ms`.
pub fn backoff(attempts: usize, max_ms: u64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20) as u32;
    Duration::from_millis((RECONNECT_FIRST_MS << doublings).min(max_ms))
}

/// The largest job message: two images (a slide) and the header.
pub fn max_job_bytes(config: &Config) -> usize {
    2 * config.images.max_image_bytes + JOB_HEADER_ROOM
}

/// The work-queue stream of jobs: a job is removed once a worker acknowledges it; on disk,
/// so jobs survive a restart of nats-server; jobs older than `remote_timeout_ms` are dropped
/// (their node has failed and refunded them by then).
pub fn jobs_stream_config(config: &Config) -> stream::Config {
    let max_age = Duration::from_millis(config.cluster.remote_timeout_ms);
    stream::Config {
        name: names::JOBS_STREAM.to_string(),
        subjects: vec![names::JOBS_SUBJECTS.to_string()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: config.cluster.nats_replicas,
        max_age,
        max_message_size: i32::try_from(max_job_bytes(config)).unwrap_or(i32::MAX),
        max_messages: i64::try_from(config.cluster.remote_max_in_flight * 64).unwrap_or(i64::MAX),
        discard: stream::DiscardPolicy::New,
        duplicate_window: max_age.min(MAX_DUPLICATE_WINDOW),
        ..Default::default()
    }
}

pub async fn ensure_jobs_stream(
    js: &jetstream::Context,
    config: &Config,
) -> Result<stream::Stream, String> {
    js.get_or_create_stream(jobs_stream_config(config))
        .await
        .map_err(|e| format!("stream {}: {e}", names::JOBS_STREAM))
}

/// The two buckets: heartbeats (entries expire after `node_ttl_ms`) and username claims
/// (kept forever, one revision each).
pub async fn ensure_buckets(
    js: &jetstream::Context,
    config: &Config,
) -> Result<(kv::Store, kv::Store), String> {
    let replicas = config.cluster.nats_replicas;
    let nodes_ttl = Duration::from_millis(config.cluster.node_ttl_ms);
    let nodes = bucket(
        js,
        names::NODES_BUCKET,
        nodes_ttl,
        4096,
        replicas,
        Use::Heartbeats,
    )
    .await?;
    let usernames = bucket(
        js,
        names::USERNAMES_BUCKET,
        Duration::ZERO,
        64,
        replicas,
        Use::Claims,
    );
    let usernames = usernames.await?;
    Ok((nodes, usernames))
}

/// What a bucket holds, which decides how it is read and written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Heartbeats: overwritten every beat, read from any replica (direct gets: fast, and a
    /// replica a moment behind only shows a heartbeat a moment old).
    Heartbeats,
    /// Username claims: written once, never replaced, read from the stream's leader. A
    /// login through another node must find a claim made a moment ago, and a replica behind
    /// (or with damaged files) would say there is none. A second message for a key is
    /// refused by the stream itself (discard new per subject, one message per subject):
    /// the atomic create alone (JetStream's expected last sequence per subject) lets two
    /// concurrent creates both through on a clustered stream in nats-server before 2.9.21
    /// (nats-server issue 4320: the check is made before the write is proposed, not as
    /// part of it), while the per-subject limit is applied as each write is stored, in the
    /// order of the replicated log.
    Claims,
}

impl Use {
    /// Whether any replica may answer a read (`allow_direct`).
    fn direct(self) -> bool {
        self == Use::Heartbeats
    }

    /// Whether a key's second message is refused (`discard_new_per_subject`).
    fn write_once(self) -> bool {
        self == Use::Claims
    }
}

/// A key-value bucket, created when missing. Created as the stream a bucket is (one
/// revision per key, deletes as markers) rather than by `create_key_value`, whose account
/// query does not parse what nats-server 2.9 (Debian's) answers. A bucket found with other
/// read or write settings than its `kind` asks for is changed to them.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    max_value_size: i32,
    replicas: usize,
    kind: Use,
) -> Result<kv::Store, String> {
    let stream_name = format!("KV_{name}");
    if let Ok(mut found) = js.get_stream(&stream_name).await {
        let info = found
            .info()
            .await
            .map_err(|e| format!("bucket {name}: {e}"))?;
        let wanted = (kind.direct(), kind.write_once());
        if (
            info.config.allow_direct,
            info.config.discard_new_per_subject,
        ) != wanted
        {
            let mut config = info.config.clone();
            (config.allow_direct, config.discard_new_per_subject) = wanted;
            js.update_stream(config)
                .await
                .map_err(|e| format!("bucket {name}: {e}"))?;
        }
        return js
            .get_key_value(name)
            .await
            .map_err(|e| format!("bucket {name}: {e}"));
    }
    let window = match max_age.is_zero() {
        true => MAX_DUPLICATE_WINDOW,
        false => max_age.min(MAX_DUPLICATE_WINDOW),
    };
    let stream = stream::Config {
        name: stream_name,
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        max_message_size: max_value_size,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: kind.direct(),
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: kind.write_once(),
        duplicate_window: window,
        ..Default::default()
    };
    // Another process may create it at the same moment: either way, it exists after.
    let created = js.get_or_create_stream(stream).await;
    js.get_key_value(name).await.map_err(|error| match created {
        Err(create) => format!("bucket {name}: {create}"),
        Ok(_) => format!("bucket {name}: {error}"),
    })
}

/// Claims `username` for `node`: created atomically in the bucket (the first node to ask
/// gets it), or found already `node`'s (a creation retried after a crash between the claim
/// and the user's creation). A granted create is read back from the bucket's leader, and
/// the claim is the node it names: should a nats-server ever acknowledge two creates of one
/// key (see [`Use::Claims`]), the one stored is the only one granted.
pub async fn claim(store: &kv::Store, node: u16, username: &str) -> Result<Claim, LinkError> {
    let key = names::username_key(username);
    match store.create(&key, node.to_string().into()).await {
        Ok(_) => owner_claim(store, node, username).await,
        Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
            owner_claim(store, node, username).await
        }
        Err(error) => Err(LinkError::Other(error.to_string())),
    }
}

/// The claim as the bucket holds it, for `node`.
async fn owner_claim(store: &kv::Store, node: u16, username: &str) -> Result<Claim, LinkError> {
    match claimed_by(store, username).await? {
        Some(owner) if owner == node => Ok(Claim::Granted),
        Some(owner) => Ok(Claim::Taken(owner)),
        None => Err(LinkError::Other("a claim vanished".into())),
    }
}

/// The node that claimed `username`.
pub async fn claimed_by(store: &kv::Store, username: &str) -> Result<Option<u16>, LinkError> {
    match store.get(names::username_key(username)).await {
        Err(error) => Err(LinkError::Other(error.to_string())),
        Ok(None) => Ok(None),
        Ok(Some(value)) => std::str::from_utf8(&value)
            .ok()
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or_else(|| LinkError::Other("a claim that is not a node id".into())),
    }
}

/// `claim` from outside a running node (`aiocr user add`): see [`claim_names_blocking`].
pub fn claim_blocking(config: &Config, username: &str) -> Result<Claim, String> {
    let claims = claim_names_blocking(config, &[username])?;
    Ok(claims[0])
}

/// Claims `usernames` in turn over one connection (start-up's demo users, `aiocr user
/// add`), then disconnects. Bounded whatever NATS does: everything up to the last claim
/// within 3 x `nats_request_timeout_ms` (connecting, the buckets, the claims), the last
/// flush within one more; an error names the wait that ran out.
pub fn claim_names_blocking(config: &Config, usernames: &[&str]) -> Result<Vec<Claim>, String> {
    let runtime = runtime()?;
    let timeout = Duration::from_millis(config.cluster.nats_request_timeout_ms);
    let claimed = runtime.block_on(async {
        let client = connect(config, "aiocr-claim", |_| {}).await?;
        let js = jetstream::new(client.clone());
        let work = async {
            let (_, registry) = ensure_buckets(&js, config).await?;
            let mut claims = Vec::with_capacity(usernames.len());
            for username in usernames {
                let claimed = claim(&registry, config.node.node_id, username).await;
                claims.push(claimed.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(claims)
        };
        let claims = tokio::time::timeout(3 * timeout, work)
            .await
            .map_err(|_| {
                format!(
                    "NATS at {} did not answer within 3 x nats_request_timeout_ms ({} ms)",
                    config.cluster.nats_url,
                    3 * config.cluster.nats_request_timeout_ms
                )
            })??;
        // The claims are acknowledged already: this only closes politely.
        let _ = tokio::time::timeout(timeout, client.flush()).await;
        Ok(claims)
    });
    // Not the runtime's drop, which would wait for a name being resolved as long as it takes.
    runtime.shutdown_background();
    claimed
}

/// What `aiocr doctor` learns from NATS.
#[derive(Debug)]
pub struct Probe {
    pub server_version: String,
    pub max_payload: usize,
    /// (jobs waiting, consumers) of the job stream; `None` when it does not exist yet.
    pub jobs: Option<(u64, usize)>,
}

/// Connects, asks JetStream about the job stream, disconnects (each step within
/// `nats_request_timeout_ms`).
pub fn probe(config: &Config) -> Result<Probe, String> {
    let runtime = runtime()?;
    let timeout = Duration::from_millis(config.cluster.nats_request_timeout_ms);
    let probed = runtime.block_on(async {
        let client = connect(config, "aiocr-doctor", |_| {}).await?;
        tokio::time::timeout(timeout, client.flush())
            .await
            .map_err(|_| format!("no NATS server answers at {}", config.cluster.nats_url))?
            .map_err(|e| format!("{}: {e}", config.cluster.nats_url))?;
        let info = client.server_info();
        if !info.jetstream {
            return Err(format!(
                "{} (nats-server {}) runs without JetStream: start it with -js (tuning/nats/)",
                config.cluster.nats_url, info.version
            ));
        }
        let js = jetstream::new(client.clone());
        let jobs = async {
            let Ok(mut stream) = js.get_stream(names::JOBS_STREAM).await else {
                return Ok(None);
            };
            let state = &stream.info().await.map_err(|e| e.to_string())?.state;
            Ok::<_, String>(Some((state.messages, state.consumer_count)))
        };
        let jobs = match tokio::time::timeout(2 * timeout, jobs).await {
            Ok(jobs) => jobs?,
            Err(_) => return Err("JetStream did not answer in time".into()),
        };
        Ok(Probe {
            server_version: info.version.clone(),
            max_payload: info.max_payload,
            jobs,
        })
    });
    runtime.shutdown_background();
    probed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_url_is_a_list_of_servers() {
        let mut config = Config::default();
        config.cluster.nats_url =
            "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://n3:4222".into();
        assert_eq!(config.cluster.nats_servers().unwrap().len(), 3);
        config.cluster.nats_url = "nats://10.0.0.1:port".into();
        assert!(config.cluster.nats_servers().is_err());
    }

    #[test]
    fn reconnect_pauses_double_up_to_the_cap() {
        let pauses: Vec<u64> = (1..=7)
            .map(|attempt| backoff(attempt, 2000).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(1000, 2000).as_millis(), 2000);
    }

    #[test]
    fn jobs_outlive_neither_their_deadline_nor_the_message_bound() {
        let config = Config::default();
        let stream = jobs_stream_config(&config);
        assert_eq!(
            stream.max_age,
            Duration::from_millis(config.cluster.remote_timeout_ms)
        );
        assert!(stream.duplicate_window <= stream.max_age);
        assert!(stream.max_message_size as usize > 2 * config.images.max_image_bytes);
    }
}
