//! `aiocr doctor` run as the real binary against temporary model/data directories and a fake
//! /proc/sys tree (the hidden AIOCR_DOCTOR_PROC_SYS); io_uring, limits and dlopen are real.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every environment variable the doctor reads; removed so the caller's shell cannot leak in.
const DOCTOR_ENV: &[&str] = &[
    "AIOCR_SHARDS",
    "AIOCR_MAX_CONNECTIONS_PER_SHARD",
    "AIOCR_MAX_CONNECTIONS",
    "AIOCR_BACKLOG",
    "AIOCR_MODEL_DIR",
    "AIOCR_DATA",
    "AIOCR_DOCTOR_PROC_SYS",
];

/// A fake /proc/sys with a current kernel and listen queues that fit a backlog of 1024.
struct FakeHost {
    dir: tempfile::TempDir,
}

impl FakeHost {
    fn new() -> FakeHost {
        let host = FakeHost {
            dir: tempfile::tempdir().unwrap(),
        };
        host.set("kernel.osrelease", "6.8.0-40-generic");
        host.set("net.core.somaxconn", "4096");
        host.set("net.ipv4.tcp_max_syn_backlog", "4096");
        host.set("fs.file-max", "9223372036854775807");
        host
    }

    fn set(&self, key: &str, value: &str) {
        let path = self.proc_sys().join(key.replace('.', "/"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{value}\n")).unwrap();
    }

    fn proc_sys(&self) -> PathBuf {
        self.dir.path().join("proc/sys")
    }
}

/// The models set-up fetched (scripts/test.sh exports AIOCR_MODEL_DIR; else ./models).
fn real_model_dir() -> PathBuf {
    let dir = std::env::var_os("AIOCR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    assert!(
        dir.join("libonnxruntime.so").is_file(),
        "{} has no models: run scripts/setup.sh or set AIOCR_MODEL_DIR",
        dir.display()
    );
    dir
}

struct Run {
    exit_code: i32,
    stdout: String,
}

fn doctor(host: &FakeHost, args: &[&str], env: &[(&str, &str)]) -> Run {
    doctor_with_memlock(host, args, env, None)
}

/// Runs the doctor; with `memlock_bytes`, as a process that has that RLIMIT_MEMLOCK and no
/// CAP_IPC_LOCK (dropped from the bounding set, so exec cannot grant it back to root):
/// exactly what an unprivileged service user with a low limit is.
fn doctor_with_memlock(
    host: &FakeHost,
    args: &[&str],
    env: &[(&str, &str)],
    memlock_bytes: Option<u64>,
) -> Run {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_aiocr"));
    command.arg("doctor").args(args);
    if let Some(bytes) = memlock_bytes {
        // SAFETY: only async-signal-safe calls (prctl, setrlimit) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                const CAP_IPC_LOCK: libc::c_ulong = 14;
                // Fails with EPERM for non-root runners, who do not have the capability anyway.
                libc::prctl(libc::PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0);
                // Only the soft limit: raising the hard one needs CAP_SYS_RESOURCE.
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = bytes.min(limit.rlim_max);
                if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    for name in DOCTOR_ENV {
        command.env_remove(name);
    }
    command.env("AIOCR_DOCTOR_PROC_SYS", host.proc_sys());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "doctor wrote to stderr: {stderr}");
    Run {
        exit_code: output.status.code().expect("doctor exits normally"),
        stdout,
    }
}

fn doctor_json(host: &FakeHost, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    doctor_json_with_memlock(host, args, env, None)
}

fn doctor_json_with_memlock(
    host: &FakeHost,
    args: &[&str],
    env: &[(&str, &str)],
    memlock: Option<u64>,
) -> (i32, Value) {
    let mut all_args = vec!["--json"];
    all_args.extend_from_slice(args);
    let run = doctor_with_memlock(host, &all_args, env, memlock);
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    (run.exit_code, report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check"))
}

fn status(report: &Value, name: &str) -> String {
    check(report, name)["status"].as_str().unwrap().to_string()
}

fn names_with_status(report: &Value, wanted: &str) -> Vec<String> {
    let checks = report["checks"].as_array().unwrap();
    checks
        .iter()
        .filter(|c| c["status"] == wanted)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Arguments for a small, valid configuration on the real models and a fresh data directory.
fn ready_args(data: &Path, model_dir: &Path) -> Vec<String> {
    [
        "--shards",
        "1",
        "--max-connections-per-shard",
        "100",
        "--backlog",
        "1024",
        "--model-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        path_str(model_dir).to_string(),
        "--data".to_string(),
        path_str(data).to_string(),
    ])
    .collect()
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn missing_models_fail_with_the_fix_and_exit_1() {
    let host = FakeHost::new();
    let models = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--shards",
        "1",
        "--max-connections-per-shard",
        "100",
        "--model-dir",
        path_str(models.path()),
    ];
    let mut args = args.to_vec();
    args.extend(["--data", path_str(data.path())]);
    let (exit_code, report) = doctor_json(&host, &args, &[]);

    assert_eq!(exit_code, 1);
    assert_eq!(report["ok"], false);
    assert_eq!(
        names_with_status(&report, "FAIL"),
        ["models", "onnxruntime"]
    );
    assert_eq!(report["summary"]["fail"], 2);
    let models_check = check(&report, "models");
    for file in [
        "common_old.onnx",
        "common.onnx",
        "common_det.onnx",
        "charset_old.json",
        "charset_beta.json",
    ] {
        assert!(
            models_check["detail"].as_str().unwrap().contains(file),
            "{models_check}"
        );
    }
    assert!(models_check["fix"]
        .as_str()
        .unwrap()
        .contains("scripts/setup.sh"));
    assert!(check(&report, "onnxruntime")["detail"]
        .as_str()
        .unwrap()
        .contains("libonnxruntime.so"));
    assert_eq!(status(&report, "data_dir"), "OK");
    assert_eq!(status(&report, "kernel"), "OK");
}

#[test]
fn broken_model_files_fail_too() {
    let host = FakeHost::new();
    let models = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(models.path().join("common_old.onnx"), b"").unwrap();
    std::fs::write(models.path().join("common.onnx"), b"onnx").unwrap();
    std::fs::write(
        models.path().join("charset_old.json"),
        b"{\"charset\": [\"\", \"a\"]}",
    )
    .unwrap();
    std::fs::write(models.path().join("charset_beta.json"), b"[not json").unwrap();
    std::fs::write(
        models.path().join("libonnxruntime.so"),
        b"not a shared library",
    )
    .unwrap();
    let args = ready_args(data.path(), models.path());
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 1);
    let detail = check(&report, "models")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("common_old.onnx: empty"), "{detail}");
    assert!(detail.contains("charset_beta.json: not JSON"), "{detail}");
    assert!(!detail.contains("charset_old.json"), "{detail}");
    assert!(!detail.contains("common.onnx:"), "{detail}");
    assert!(check(&report, "onnxruntime")["detail"]
        .as_str()
        .unwrap()
        .contains("cannot load"));
}

#[test]
fn a_ready_host_has_no_failure_and_exits_0() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(&data.path().join("new-data"), &real_model_dir());
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    for name in [
        "kernel",
        "io_uring",
        "backlog",
        "cores",
        "models",
        "onnxruntime",
        "data_dir",
    ] {
        assert_eq!(status(&report, name), "OK", "{name}: {report:#}");
        assert!(check(&report, name)["fix"].is_null());
    }
    // Limits are the real ones of the test process: at worst a warning for 1 shard x 100.
    for name in ["memlock", "nofile"] {
        assert_ne!(status(&report, name), "FAIL", "{report:#}");
    }
    assert!(check(&report, "data_dir")["detail"]
        .as_str()
        .unwrap()
        .contains("does not exist yet"));
    assert!(
        !data.path().join("new-data").exists(),
        "the doctor only looks, it creates nothing"
    );
    assert_eq!(report["summary"]["fail"], 0);
}

#[test]
fn an_existing_data_directory_is_write_probed_and_left_clean() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(data.path(), &real_model_dir());
    let (_, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(status(&report, "data_dir"), "OK");
    assert!(check(&report, "data_dir")["detail"]
        .as_str()
        .unwrap()
        .contains("fsynced"));
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

#[test]
fn a_data_path_below_a_file_fails() {
    let host = FakeHost::new();
    let scratch = tempfile::tempdir().unwrap();
    let blocker = scratch.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let args = ready_args(&blocker.join("data"), &real_model_dir());
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 1);
    assert_eq!(names_with_status(&report, "FAIL"), ["data_dir"]);
    assert!(check(&report, "data_dir")["fix"]
        .as_str()
        .unwrap()
        .contains("AIOCR_DATA"));
}

#[test]
fn somaxconn_below_the_backlog_warns_with_the_fix_but_exits_0() {
    let host = FakeHost::new();
    host.set("net.core.somaxconn", "128");
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(data.path(), &real_model_dir());
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 0);
    assert_eq!(status(&report, "backlog"), "WARN");
    let backlog = check(&report, "backlog");
    assert!(
        backlog["detail"]
            .as_str()
            .unwrap()
            .contains("cuts each shard's accept queue to 128"),
        "{backlog}"
    );
    assert!(backlog["fix"].as_str().unwrap().contains("tuning/apply.sh"));
}

#[test]
fn a_small_syn_queue_warns_and_a_small_backlog_is_fine() {
    let host = FakeHost::new();
    host.set("net.ipv4.tcp_max_syn_backlog", "256");
    let data = tempfile::tempdir().unwrap();
    let mut args = ready_args(data.path(), &real_model_dir());
    let (_, report) = doctor_json(&host, &as_strs(&args), &[]);
    assert_eq!(status(&report, "backlog"), "WARN");
    assert!(check(&report, "backlog")["detail"]
        .as_str()
        .unwrap()
        .contains("SYN queue"));

    let backlog_value = args.iter().position(|arg| arg == "--backlog").unwrap() + 1;
    args[backlog_value] = "200".to_string();
    let (_, report) = doctor_json(&host, &as_strs(&args), &[]);
    assert_eq!(status(&report, "backlog"), "OK");
}

#[test]
fn a_kernel_older_than_5_8_fails() {
    let host = FakeHost::new();
    host.set("kernel.osrelease", "5.4.0-150-generic");
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(data.path(), &real_model_dir());
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 1);
    assert_eq!(names_with_status(&report, "FAIL"), ["kernel"]);
    assert!(check(&report, "kernel")["fix"]
        .as_str()
        .unwrap()
        .contains("5.8"));
}

#[test]
fn io_uring_disabled_by_sysctl_fails() {
    let host = FakeHost::new();
    host.set("kernel.io_uring_disabled", "2");
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(data.path(), &real_model_dir());
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 1);
    assert_eq!(names_with_status(&report, "FAIL"), ["io_uring"]);
    assert!(check(&report, "io_uring")["fix"]
        .as_str()
        .unwrap()
        .contains("kernel.io_uring_disabled=0"));
}

#[test]
fn more_connections_than_descriptors_warn_with_the_need() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let mut args = ready_args(data.path(), &real_model_dir());
    let connections = args
        .iter()
        .position(|arg| arg == "--max-connections-per-shard")
        .unwrap()
        + 1;
    args[connections] = "1000000000000".to_string();
    let (exit_code, report) = doctor_json(&host, &as_strs(&args), &[]);

    assert_eq!(exit_code, 0);
    assert_eq!(status(&report, "nofile"), "WARN");
    let nofile = check(&report, "nofile");
    assert!(
        nofile["detail"]
            .as_str()
            .unwrap()
            .contains("1000000000320 needed"),
        "{nofile}"
    );
    assert!(nofile["fix"]
        .as_str()
        .unwrap()
        .contains("AIOCR_MAX_CONNECTIONS_PER_SHARD"));
}

#[test]
fn settings_come_from_the_server_environment_names() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let model_dir = real_model_dir();
    let env = [
        ("AIOCR_SHARDS", "3"),
        ("AIOCR_MAX_CONNECTIONS", "77"),
        ("AIOCR_BACKLOG", "99"),
        ("AIOCR_MODEL_DIR", path_str(&model_dir)),
        ("AIOCR_DATA", path_str(data.path())),
    ];
    let (_, report) = doctor_json(&host, &[], &env);
    let settings = &report["settings"];
    assert_eq!(settings["shards"], 3);
    assert_eq!(settings["max_connections_per_shard"], 77);
    assert_eq!(settings["backlog"], 99);
    assert_eq!(settings["model_dir"], path_str(&model_dir));
    assert_eq!(settings["data_dir"], path_str(data.path()));
    assert_eq!(status(&report, "models"), "OK");

    // The server's own name wins over the short alias.
    let mut env = env.to_vec();
    env.push(("AIOCR_MAX_CONNECTIONS_PER_SHARD", "55"));
    let (_, report) = doctor_json(&host, &[], &env);
    assert_eq!(report["settings"]["max_connections_per_shard"], 55);
}

#[test]
fn zero_shards_means_one_per_usable_core() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let mut args = ready_args(data.path(), &real_model_dir());
    args[1] = "0".to_string();
    let (_, report) = doctor_json(&host, &as_strs(&args), &[]);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(report["settings"]["shards"], cores);
    assert_eq!(status(&report, "cores"), "OK");

    args[1] = (cores + 1).to_string();
    let (_, report) = doctor_json(&host, &as_strs(&args), &[]);
    assert_eq!(status(&report, "cores"), "WARN");
}

#[test]
fn text_output_has_a_verdict_per_line_and_the_fixes() {
    let host = FakeHost::new();
    let models = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(data.path(), models.path());
    let run = doctor(&host, &as_strs(&args), &[]);

    assert_eq!(run.exit_code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("aiocr doctor: shards 1"),
        "{}",
        run.stdout
    );
    let verdicts: Vec<&str> = lines[1..lines.len() - 1]
        .iter()
        .filter(|line| !line.trim_start().starts_with("fix:"))
        .copied()
        .collect();
    assert_eq!(verdicts.len(), 9, "{}", run.stdout);
    for line in &verdicts {
        assert!(
            ["OK  ", "WARN", "FAIL"]
                .iter()
                .any(|label| line.starts_with(label)),
            "{line}"
        );
    }
    assert!(lines.iter().any(|line| line.starts_with("FAIL  models")));
    assert!(lines
        .iter()
        .any(|line| line.trim_start().starts_with("fix: run scripts/setup.sh")));
    assert!(lines.last().unwrap().ends_with("2 FAIL"), "{}", run.stdout);
}

#[test]
fn memlock_below_glommios_floor_fails_and_below_the_buffers_warns() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let args = ready_args(data.path(), &real_model_dir());

    let hard_bytes = memlock_hard_bytes();
    assert!(
        hard_bytes >= 8 << 20,
        "this test needs a hard memlock limit of 8 MiB or more"
    );
    let (exit_code, report) =
        doctor_json_with_memlock(&host, &as_strs(&args), &[], Some(64 * 1024));
    assert_eq!(exit_code, 1, "{report:#}");
    assert_eq!(status(&report, "memlock"), "FAIL", "{report:#}");
    let memlock = check(&report, "memlock");
    assert!(
        memlock["detail"].as_str().unwrap().contains("soft 64 KiB"),
        "{memlock}"
    );
    assert!(
        memlock["detail"]
            .as_str()
            .unwrap()
            .contains("512 KiB to start"),
        "{memlock}"
    );
    assert!(
        memlock["fix"].as_str().unwrap().contains("30 MiB"),
        "{memlock}"
    );
    assert!(
        memlock["fix"].as_str().unwrap().contains("tuning/"),
        "{memlock}"
    );

    let (exit_code, report) = doctor_json_with_memlock(&host, &as_strs(&args), &[], Some(8 << 20));
    assert_eq!(status(&report, "memlock"), "WARN", "{report:#}");
    assert_eq!(exit_code, 0, "{report:#}");

    if hard_bytes < 30 << 20 {
        eprintln!("hard memlock limit below 30 MiB: the OK case cannot be produced here");
        return;
    }
    let (_, report) = doctor_json_with_memlock(&host, &as_strs(&args), &[], Some(30 << 20));
    assert_eq!(status(&report, "memlock"), "OK", "{report:#}");
}

fn memlock_hard_bytes() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) },
        0
    );
    limit.rlim_max
}

#[test]
fn the_tls_certificate_is_checked_only_when_tls_is_on() {
    let host = FakeHost::new();
    let data = tempfile::tempdir().unwrap();
    let plain = ready_args(&data.path().join("new-data"), &real_model_dir());
    let (_, report) = doctor_json(&host, &as_strs(&plain), &[]);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"tls"), "{names:?}");

    let files = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["localhost".to_string()];
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_after = rcgen::date_time_ymd(4000, 1, 1);
    let certificate = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (files.path().join("c.pem"), files.path().join("k.pem"));
    std::fs::write(&cert_path, certificate.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut tls = plain.clone();
    for setting in [
        "tls_listen=127.0.0.1:8443".to_string(),
        format!("tls_cert={}", path_str(&cert_path)),
        format!("tls_key={}", path_str(&key_path)),
    ] {
        tls.extend(["--set".to_string(), setting]);
    }
    let (_, report) = doctor_json(&host, &as_strs(&tls), &[]);
    assert_eq!(status(&report, "tls"), "OK", "{report:#}");
    assert!(check(&report, "tls")["detail"]
        .as_str()
        .unwrap()
        .contains("valid until 4000-01-01 UTC"));

    // An unreadable key: FAIL, exit 1.
    let last = tls.len() - 1;
    tls[last] = format!("tls_key={}", path_str(&files.path().join("missing.pem")));
    let (exit_code, report) = doctor_json(&host, &as_strs(&tls), &[]);
    assert_eq!(status(&report, "tls"), "FAIL", "{report:#}");
    assert_eq!(exit_code, 1);
}
