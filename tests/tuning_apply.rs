//! tuning/apply.sh against a fake host: a /proc/sys tree, an /etc and a state directory in a
//! temporary directory (PROC_SYS, ETC_DIR, STATE_DIR), never the real system.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/apply.sh")
}

/// Values of a stock, untuned host (a 6.x kernel's defaults).
const STOCK: &[(&str, &str)] = &[
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_max_syn_backlog", "1024"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.core.netdev_max_backlog", "1000"),
    ("fs.file-max", "9223372036854775807"),
    ("fs.nr_open", "1048576"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.tcp_tw_reuse", "2"),
    ("net.ipv4.tcp_timestamps", "1"),
];

struct FakeHost {
    dir: tempfile::TempDir,
}

struct Run {
    exit_code: i32,
    stdout: String,
    stderr: String,
}

impl FakeHost {
    fn stock() -> FakeHost {
        let host = FakeHost {
            dir: tempfile::tempdir().unwrap(),
        };
        for (key, value) in STOCK {
            host.set(key, value);
        }
        host
    }

    fn key_path(&self, key: &str) -> PathBuf {
        self.dir.path().join("proc/sys").join(key.replace('.', "/"))
    }

    fn set(&self, key: &str, value: &str) {
        let path = self.key_path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{value}\n")).unwrap();
    }

    fn remove(&self, key: &str) {
        std::fs::remove_file(self.key_path(key)).unwrap();
    }

    fn get(&self, key: &str) -> String {
        std::fs::read_to_string(self.key_path(key))
            .unwrap()
            .trim()
            .to_string()
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/previous-sysctl")
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = Command::new("bash")
            .arg(script())
            .args(args)
            .env("PROC_SYS", self.dir.path().join("proc/sys"))
            .env("ETC_DIR", self.etc())
            .env("STATE_DIR", self.dir.path().join("state"))
            .output()
            .unwrap();
        Run {
            exit_code: output.status.code().expect("apply.sh exits normally"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

/// The check's row for a key, split into columns: key, current..., recommended..., verdict.
fn row(stdout: &str, key: &str) -> String {
    let prefix = format!("{key} ");
    let line = stdout
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key} row:\n{stdout}"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn check_on_a_stock_server_shows_each_key_and_exits_1() {
    let host = FakeHost::stock();
    let run = host.run(&["--check"]);

    assert_eq!(run.exit_code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        row(&run.stdout, "net.core.somaxconn"),
        "net.core.somaxconn 4096 65535 below"
    );
    assert_eq!(
        row(&run.stdout, "net.ipv4.tcp_max_syn_backlog"),
        "net.ipv4.tcp_max_syn_backlog 1024 65535 below"
    );
    assert_eq!(
        row(&run.stdout, "net.core.netdev_max_backlog"),
        "net.core.netdev_max_backlog 1000 16384 below"
    );
    assert_eq!(
        row(&run.stdout, "net.ipv4.tcp_syncookies"),
        "net.ipv4.tcp_syncookies 1 1 ok"
    );
    // Larger than bash arithmetic likes, and above the recommendation: ok.
    assert_eq!(
        row(&run.stdout, "fs.file-max"),
        "fs.file-max 9223372036854775807 2097152 ok"
    );
    assert_eq!(
        row(&run.stdout, "fs.nr_open"),
        "fs.nr_open 1048576 1048576 ok"
    );
    // The server role does not look at load-generator keys.
    assert!(!run.stdout.contains("ip_local_port_range"));
    assert!(run.stdout.contains("3 key(s) below"));
    assert!(run.stdout.contains("--apply --role server"));
    assert!(run.stdout.contains("not installed:"));
}

#[test]
fn check_on_a_stock_load_generator_judges_ranges_and_modes() {
    let host = FakeHost::stock();
    let run = host.run(&["--check", "--role", "loadgen"]);

    assert_eq!(run.exit_code, 1);
    assert_eq!(
        row(&run.stdout, "net.ipv4.ip_local_port_range"),
        "net.ipv4.ip_local_port_range 32768 60999 10240 65535 below"
    );
    // 2 (loopback only) is numerically more than 1 but covers less: below.
    assert_eq!(
        row(&run.stdout, "net.ipv4.tcp_tw_reuse"),
        "net.ipv4.tcp_tw_reuse 2 1 below"
    );
    assert_eq!(
        row(&run.stdout, "net.ipv4.tcp_timestamps"),
        "net.ipv4.tcp_timestamps 1 1 ok"
    );
    assert!(!run.stdout.contains("somaxconn"));

    host.set("net.ipv4.ip_local_port_range", "1024\t65535");
    host.set("net.ipv4.tcp_tw_reuse", "1");
    let run = host.run(&["--check", "--role=loadgen"]);
    assert_eq!(run.exit_code, 0, "{}", run.stdout);
    assert_eq!(
        row(&run.stdout, "net.ipv4.ip_local_port_range"),
        "net.ipv4.ip_local_port_range 1024 65535 10240 65535 ok"
    );
}

#[test]
fn check_passes_on_a_tuned_host_and_skips_keys_this_kernel_lacks() {
    let host = FakeHost::stock();
    host.set("net.core.somaxconn", "65535");
    host.set("net.ipv4.tcp_max_syn_backlog", "100000");
    host.set("net.core.netdev_max_backlog", "16384");
    host.remove("fs.nr_open");
    let run = host.run(&["--check"]);

    assert_eq!(run.exit_code, 0, "{}", run.stdout);
    assert_eq!(
        row(&run.stdout, "fs.nr_open"),
        "fs.nr_open - 1048576 skipped: not on this kernel"
    );
    assert!(run
        .stdout
        .contains("every key meets the recommendation (1 skipped)"));
}

#[test]
fn apply_raises_installs_and_records_then_changes_nothing_the_second_time() {
    let host = FakeHost::stock();
    host.remove("net.ipv4.tcp_syncookies");
    let run = host.run(&["--apply", "--role", "both"]);
    assert_eq!(run.exit_code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run
        .stdout
        .contains("skipped net.ipv4.tcp_syncookies: not on this kernel"));

    assert_eq!(host.get("net.core.somaxconn"), "65535");
    assert_eq!(host.get("net.ipv4.tcp_max_syn_backlog"), "65535");
    assert_eq!(host.get("net.ipv4.ip_local_port_range"), "10240 65535");
    assert_eq!(host.get("net.ipv4.tcp_tw_reuse"), "1");
    // Never lowered.
    assert_eq!(host.get("fs.file-max"), "9223372036854775807");

    let server_file = host.etc().join("sysctl.d/60-aiocr-server.conf");
    let installed = read(&server_file);
    assert!(installed
        .lines()
        .any(|line| line == "net.core.somaxconn = 65535"));
    assert!(installed.contains(
        "# fs.file-max = 2097152   (not applied: this host already has 9223372036854775807)"
    ));
    assert!(installed.contains("# net.ipv4.tcp_syncookies = 1   (skipped: not on this kernel)"));
    assert!(!installed.contains("tcp_tw_recycle ="));
    assert!(host.etc().join("sysctl.d/61-aiocr-loadgen.conf").is_file());
    let limits = read(&host.etc().join("security/limits.d/60-aiocr.conf"));
    assert_eq!(
        limits,
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/limits.d/60-aiocr.conf"))
    );

    let state = read(&host.state_file());
    assert!(state.lines().any(|line| line == "net.core.somaxconn\t4096"));
    assert!(state
        .lines()
        .any(|line| line == "net.ipv4.ip_local_port_range\t32768 60999"));
    assert!(!state.contains("fs.file-max"));

    let again = host.run(&["--apply", "--role", "both"]);
    assert_eq!(again.exit_code, 0);
    assert!(!again.stdout.contains("set "), "{}", again.stdout);
    assert_eq!(
        again.stdout.matches("unchanged:").count(),
        3,
        "{}",
        again.stdout
    );
    assert_eq!(read(&server_file), installed);
    assert_eq!(
        read(&host.state_file()),
        state,
        "the original values are kept, not ours"
    );

    let check = host.run(&["--check", "--role", "both"]);
    assert_eq!(check.exit_code, 0, "{}", check.stdout);
    assert!(check.stdout.contains("installed:"));
}

#[test]
fn revert_restores_the_recorded_values_and_removes_its_files() {
    let host = FakeHost::stock();
    assert_eq!(host.run(&["--apply", "--role", "both"]).exit_code, 0);
    let run = host.run(&["--revert"]);
    assert_eq!(run.exit_code, 0, "{}{}", run.stdout, run.stderr);

    for (key, value) in STOCK {
        assert_eq!(host.get(key), value.replace('\t', " "), "{key}");
    }
    assert!(!host.etc().join("sysctl.d/60-aiocr-server.conf").exists());
    assert!(!host.etc().join("sysctl.d/61-aiocr-loadgen.conf").exists());
    assert!(!host.etc().join("security/limits.d/60-aiocr.conf").exists());
    assert!(!host.state_file().exists());
    assert_eq!(host.run(&["--check"]).exit_code, 1, "back to a stock host");

    let again = host.run(&["--revert"]);
    assert_eq!(again.exit_code, 0);
    assert!(!again.stdout.contains("restored"), "{}", again.stdout);
}

#[test]
fn revert_leaves_files_that_are_not_its_own() {
    let host = FakeHost::stock();
    let other = host.etc().join("sysctl.d/99-local.conf");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, "vm.swappiness = 10\n").unwrap();
    assert_eq!(host.run(&["--apply"]).exit_code, 0);
    assert_eq!(host.run(&["--revert"]).exit_code, 0);
    assert_eq!(read(&other), "vm.swappiness = 10\n");
}

#[test]
fn bad_usage_exits_2() {
    let host = FakeHost::stock();
    for args in [
        &[][..],
        &["--frobnicate"][..],
        &["--check", "--role", "moon"][..],
        &["--check", "--role"][..],
    ] {
        let run = host.run(args);
        assert_eq!(run.exit_code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("usage:"), "{args:?}");
    }
}

#[test]
fn the_shipped_sysctl_files_never_set_tcp_tw_recycle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/sysctl.d");
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = read(&entry.unwrap().path());
        for line in text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
        {
            assert!(!line.contains("tcp_tw_recycle"), "{line}");
        }
        assert!(text.contains("removed in Linux 4.12"));
    }
}

/// scripts/test.sh runs shellcheck too; this keeps `cargo test` honest where it is installed.
#[test]
fn operator_scripts_pass_shellcheck() {
    let Ok(version) = Command::new("shellcheck").arg("--version").output() else {
        eprintln!("shellcheck is not installed; skipped (scripts/test.sh runs it)");
        return;
    };
    assert!(version.status.success());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
    let scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sh"))
        .collect();
    assert!(!scripts.is_empty());
    let output = Command::new("shellcheck").args(&scripts).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
