//! aiocr-loadgen end to end: the real binary against a real in-process server on 127.0.0.1.

mod common;

use common::{image_dir, loadgen, Faults, TestServer, BAD_IMAGE, PENDING_POLLS};
use std::time::Duration;

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn closed_loop_sends_exactly_n_requests() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/plain");
    let (code, summary, stderr) = loadgen(&[&url, "-t", "2", "-c", "8", "-n", "1000", "--no-live"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["requests"]), 1000);
    assert_eq!(u(&summary["ok"]), 1000);
    assert_eq!(u(&summary["failed"]), 0);
    assert_eq!(server.counters.route("/plain"), 1000);
    assert!(summary["latency_ms"]["corrected"]["max"].as_f64().unwrap() > 0.0);
}

#[test]
fn pipelining_keeps_exact_counts() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/plain");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-c",
        "3",
        "--pipeline",
        "8",
        "-n",
        "1001",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 1001);
    assert_eq!(u(&summary["http_responses"]), 1001);
    assert_eq!(server.counters.route("/plain"), 1001);
}

#[test]
fn non_2xx_answers_are_counted_not_failed() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/missing");
    let (code, summary, _) = loadgen(&[&url, "-c", "2", "-n", "40", "--no-live"]);
    assert_eq!(code, 0);
    assert_eq!(u(&summary["non_2xx"]), 40);
    assert_eq!(u(&summary["failed"]), 0);
}

#[test]
fn server_closing_connections_means_reconnects() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/close");
    let (code, summary, stderr) = loadgen(&[&url, "-c", "2", "-n", "50", "--no-live"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 50);
    assert_eq!(u(&summary["connects"]), 50);
    assert_eq!(u(&summary["reconnects"]), 48);
    assert_eq!(server.counters.route("/close"), 50);
}

#[test]
fn open_loop_holds_its_rate_within_two_percent() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/plain");
    let rate = 400.0;
    let seconds = 5.0;
    let (code, summary, stderr) = loadgen(&[&url, "-t", "2", "-c", "4", "-R", "400", "-d", "5s"]);
    assert_eq!(code, 0, "{stderr}");
    let expected = rate * seconds;
    let sent = server.counters.route("/plain") as f64;
    assert!(
        (sent - expected).abs() <= expected * 0.02,
        "sent {sent}, expected {expected} ± 2%"
    );
    assert_eq!(u(&summary["ok"]) as f64, sent);
    assert_eq!(summary["mode"], "open");
    // The live line: about one a second on stderr.
    assert!(stderr.contains("req/s"), "no live line in {stderr:?}");
}

#[test]
fn a_stall_shows_in_corrected_latency_only() {
    let stall = Duration::from_millis(1000);
    let server = TestServer::start(Faults {
        stall: Some((300, stall)),
    });
    let url = server.url("/plain");
    let (code, summary, stderr) = loadgen(&[&url, "-c", "1", "-R", "500", "-d", "4s", "--no-live"]);
    assert_eq!(code, 0, "{stderr}");
    let corrected_p99 = summary["latency_ms"]["corrected"]["p99"].as_f64().unwrap();
    let uncorrected_p99 = summary["latency_ms"]["uncorrected"]["p99"]
        .as_f64()
        .unwrap();
    let uncorrected_max = summary["latency_ms"]["uncorrected"]["max"]
        .as_f64()
        .unwrap();
    // The stalled request itself took the whole stall, whichever way it is measured.
    assert!(uncorrected_max >= 900.0, "{summary}");
    // About 500 requests were due during the stall: their corrected latencies spread over
    // the stall, so the corrected p99 is near the stall, while one slow answer in ~2000 does
    // not move the uncorrected p99.
    assert!(corrected_p99 >= 500.0, "corrected p99 {corrected_p99} ms");
    assert!(
        corrected_p99 > 10.0 * uncorrected_p99,
        "corrected p99 {corrected_p99} ms, uncorrected p99 {uncorrected_p99} ms"
    );
}

#[test]
fn a_slow_first_login_is_set_up_not_lateness() {
    // The first request of the run is the login; it takes 2 s. The connection's open-loop
    // schedule starts when the login answers, so no request counts those 2 s as lateness
    // (before the fix, the ~400 requests due during the login showed corrected latencies
    // spread up to 2 s).
    let server = TestServer::start(Faults {
        stall: Some((1, Duration::from_millis(2000))),
    });
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "point",
        "--user",
        "alice:pw",
        "-c",
        "1",
        "-R",
        "200",
        "-d",
        "4s",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(server.counters.route("/v2/user/login"), 1);
    let corrected_p99 = summary["latency_ms"]["corrected"]["p99"].as_f64().unwrap();
    assert!(
        corrected_p99 < 1000.0,
        "corrected p99 {corrected_p99} ms: {summary}"
    );
}

#[test]
fn unreachable_target_is_an_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let (code, summary, stderr) = loadgen(&[&url, "-n", "10", "--no-live"]);
    assert_eq!(code, 2);
    assert!(summary.is_null());
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn bad_options_are_refused() {
    let (code, _, stderr) = loadgen(&["http://127.0.0.1:9/", "-c", "0"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = loadgen(&["http://127.0.0.1:9/", "--scenario", "point"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--user"), "{stderr}");
    // An unwritable log is refused before the run, not after it.
    let server = TestServer::start(Faults::default());
    let url = server.url("/plain");
    let (code, _, stderr) = loadgen(&[&url, "-n", "5", "--hdr-out", "/nonexistent-dir/x.hlog"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot create"), "{stderr}");
    assert_eq!(server.counters.route("/plain"), 0);
}

#[test]
fn scenario_errors_are_counted_by_kind() {
    let server = TestServer::start(Faults::default());
    let images = image_dir("kinds", &[b"img-a"]);
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "upload-base64",
        "--user",
        "alice:pw",
        "--user",
        "poor:pw",
        "--user",
        "busy:pw",
        "--images",
        images.path(),
        "-c",
        "3",
        "-n",
        "30",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 10, "{summary}");
    assert_eq!(u(&summary["failed"]), 20);
    assert_eq!(u(&summary["errors"]["code_2001"]), 10);
    assert_eq!(u(&summary["errors"]["code_5001"]), 10);
    assert_eq!(u(&summary["non_2xx"]), 20);
    assert_eq!(u(&summary["logins"]), 3);
    assert_eq!(server.counters.route("/v2/user/login"), 3);
    assert_eq!(server.counters.route("/v2/decode/upload-base64"), 30);
}

#[test]
fn image_corpus_is_used_round_robin() {
    let server = TestServer::start(Faults::default());
    let images = image_dir("corpus", &[b"img-a", BAD_IMAGE, b"img-c"]);
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "upload",
        "--user",
        "alice:pw",
        "--images",
        images.path(),
        "-c",
        "2",
        "-n",
        "30",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 20, "{summary}");
    assert_eq!(u(&summary["errors"]["code_3003"]), 10);
    assert_eq!(server.counters.route("/v2/decode/upload"), 30);
}

#[test]
fn post_image_sends_the_corpus_without_login_and_checks_foreign_codes() {
    let server = TestServer::start(Faults::default());
    let images = image_dir("peer", &[b"img-a", BAD_IMAGE, b"img-c"]);
    let url = server.url("/ocr");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "post-image",
        "--images",
        images.path(),
        "-c",
        "3",
        "-n",
        "30",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 20, "{summary}");
    assert_eq!(u(&summary["errors"]["code_500"]), 10, "{summary}");
    assert_eq!(server.counters.route("/ocr"), 30);
    assert_eq!(server.counters.route("/v2/user/login"), 0);
}

#[test]
fn decode_async_polls_until_done() {
    let server = TestServer::start(Faults::default());
    let images = image_dir("async", &[b"img-a", b"img-b"]);
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "decode-async",
        "--user",
        "alice:pw",
        "--images",
        images.path(),
        "-c",
        "4",
        "--pipeline",
        "2",
        "-n",
        "20",
        "--poll-interval",
        "5ms",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 20, "{summary}");
    assert_eq!(server.counters.route("/v2/decode/upload-base64"), 20);
    let polls = 20 * (u64::from(PENDING_POLLS) + 1);
    assert_eq!(server.counters.route("/v2/result"), polls);
    assert_eq!(u(&summary["http_requests"]), 4 + 20 + polls);
    // End to end: at least the two poll intervals.
    let p50 = summary["latency_ms"]["corrected"]["p50"].as_f64().unwrap();
    assert!(p50 >= 10.0, "decode-async p50 {p50} ms");
}

#[test]
fn weighted_mix_follows_its_weights() {
    let server = TestServer::start(Faults::default());
    let images = image_dir("mix", &[b"img-a"]);
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "--mix",
        "point=3,decode-sync=1",
        "--user",
        "alice:pw",
        "--images",
        images.path(),
        "-c",
        "1",
        "-n",
        "40",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 40, "{summary}");
    assert_eq!(server.counters.route("/v2/user/point"), 30);
    assert_eq!(server.counters.route("/v2/decode/upload-base64"), 10);
    assert_eq!(summary["scenarios"][0]["name"], "point");
    assert_eq!(u(&summary["scenarios"][1]["ok"]), 10);
    assert_eq!(u(&summary["sync_fell_back_to_poll"]), 0);
}

#[test]
fn wrong_password_retires_connections_and_exits_non_zero() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/");
    let (code, summary, _) = loadgen(&[
        &url,
        "-s",
        "point",
        "--user",
        "alice:nope",
        "-c",
        "2",
        "-n",
        "10",
        "--no-live",
    ]);
    assert_eq!(code, 1);
    assert_eq!(u(&summary["errors"]["code_1004"]), 2);
    assert_eq!(u(&summary["errors"]["login_failed"]), 2);
    assert_eq!(server.counters.route("/v2/user/point"), 0);
}

#[test]
fn hdr_log_holds_both_histograms_per_interval() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let server = TestServer::start(Faults::default());
    let url = server.url("/plain");
    let path = std::env::temp_dir().join(format!("aiocr-loadgen-test-{}.hlog", std::process::id()));
    // 300 requests over about 1.5 s: at least two intervals.
    let (code, _, stderr) = loadgen(&[
        &url,
        "-R",
        "200",
        "-n",
        "300",
        "--no-live",
        "--hdr-out",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let log = std::fs::read(&path).unwrap();
    let mut counts = std::collections::BTreeMap::<String, (u64, usize)>::new();
    for entry in IntervalLogIterator::new(&log) {
        if let Ok(LogEntry::Interval(h)) = entry {
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .unwrap();
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
            let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            let entry = counts.entry(tag).or_default();
            entry.0 += hist.len();
            entry.1 += 1;
        }
    }
    let _ = std::fs::remove_file(path);
    assert_eq!(counts.len(), 2, "{counts:?}");
    for (tag, (values, intervals)) in &counts {
        assert_eq!(*values, 300, "{tag}");
        assert!(*intervals >= 2, "{tag}: {intervals} intervals");
    }
}

#[test]
fn open_loop_with_n_sends_exactly_n() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/plain");
    let (code, summary, stderr) =
        loadgen(&[&url, "-c", "3", "-R", "2000", "-n", "500", "--no-live"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["requests"]), 500);
    assert_eq!(server.counters.route("/plain"), 500);
}

#[test]
fn unanswered_requests_time_out_and_are_counted() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/hang");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-c",
        "1",
        "-n",
        "3",
        "--timeout",
        "100ms",
        "--no-live",
    ]);
    // Nothing succeeded: the run says so with its exit code.
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(u(&summary["errors"]["timeout"]), 3, "{summary}");
    assert_eq!(u(&summary["lost"]), 3);
    assert_eq!(u(&summary["reconnects"]), 2);
    assert_eq!(server.counters.route("/hang"), 3);
}

#[test]
fn chunked_answers_are_read_and_checked() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "point",
        "--user",
        "alice:pw",
        "-H",
        "X-Chunked: yes",
        "-c",
        "2",
        "-n",
        "20",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&summary["ok"]), 20, "{summary}");
    assert_eq!(server.counters.route("/v2/user/point"), 20);
}

#[test]
fn an_expired_token_means_a_new_login() {
    let server = TestServer::start(Faults::default());
    let url = server.url("/");
    let (code, summary, stderr) = loadgen(&[
        &url,
        "-s",
        "point",
        "--user",
        "short:pw",
        "-c",
        "1",
        "-n",
        "10",
        "--no-live",
    ]);
    assert_eq!(code, 0, "{stderr}");
    // Each token: 3 good answers, then 1003 and a new login. 10 operations: 3 ok, fail,
    // 3 ok, fail, 2 ok.
    assert_eq!(u(&summary["ok"]), 8, "{summary}");
    assert_eq!(u(&summary["errors"]["code_1003"]), 2);
    assert_eq!(u(&summary["logins"]), 3);
    assert_eq!(server.counters.route("/v2/user/login"), 3);
}
