//! The individual host checks. Each returns one `Check`: OK, WARN (aiocr runs, but worse or
//! with a lower ceiling than configured) or FAIL (aiocr will not start or not work).

use super::host::{self, Limit, ProcSys};
use super::needs::{self, GLOMMIO_IO_MEMORY_BYTES, GLOMMIO_RINGS_PER_EXECUTOR};
use super::report::Check;
use super::uring;
use std::path::{Path, PathBuf};

/// The oldest kernel glommio 0.9 supports (its README; it probes for 5.8's operations).
const MIN_KERNEL: (u32, u32) = (5, 8);
/// IORING_SETUP_COOP_TASKRUN, which the shards' main rings ask for (vendor/README.md); older
/// kernels get rings that interrupt the shard thread with an IPI per socket completion.
const COOP_TASKRUN_KERNEL: (u32, u32) = (5, 19);
/// Below this much free space on the data file system the doctor warns.
const MIN_FREE_DATA_BYTES: u64 = 1 << 30;
pub const MODEL_FILES: [&str; 3] = ["common_old.onnx", "common.onnx", "common_det.onnx"];
pub const CHARSET_FILES: [&str; 2] = ["charset_old.json", "charset_beta.json"];
pub const RUNTIME_LIBRARY: &str = "libonnxruntime.so";

/// A TLS certificate this close to its expiry is a warning.
const CERT_WARN_SECS: i64 = 14 * 86_400;

const TUNING_LIMITS: &str =
    "tuning/limits.d/60-aiocr.conf (login sessions) or tuning/aiocr.service (the service)";

/// The kernel release: /proc/sys/kernel/osrelease (fakeable in tests), else uname(2).
pub fn kernel_release(proc_sys: &ProcSys) -> String {
    proc_sys
        .text("kernel.osrelease")
        .unwrap_or_else(uname_release)
}

fn uname_release() -> String {
    // SAFETY: a zeroed utsname is a valid out-parameter; release is NUL-terminated after.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return "unknown".to_string();
    }
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

pub fn kernel(release: &str) -> Check {
    match host::kernel_version(release) {
        Some(version) if version >= COOP_TASKRUN_KERNEL => Check::ok(
            "kernel",
            format!("Linux {release} (glommio needs 5.8+, COOP_TASKRUN rings 5.19+)"),
        ),
        Some(version) if version >= MIN_KERNEL => Check::warn(
            "kernel",
            format!(
                "Linux {release} runs glommio, but its rings cannot skip the IPI per socket \
                 completion (IORING_SETUP_COOP_TASKRUN is 5.19+): expect fewer requests/s"
            ),
            "upgrade the kernel to 5.19 or newer",
        ),
        Some(_) => Check::fail(
            "kernel",
            format!(
                "Linux {release} is older than 5.8, the oldest glommio (aiocr's reactor) supports"
            ),
            "upgrade the kernel to 5.8 or newer (any current distribution kernel)",
        ),
        None => Check::warn(
            "kernel",
            format!("cannot parse kernel release {release:?}"),
            "make sure the kernel is 5.8 or newer",
        ),
    }
}

pub fn io_uring(proc_sys: &ProcSys) -> Check {
    // kernel.io_uring_disabled (6.6+): 0 = allowed, 1 = only for kernel.io_uring_group,
    // 2 = nobody. 2 is final whatever the probe says; 1 is settled by the probe itself.
    if proc_sys.number("kernel.io_uring_disabled") == Some(2) {
        return Check::fail(
            "io_uring",
            "disabled for every process by kernel.io_uring_disabled = 2",
            "sysctl -w kernel.io_uring_disabled=0 (and persist it in /etc/sysctl.d), or =1 with the \
             service user's group in kernel.io_uring_group",
        );
    }
    match uring::probe() {
        Ok(report) if report.missing_opcodes.is_empty() => Check::ok(
            "io_uring",
            format!(
                "rings of {} entries created (plain and IOPOLL), a NOP completed, all operations glommio uses are supported",
                needs::GLOMMIO_RING_DEPTH
            ),
        ),
        Ok(report) => Check::fail(
            "io_uring",
            format!("the kernel lacks io_uring operations glommio needs: {}", report.missing_opcodes.join(", ")),
            "upgrade the kernel to 5.8 or newer",
        ),
        Err(error) => Check::fail("io_uring", format!("not usable: {error}"), uring_fix(&error.error)),
    }
}

fn uring_fix(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "io_uring is blocked: check kernel.io_uring_disabled (0 allows \
             everyone; 1 only kernel.io_uring_group) and seccomp (containers: Docker's default profile blocks \
             io_uring_setup/io_uring_enter/io_uring_register; run with a profile that allows them)"
            .to_string(),
        Some(libc::ENOSYS) => "this kernel has no io_uring (CONFIG_IO_URING off, or blocked by a seccomp \
             filter that answers ENOSYS): use a kernel/container that allows it"
            .to_string(),
        Some(libc::ENOMEM) => format!("the memlock limit is too low for the rings: raise it, see {TUNING_LIMITS}"),
        _ => "see the error; aiocr needs a working io_uring (kernel 5.8+)".to_string(),
    }
}

pub fn memlock(shards: usize, kernel: Option<(u32, u32)>, has_cap_ipc_lock: bool) -> Check {
    let need = needs::memlock_need(shards as u64, kernel);
    let limit = match host::rlimit(libc::RLIMIT_MEMLOCK) {
        Ok(limit) => limit,
        Err(error) => return Check::fail("memlock", error, "see the error"),
    };
    let shown = format!(
        "soft {}, hard {}",
        host::show_bytes(limit.soft),
        host::show_bytes(limit.hard)
    );
    let registered = format!(
        "{} to register glommio's I/O buffers ({shards} shard(s) x {} rings x {})",
        host::show_bytes(need.to_register_bytes),
        GLOMMIO_RINGS_PER_EXECUTOR,
        host::show_bytes(GLOMMIO_IO_MEMORY_BYTES)
    );
    if has_cap_ipc_lock {
        return Check::ok(
            "memlock",
            format!(
                "{shown}; not charged: this process has CAP_IPC_LOCK (root). A service user without it \
                 needs {}",
                registered
            ),
        );
    }
    if limit.soft < need.to_start_bytes {
        return Check::fail(
            "memlock",
            format!(
                "{shown}; glommio needs {} to start (io_uring charges pinned memory to this limit)",
                host::show_bytes(need.to_start_bytes)
            ),
            format!(
                "raise memlock to at least {}: {TUNING_LIMITS}",
                host::show_bytes(need.to_register_bytes)
            ),
        );
    }
    if limit.soft < need.to_register_bytes {
        return Check::warn(
            "memlock",
            format!(
                "{shown}; enough to start, below the {registered}: glommio then skips registering them \
                 (slower storage I/O through glommio). The limit counts all processes of this user"
            ),
            format!("raise memlock to at least {}: {TUNING_LIMITS}", host::show_bytes(need.to_register_bytes)),
        );
    }
    Check::ok(
        "memlock",
        format!(
            "{shown}; needs {}, {registered}",
            host::show_bytes(need.to_start_bytes)
        ),
    )
}

pub fn nofile(shards: usize, max_connections_per_shard: usize, proc_sys: &ProcSys) -> Check {
    let need = needs::nofile_need(shards as u64, max_connections_per_shard as u64);
    let limit = match host::rlimit(libc::RLIMIT_NOFILE) {
        Ok(limit) => limit,
        Err(error) => return Check::fail("nofile", error, "see the error"),
    };
    let shown = format!(
        "soft {}, hard {}",
        host::show_count(limit.soft),
        host::show_count(limit.hard)
    );
    let need_text = format!(
        "{need} needed ({shards} shard(s) x ({max_connections_per_shard} connections + {}) + {})",
        needs::FDS_PER_SHARD_OVERHEAD,
        needs::FDS_PROCESS_OVERHEAD
    );
    // Too few descriptors lower the connection ceiling below the configured one; the server
    // still starts and serves, so this is a warning.
    if limit.hard < need {
        return Check::warn(
            "nofile",
            format!(
                "{shown}; {need_text}: aiocr serve lowers max_connections_per_shard to {} to stay \
                 within it",
                needs::connections_fitting(shards as u64, limit.hard)
            ),
            format!(
                "raise nofile to at least {need} ({TUNING_LIMITS}; it cannot exceed fs.nr_open), or lower \
                 AIOCR_MAX_CONNECTIONS_PER_SHARD"
            ),
        );
    }
    if let Some(file_max) = proc_sys
        .number("fs.file-max")
        .filter(|file_max| *file_max < need)
    {
        return Check::warn(
            "nofile",
            format!("{shown}; {need_text}, but fs.file-max (all processes together) is {file_max}"),
            "sudo tuning/apply.sh --apply (raises fs.file-max)",
        );
    }
    let soft_note = soft_limit_note(limit, need);
    Check::ok("nofile", format!("{shown}; {need_text}{soft_note}"))
}

fn soft_limit_note(limit: Limit, need: u64) -> &'static str {
    if limit.soft < need {
        "; aiocr serve raises its soft limit to the hard one at start"
    } else {
        ""
    }
}

pub fn backlog(backlog: u32, proc_sys: &ProcSys) -> Check {
    let somaxconn = proc_sys.number("net.core.somaxconn");
    let syn_backlog = proc_sys.number("net.ipv4.tcp_max_syn_backlog");
    let (Some(somaxconn), Some(syn_backlog)) = (somaxconn, syn_backlog) else {
        return Check::warn(
            "backlog",
            "cannot read net.core.somaxconn or net.ipv4.tcp_max_syn_backlog",
            "tuning/apply.sh --check shows the listen-queue settings",
        );
    };
    let shown = format!("listen backlog {backlog}; net.core.somaxconn {somaxconn}, net.ipv4.tcp_max_syn_backlog {syn_backlog}");
    let fix = format!("sudo tuning/apply.sh --apply (somaxconn and tcp_max_syn_backlog to 65535), or lower AIOCR_BACKLOG to {somaxconn}");
    if somaxconn < u64::from(backlog) {
        return Check::warn(
            "backlog",
            format!("{shown}: the kernel silently cuts each shard's accept queue to {somaxconn}"),
            fix,
        );
    }
    if syn_backlog < u64::from(backlog) {
        return Check::warn(
            "backlog",
            format!("{shown}: bursts of new connections overflow the SYN queue first"),
            fix,
        );
    }
    Check::ok("backlog", shown)
}

pub fn cores(shards: usize, shards_configured: usize) -> Check {
    let usable = host::usable_cores();
    // SAFETY: sysconf has no memory effects.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
    let origin = if shards_configured == 0 {
        " (one per usable core)"
    } else {
        ""
    };
    let shown = format!("{usable} usable core(s) of {online} online; {shards} shard(s){origin}");
    if shards > usable {
        return Check::warn(
            "cores",
            format!("{shown}: shards pinned to the same cores slow each other down"),
            format!("set AIOCR_SHARDS to {usable} or less (0 = one per usable core)"),
        );
    }
    Check::ok("cores", shown)
}

pub fn models(model_dir: &Path) -> Check {
    let mut problems = Vec::new();
    for name in MODEL_FILES {
        if let Err(problem) = readable_file(&model_dir.join(name)) {
            problems.push(format!("{name}: {problem}"));
        }
    }
    for name in CHARSET_FILES {
        if let Err(problem) = charset(&model_dir.join(name)) {
            problems.push(format!("{name}: {problem}"));
        }
    }
    if problems.is_empty() {
        let names = MODEL_FILES
            .iter()
            .chain(CHARSET_FILES.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        return Check::ok("models", format!("{names} in {}", model_dir.display()));
    }
    Check::fail(
        "models",
        format!("in {}: {}", model_dir.display(), problems.join("; ")),
        "run scripts/setup.sh (fetches them into ./models), or point AIOCR_MODEL_DIR at a directory that has them",
    )
}

fn readable_file(path: &Path) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let length = file.metadata().map_err(|error| error.to_string())?.len();
    if length == 0 {
        return Err("empty".to_string());
    }
    Ok(length)
}

/// A model description in ddddocr's custom-model format: `{"charset": [...], "word": ...,
/// "image": ..., "channel": ...}` (scripts/extract_charsets.py writes the built-in ones so).
fn charset(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let description: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| format!("not JSON: {error}"))?;
    match description.get("charset") {
        Some(serde_json::Value::Array(entries)) if !entries.is_empty() => Ok(()),
        _ => Err("has no non-empty \"charset\" list".to_string()),
    }
}

/// ONNX Runtime is loaded at run time; loading it here proves the file is a library for this
/// machine with its dependencies present, and that it is ONNX Runtime (it has OrtGetApiBase).
pub fn onnxruntime(model_dir: &Path) -> Check {
    let path = model_dir.join(RUNTIME_LIBRARY);
    let fix =
        "run scripts/setup.sh (unpacks it from the onnxruntime wheel into ./models), or point \
               AIOCR_MODEL_DIR at a directory that has it";
    if let Err(problem) = readable_file(&path) {
        return Check::fail("onnxruntime", format!("{}: {problem}", path.display()), fix);
    }
    match load_runtime(&path) {
        Ok(()) => Check::ok(
            "onnxruntime",
            format!("{} loads and exports OrtGetApiBase", path.display()),
        ),
        Err(problem) => Check::fail("onnxruntime", format!("{}: {problem}", path.display()), fix),
    }
}

fn load_runtime(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| "path has a NUL byte")?;
    // SAFETY: dlopen/dlsym with valid C strings. The handle is deliberately never closed:
    // unloading ONNX Runtime while its static state exists is not supported, and the doctor
    // exits right after.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return Err(format!("cannot load: {}", dl_error()));
        }
        if libc::dlsym(handle, c"OrtGetApiBase".as_ptr()).is_null() {
            return Err("loads, but has no OrtGetApiBase: not ONNX Runtime".to_string());
        }
    }
    Ok(())
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the C library.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown error".to_string();
    }
    unsafe { std::ffi::CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

pub fn data_dir(data_dir: &Path) -> Check {
    let fix = "create it writable for the user running aiocr (the service: /var/lib/aiocr owned by aiocr), \
               or point AIOCR_DATA elsewhere";
    let result = if data_dir.exists() {
        write_probe(data_dir)
    } else {
        creatable(data_dir)
    };
    let detail = match result {
        Ok(detail) => detail,
        Err(problem) => {
            return Check::fail(
                "data_dir",
                format!("{}: {problem}", data_dir.display()),
                fix,
            )
        }
    };
    match host::free_bytes(&existing_ancestor(data_dir)) {
        Some(free) if free < MIN_FREE_DATA_BYTES => Check::warn(
            "data_dir",
            format!(
                "{}: {detail}; only {} free",
                data_dir.display(),
                host::show_bytes(free)
            ),
            "free space or move AIOCR_DATA: the ledgers and 7 days of results live there",
        ),
        Some(free) => Check::ok(
            "data_dir",
            format!("{}: {detail}; {} MiB free", data_dir.display(), free >> 20),
        ),
        None => Check::ok("data_dir", format!("{}: {detail}", data_dir.display())),
    }
}

/// Creates, syncs and removes a file in the directory: writable for real, not just by mode
/// bits (root ignores those; read-only mounts do not).
fn write_probe(dir: &Path) -> Result<String, String> {
    use std::io::Write;
    if !dir.is_dir() {
        return Err("exists but is not a directory".to_string());
    }
    let probe_path = dir.join(format!(".aiocr-doctor-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&probe_path)?;
        file.write_all(b"aiocr doctor write probe\n")?;
        file.sync_all()
    };
    let result = write();
    let _ = std::fs::remove_file(&probe_path);
    result.map_err(|error| format!("not writable: {error}"))?;
    Ok("writable (a file was created, fsynced and removed)".to_string())
}

/// A missing data directory is fine when aiocr can create it.
fn creatable(dir: &Path) -> Result<String, String> {
    use std::os::unix::ffi::OsStrExt;
    let ancestor = existing_ancestor(dir);
    if !ancestor.is_dir() {
        return Err(format!(
            "cannot be created: {} is not a directory",
            ancestor.display()
        ));
    }
    let c_path = std::ffi::CString::new(ancestor.as_os_str().as_bytes())
        .map_err(|_| "path has a NUL byte")?;
    // SAFETY: access only reads the path. It also reports read-only file systems (EROFS).
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let error = std::io::Error::last_os_error();
        return Err(format!(
            "cannot be created in {}: {error}",
            ancestor.display()
        ));
    }
    Ok(format!(
        "does not exist yet; aiocr serve can create it in {}",
        ancestor.display()
    ))
}

/// NATS, when `nats_url` is set: reachable, JetStream on, room for the largest job, and the
/// job stream's state.
pub fn nats(config: &crate::config::Config) -> Check {
    let probe = match crate::cluster::nats::probe(config) {
        Ok(probe) => probe,
        Err(error) => {
            return Check::fail(
                "nats",
                error,
                "start nats-server with JetStream (tuning/nats/nats-server.conf, \
                 tuning/nats-server.service) or correct nats_url",
            )
        }
    };
    let largest = crate::cluster::nats::max_job_bytes(config);
    if probe.max_payload < largest {
        return Check::warn(
            "nats",
            format!(
                "nats-server {} takes messages of at most {} bytes; a slide job can take {largest}",
                probe.server_version, probe.max_payload
            ),
            format!(
                "set max_payload to at least {largest} in the NATS configuration (tuning/nats/)"
            ),
        );
    }
    match probe.jobs {
        Some((waiting, consumers)) => Check::ok(
            "nats",
            format!(
                "{} (nats-server {}, JetStream): {waiting} job(s) waiting, {consumers} consumer(s)",
                config.cluster.nats_url, probe.server_version
            ),
        ),
        None => Check::ok(
            "nats",
            format!(
                "{} (nats-server {}, JetStream): the job stream is made by the first node or worker",
                config.cluster.nats_url, probe.server_version
            ),
        ),
    }
}

/// Usernames of this node's users that the registry on NATS gives to another node, as the
/// node last found them when it claimed its names again after NATS lost them
/// (docs/cluster.md, "NATS losing its store").
pub fn username_conflicts(data_dir: &Path) -> Check {
    match crate::cluster::registry::read_conflicts(data_dir) {
        Ok(conflicts) if conflicts.is_empty() => Check::ok(
            "usernames",
            "every name of this node's users is this node's in the registry",
        ),
        Ok(conflicts) => {
            let listed: Vec<String> = conflicts
                .iter()
                .map(|(name, node)| format!("{name:?} (node {node})"))
                .collect();
            Check::warn(
                "usernames",
                format!(
                    "{} name(s) of this node's users are claimed by another node: {}",
                    conflicts.len(),
                    listed.join(", ")
                ),
                "rename one of each pair of users (a login through another node reaches the \
                 other node's user), then remove the file username-conflicts from the data directory",
            )
        }
        Err(error) => Check::warn(
            "usernames",
            format!("cannot read the recorded username conflicts: {error}"),
            "check the data directory's permissions",
        ),
    }
}

/// The TLS listener's files: they load as `aiocr serve` loads them (certificate chain, key,
/// the key belongs to the certificate), and the certificate is valid for more than two weeks
/// after `now_unix_secs` (WARN within them, FAIL once expired).
pub fn tls(cert: &Path, key: &Path, now_unix_secs: i64) -> Check {
    let renew = "renew the certificate, write it over tls_cert (and tls_key), then send aiocr \
                 SIGHUP (systemctl reload aiocr): new connections get it without a restart";
    let loaded = crate::tls::load_server_config(cert, key)
        .and_then(|_| crate::tls::certificate_expiry_unix_secs(cert));
    let expiry = match loaded {
        Ok(expiry) => expiry,
        Err(error) => {
            return Check::fail(
                "tls",
                error,
                "give tls_cert a PEM certificate chain (server certificate first) and tls_key \
                 its PEM private key, both readable by the user running aiocr",
            )
        }
    };
    let left_secs = expiry - now_unix_secs;
    let until = format!(
        "{} valid until {} UTC",
        cert.display(),
        crate::tls::utc_date(expiry)
    );
    if left_secs <= 0 {
        let expired = format!(
            "{} expired on {} UTC",
            cert.display(),
            crate::tls::utc_date(expiry)
        );
        return Check::fail("tls", expired, renew);
    }
    let days_left = left_secs / 86_400;
    if left_secs < CERT_WARN_SECS {
        return Check::warn("tls", format!("{until}: {days_left} day(s) left"), renew);
    }
    Check::ok("tls", format!("{until} ({days_left} days left)"))
}

fn existing_ancestor(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .find(|candidate| candidate.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

    #[test]
    fn kernel_verdicts_follow_glommio_and_coop_taskrun() {
        assert_eq!(kernel("6.18.44-fc-v595").status, Status::Ok);
        assert_eq!(kernel("5.19.0").status, Status::Ok);
        let without_coop = kernel("5.15.0-91-generic");
        assert_eq!(without_coop.status, Status::Warn);
        assert!(without_coop.detail.contains("COOP_TASKRUN"));
        assert_eq!(kernel("5.4.0-150-generic").status, Status::Fail);
        assert_eq!(kernel("not-a-release").status, Status::Warn);
    }

    #[test]
    fn tls_verdicts_follow_the_certificate_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        // 2033-05-18 03:33:20 UTC
        let not_after: i64 = 2_000_000_000;
        params.not_after = rcgen::date_time_ymd(2033, 5, 18)
            + std::time::Duration::from_secs(3 * 3600 + 33 * 60 + 20);
        let certificate = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let at = |days_before: i64| tls(&cert_path, &key_path, not_after - days_before * 86_400);
        let fine = at(100);
        assert_eq!(fine.status, Status::Ok);
        assert!(
            fine.detail
                .contains("valid until 2033-05-18 UTC (100 days left)"),
            "{}",
            fine.detail
        );
        let soon = at(5);
        assert_eq!(soon.status, Status::Warn);
        assert!(soon.detail.contains("5 day(s) left"), "{}", soon.detail);
        assert!(soon.fix.unwrap().contains("SIGHUP"));
        assert_eq!(at(14).status, Status::Ok);
        assert_eq!(at(13).status, Status::Warn);
        let expired = at(0);
        assert_eq!(expired.status, Status::Fail);
        assert!(
            expired.detail.contains("expired on 2033-05-18"),
            "{}",
            expired.detail
        );
        // A key that is not the certificate's.
        let other = dir.path().join("other.pem");
        std::fs::write(&other, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let mismatched = tls(&cert_path, &other, not_after - 100 * 86_400);
        assert_eq!(mismatched.status, Status::Fail);
        assert!(
            mismatched.detail.contains("with tls_key"),
            "{}",
            mismatched.detail
        );
    }
}
