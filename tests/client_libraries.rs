//! The official captcha client libraries from PyPI (tests/clients/requirements.txt, installed
//! by scripts/setup.sh into tests/clients/.venv) and from npm (tests/npm_clients/
//! package-lock.json, installed into tests/npm_clients/node_modules), unmodified but for the
//! server address, solving fixtures against a live aiocr: their answers must be ddddocr's,
//! the balance they read must be the ledger's, and a report through them must refund. The
//! JavaScript ones read every JSON number as a double: they find their tasks only because
//! every integer aiocr answers is within 2^53 - 1.

mod common;

use common::{manifest, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Images each library solves.
const IMAGES: usize = 4;

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    python
}

/// Runs tests/clients/solve.py; returns its lines as (first column, second column).
fn solve(
    client: &str,
    url: &str,
    key: &str,
    files: &[PathBuf],
    env: &[(&str, &Path)],
) -> Vec<(String, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/solve.py");
    let mut command = Command::new(python());
    command.arg(script).args([client, url, key]).args(files);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{client}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The first `IMAGES` fixtures and ddddocr's answers.
fn fixtures() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    manifest()
        .into_iter()
        .take(IMAGES)
        .map(|(file, old, _)| (dir.join(file), old))
        .collect()
}

fn key_of(server: &Server) -> String {
    let token = server.demo_token();
    let answer = server
        .client()
        .post_json("/v2/user/apikey", Some(&token), "{}");
    answer.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Checks one library's run: every answer is ddddocr's, the balance is the ledger's.
fn check_run(
    client: &str,
    lines: &[(String, String)],
    fixtures: &[(PathBuf, String)],
    balance_points: i64,
) {
    for (path, expected) in fixtures {
        let path = path.display().to_string();
        let answer = lines.iter().find(|(file, _)| *file == path);
        assert_eq!(
            answer.map(|(_, text)| text.as_str()),
            Some(expected.as_str()),
            "{client}: {path}"
        );
    }
    let balance = lines.iter().find(|(name, _)| name == "balance").unwrap();
    let amount: f64 = balance.1.parse().unwrap();
    assert!(
        (amount - balance_points as f64 * 0.001).abs() < 1e-9,
        "{client}: balance {amount}, ledger {balance_points} points"
    );
    assert!(lines
        .iter()
        .any(|(name, status)| name == "reported" && status.starts_with("OK")));
}

#[test]
fn anticaptcha_capmonster_and_capsolver_libraries_over_http() {
    let server = Server::start(2, &["rate_limit_burst=1000"]);
    let key = key_of(&server);
    let url = format!("http://127.0.0.1:{}", server.port);
    let fixtures = fixtures();
    let files: Vec<PathBuf> = fixtures.iter().map(|(path, _)| path.clone()).collect();
    let mut points = 1000;
    for client in ["anticaptcha", "capmonster", "capsolver"] {
        let lines = solve(client, &url, &key, &files, &[]);
        points -= IMAGES as i64;
        check_run(client, &lines, &fixtures, points);
        if client == "anticaptcha" {
            points += 1; // its report refunded one answer
        }
        assert_eq!(server.balance(&key), (points, 0), "{client}");
    }
}

/// CapMonster's and CapSolver's own libraries choose a user's model by its module name
/// (`CapMonsterModule`, `module`): a model the user added as `universal` (a module name
/// capmonstercloudclient accepts) reads ddddocr's answers through its import path, which
/// differ from the stock model's (its charset is permuted).
#[test]
fn capmonster_and_capsolver_libraries_choose_a_users_model_by_module() {
    let server = Server::start(2, &["rate_limit_burst=1000"]);
    let key = key_of(&server);
    let token = server.demo_token();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let onnx = std::fs::read(common::model_dir().join("common_old.onnx")).unwrap();
    let charsets =
        std::fs::read(fixtures.join("custom-models/permuted-charset/charsets.json")).unwrap();
    let added = common::add_model(&server, &token, "universal", &onnx, &charsets);
    assert_eq!(added.status, 200, "{}", added.text());
    let manifest = std::fs::read_to_string(fixtures.join("custom-models/manifest.tsv")).unwrap();
    let expected: Vec<(PathBuf, String)> = manifest
        .lines()
        .map(|line| line.split('\t').collect::<Vec<&str>>())
        .filter(|cols| cols[0] == "permuted-charset")
        .take(IMAGES)
        .map(|cols| (fixtures.join("captcha").join(cols[2]), cols[3].to_string()))
        .collect();
    let files: Vec<PathBuf> = expected.iter().map(|(path, _)| path.clone()).collect();
    // The model is loaded by each recognition thread on its first job: done here, with other
    // images, so that a busy machine's load time does not count against the libraries' own
    // 10-second wait (capmonster's gave up once).
    let warm_ups: Vec<_> = manifest
        .lines()
        .filter(|line| line.starts_with("permuted-charset\t"))
        .skip(IMAGES)
        .take(2)
        .map(|line| {
            fixtures
                .join("captcha")
                .join(line.split('\t').nth(2).unwrap())
        })
        .map(|path| {
            let (port, token) = (server.port, token.clone());
            std::thread::spawn(move || {
                let image = common::base64(&std::fs::read(path).unwrap());
                let body = format!(r#"{{"image":"{image}","model":"universal","wait":true}}"#);
                let mut client = common::Client::connect(port);
                let answer = client.post_json("/v2/decode/upload-base64", Some(&token), &body);
                assert_eq!(answer.json()["code"], 0, "{}", answer.text());
            })
        })
        .collect();
    for warm_up in warm_ups {
        warm_up.join().unwrap();
    }
    let url = format!("http://127.0.0.1:{}", server.port);
    let module = Path::new("universal");
    for client in ["capmonster", "capsolver"] {
        let lines = solve(client, &url, &key, &files, &[("AIOCR_MODULE", module)]);
        for (path, text) in &expected {
            let path = path.display().to_string();
            let answer = lines.iter().find(|(file, _)| *file == path);
            assert_eq!(
                answer.map(|(_, t)| t.as_str()),
                Some(text.as_str()),
                "{client}: {path}"
            );
        }
    }
}

/// A server with a TLS listener whose certificate is signed by a test CA made in `dir`:
/// the server and the CA's PEM (for `REQUESTS_CA_BUNDLE`).
fn tls_server(dir: &Path, shards: u16) -> (Server, PathBuf) {
    let (ca, cert, key) = test_certificates(dir);
    let settings = [
        "rate_limit_burst=1000".to_string(),
        "tls_listen=127.0.0.1:0".to_string(),
        format!("tls_cert={}", cert.display()),
        format!("tls_key={}", key.display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    (Server::start(shards, &settings), ca)
}

/// A test CA's PEM and a server certificate and key for 127.0.0.1 signed by it, written into
/// `dir`: (ca, cert, key) paths.
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "aiocr client-library test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let certificate = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, certificate.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// 2captcha-python speaks only https: it runs against aiocr's TLS listener with a
/// certificate this test makes and tells `requests` to trust (REQUESTS_CA_BUNDLE).
#[test]
fn twocaptcha_python_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), 2);
    assert_ne!(server.tls_port, 0);
    let api_key = key_of(&server);
    let url = format!("https://127.0.0.1:{}", server.tls_port);
    let fixtures = fixtures();
    let files: Vec<PathBuf> = fixtures.iter().map(|(path, _)| path.clone()).collect();
    let lines = solve(
        "2captcha",
        &url,
        &api_key,
        &files,
        &[("REQUESTS_CA_BUNDLE", ca.as_path())],
    );
    check_run("2captcha", &lines, &fixtures, 1000 - IMAGES as i64);
    assert_eq!(
        server.balance(&api_key),
        (1000 - IMAGES as i64 + 1, 0),
        "its report refunded"
    );
}

/// The math fixtures (tests/fixtures/beyond/math) `aiocr ocr --math` answers, with its values.
fn math_fixtures() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beyond/math");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    files.sort();
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .arg("ocr")
        .arg("--math")
        .args(&files)
        .env("AIOCR_MODEL_DIR", common::model_dir())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, value)| !value.starts_with("error"))
        .map(|(file, value)| (PathBuf::from(file), value.to_string()))
        .take(IMAGES)
        .collect()
}

/// Arithmetic captchas through python-anticaptcha (`ImageToTextTask(math=True)`) over http
/// and 2captcha-python (`normal(calc=1)`) over TLS: the values `aiocr ocr --math` reads,
/// charged like text, a report refunded.
#[test]
fn anticaptcha_and_twocaptcha_libraries_solve_math_captchas() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), 1);
    let api_key = key_of(&server);
    let fixtures = math_fixtures();
    assert_eq!(fixtures.len(), IMAGES, "{fixtures:?}");
    let files: Vec<PathBuf> = fixtures.iter().map(|(path, _)| path.clone()).collect();
    let math = Path::new("1");
    let http = format!("http://127.0.0.1:{}", server.port);
    let lines = solve(
        "anticaptcha",
        &http,
        &api_key,
        &files,
        &[("AIOCR_MATH", math)],
    );
    check_run("anticaptcha", &lines, &fixtures, 1000 - IMAGES as i64);
    let https = format!("https://127.0.0.1:{}", server.tls_port);
    let env = [("REQUESTS_CA_BUNDLE", ca.as_path()), ("AIOCR_MATH", math)];
    let lines = solve("2captcha", &https, &api_key, &files, &env);
    // Answers of the same images and options come from the cache: charged all the same.
    check_run("2captcha", &lines, &fixtures, 1000 + 1 - 2 * IMAGES as i64);
    assert_eq!(server.balance(&api_key), (1000 + 2 - 2 * IMAGES as i64, 0));
}

/// The first `count` click captchas of tests/fixtures/beyond/click: (file, hint, truth boxes
/// in click order).
fn click_fixtures(count: usize) -> Vec<(PathBuf, String, Vec<[i64; 4]>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beyond/click");
    common::manifest_rows(&dir.join("manifest.tsv"))
        .into_iter()
        .take(count)
        .map(|row| {
            let truth = serde_json::from_str(&row["truth_boxes_in_order"]).unwrap();
            (dir.join(&row["file"]), row["hint"].clone(), truth)
        })
        .collect()
}

/// The FILE HINT pairs solve.py's click clients take.
fn click_args(fixtures: &[(PathBuf, String, Vec<[i64; 4]>)]) -> Vec<PathBuf> {
    fixtures
        .iter()
        .flat_map(|(file, hint, _)| [file.clone(), PathBuf::from(hint)])
        .collect()
}

/// Every click inside its truth box, in order.
fn check_clicks(what: &str, clicks: &[(i64, i64)], truth: &[[i64; 4]]) {
    assert_eq!(clicks.len(), truth.len(), "{what}: {clicks:?}");
    for ((x, y), area) in clicks.iter().zip(truth) {
        assert!(
            area[0] <= *x && *x <= area[2] && area[1] <= *y && *y <= area[3],
            "{what}: {clicks:?} vs {truth:?}"
        );
    }
}

/// The answer solve.py printed for `file`.
fn answer_for<'a>(lines: &'a [(String, String)], file: &str) -> &'a str {
    let line = lines.iter().find(|(name, _)| name == file);
    &line
        .unwrap_or_else(|| panic!("no answer for {file}: {lines:?}"))
        .1
}

/// Click-in-order captchas (tests/fixtures/beyond/click) through 2captcha-python's
/// `coordinates(file, textinstructions=...)` over TLS: every click inside its truth box, in
/// order, at a detection's price.
#[test]
fn twocaptcha_python_clicks_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), 1);
    let api_key = key_of(&server);
    let fixtures = click_fixtures(2);
    let url = format!("https://127.0.0.1:{}", server.tls_port);
    let lines = solve(
        "2captcha-coordinates",
        &url,
        &api_key,
        &click_args(&fixtures),
        &[("REQUESTS_CA_BUNDLE", ca.as_path())],
    );
    for (file, _, truth) in &fixtures {
        let code = answer_for(&lines, &file.display().to_string());
        let clicks: Vec<(i64, i64)> = code
            .strip_prefix("coordinates:")
            .expect("2captcha's coordinates")
            .split(';')
            .map(|click| {
                let (x, y) = click.split_once(',').unwrap();
                (x[2..].parse().unwrap(), y[2..].parse().unwrap())
            })
            .collect();
        check_clicks(code, &clicks, truth);
    }
    assert_eq!(
        server.balance(&api_key),
        (1000 - 2 * 5, 0),
        "a detection's price each"
    );
}

/// Click-in-order captchas through anticaptchaofficial's `imagetocoordinates` (anti-captcha's
/// `ImageToCoordinatesTask`, the characters to click in its comment): `[[x, y], ...]` inside
/// the truth boxes, and in `rectangles` mode the boxes around those clicks; a detection's
/// price each.
#[test]
fn anticaptchaofficial_clicks_in_order() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let key = key_of(&server);
    let fixtures = click_fixtures(2);
    let url = format!("http://127.0.0.1:{}", server.port);
    let lines = solve(
        "anticaptchaofficial-coordinates",
        &url,
        &key,
        &click_args(&fixtures),
        &[],
    );
    let pairs = |text: &str| -> Vec<Vec<i64>> { serde_json::from_str(text).unwrap() };
    for (file, _, truth) in &fixtures {
        let text = answer_for(&lines, &file.display().to_string());
        let clicks: Vec<(i64, i64)> = pairs(text).iter().map(|p| (p[0], p[1])).collect();
        assert!(pairs(text).iter().all(|p| p.len() == 2), "{text}");
        check_clicks(text, &clicks, truth);
    }
    // The first captcha's boxes: each holds the click of its place.
    let boxes = pairs(answer_for(&lines, "rectangles"));
    let first = pairs(answer_for(&lines, &fixtures[0].0.display().to_string()));
    assert_eq!(boxes.len(), first.len(), "{boxes:?}");
    for (area, point) in boxes.iter().zip(&first) {
        let (x, y) = (point[0], point[1]);
        assert!(area[0] <= x && x <= area[2] && area[1] <= y && y <= area[3]);
    }
    assert_eq!(
        server.balance(&key),
        (1000 - 3 * 5, 0),
        "a detection's price each"
    );
}

fn node_client(client: &str, url: &str, key: &str, files: &[PathBuf]) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm_clients");
    assert!(
        dir.join("node_modules").exists(),
        "{} is missing: run scripts/setup.sh",
        dir.join("node_modules").display()
    );
    let output = Command::new("node")
        .arg(dir.join("solve.cjs"))
        .args([client, url, key])
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{client}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The three JavaScript libraries the issue names: `@antiadmin/anticaptchaofficial` and
/// `node-capmonster` (the JSON task protocol: their `taskId` is a double) and
/// `@2captcha/captcha-solver` (2captcha v1 with `json=1`).
#[test]
fn anticaptcha_capmonster_and_2captcha_npm_libraries_over_http() {
    let server = Server::start(2, &["rate_limit_burst=1000"]);
    let key = key_of(&server);
    let url = format!("http://127.0.0.1:{}", server.port);
    let fixtures = fixtures();
    let files: Vec<PathBuf> = fixtures.iter().map(|(path, _)| path.clone()).collect();
    let mut points = 1000;
    for client in ["anticaptcha", "capmonster", "2captcha"] {
        let lines = node_client(client, &url, &key, &files);
        points -= IMAGES as i64;
        check_run(client, &lines, &fixtures, points);
        if client != "capmonster" {
            points += 1; // its report refunded one answer
        }
        assert_eq!(server.balance(&key), (points, 0), "{client}");
    }
}

/// Click-in-order captchas through the JavaScript libraries that have a click task:
/// `@antiadmin/anticaptchaofficial`'s `solveImageToCoordinates` (`[[x, y], ...]`) and
/// `@2captcha/captcha-solver`'s `coordinates` (`[{"x": "..", "y": ".."}, ...]`): every click
/// inside its truth box, a detection's price each.
#[test]
fn npm_libraries_click_in_order() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let key = key_of(&server);
    let url = format!("http://127.0.0.1:{}", server.port);
    let fixtures = click_fixtures(2);
    let args = click_args(&fixtures);
    let anticaptcha = node_client("anticaptcha-coordinates", &url, &key, &args);
    let twocaptcha = node_client("2captcha-coordinates", &url, &key, &args);
    let number = |value: &serde_json::Value| -> i64 {
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
            .expect("a coordinate")
    };
    for (file, _, truth) in &fixtures {
        let file = file.display().to_string();
        let pairs: Vec<Vec<i64>> = serde_json::from_str(answer_for(&anticaptcha, &file)).unwrap();
        let clicks: Vec<(i64, i64)> = pairs.iter().map(|p| (p[0], p[1])).collect();
        check_clicks("anticaptchaofficial", &clicks, truth);
        let objects: Vec<serde_json::Value> =
            serde_json::from_str(answer_for(&twocaptcha, &file)).unwrap();
        let clicks: Vec<(i64, i64)> = objects
            .iter()
            .map(|o| (number(&o["x"]), number(&o["y"])))
            .collect();
        check_clicks("@2captcha/captcha-solver", &clicks, truth);
    }
    // The second library's images come from the answer cache: charged all the same.
    assert_eq!(
        server.balance(&key),
        (1000 - 4 * 5, 0),
        "a detection's price each"
    );
}
