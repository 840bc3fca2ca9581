//! What the doctor reads from the host: sysctl values (under an overridable /proc/sys, so
//! tests can fake a host), resource limits, capabilities, the kernel release and cores.

use std::path::{Path, PathBuf};

/// The root sysctl values are read from; `/proc/sys` unless a test points elsewhere.
#[derive(Clone, Debug)]
pub struct ProcSys {
    root: PathBuf,
}

impl ProcSys {
    pub fn new(root: impl Into<PathBuf>) -> ProcSys {
        ProcSys { root: root.into() }
    }

    pub fn real() -> ProcSys {
        ProcSys::new("/proc/sys")
    }

    /// The raw text of `key` (dotted, as sysctl names it), trimmed; None when this kernel
    /// does not have the key or it cannot be read.
    pub fn text(&self, key: &str) -> Option<String> {
        let path = self.root.join(key.replace('.', "/"));
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
    }

    pub fn number(&self, key: &str) -> Option<u64> {
        self.text(key)?.parse().ok()
    }
}

/// A soft and hard resource limit; `u64::MAX` stands for unlimited (RLIM_INFINITY).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

pub fn rlimit(resource: libc::__rlimit_resource_t) -> Result<Limit, String> {
    let mut value = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let rc = unsafe { libc::getrlimit(resource, &mut value) };
    if rc != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(Limit {
        soft: value.rlim_cur,
        hard: value.rlim_max,
    })
}

pub fn set_rlimit(resource: libc::__rlimit_resource_t, limit: Limit) -> Result<(), String> {
    let value = libc::rlimit {
        rlim_cur: limit.soft,
        rlim_max: limit.hard,
    };
    // SAFETY: setrlimit only reads the struct.
    let rc = unsafe { libc::setrlimit(resource, &value) };
    if rc != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn is_unlimited(value: u64) -> bool {
    value == libc::RLIM_INFINITY
}

/// Bytes as people read them ("unlimited", "8 MiB", "512 KiB").
pub fn show_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    if is_unlimited(bytes) {
        "unlimited".to_string()
    } else if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

pub fn show_count(count: u64) -> String {
    if is_unlimited(count) {
        "unlimited".to_string()
    } else {
        count.to_string()
    }
}

/// Whether this process holds CAP_IPC_LOCK in its effective set: io_uring then charges
/// nothing to the memlock limit (the kernel skips the per-user accounting entirely).
pub fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK_BIT: u32 = 14;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << CAP_IPC_LOCK_BIT) != 0)
}

/// A kernel release such as "6.18.44-fc-v595" as (major, minor); None when unparsable.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Cores this process may run on (its affinity mask and cgroup quota, as std computes them).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed statvfs is a valid out-parameter; c_path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if rc != 0 {
        return None;
    }
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("5.8.0"), Some((5, 8)));
        assert_eq!(kernel_version("4.19.0-25-amd64"), Some((4, 19)));
        assert_eq!(kernel_version("6.1"), Some((6, 1)));
        assert_eq!(kernel_version("garbage"), None);
        assert_eq!(kernel_version(""), None);
    }

    #[test]
    fn bytes_show_in_the_largest_whole_unit() {
        assert_eq!(show_bytes(512 * 1024), "512 KiB");
        assert_eq!(show_bytes(30 << 20), "30 MiB");
        assert_eq!(show_bytes(1 << 30), "1 GiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
        assert_eq!(show_bytes(libc::RLIM_INFINITY), "unlimited");
    }

    #[test]
    fn real_limits_are_readable_and_ordered() {
        let nofile = rlimit(libc::RLIMIT_NOFILE).unwrap();
        assert!(nofile.soft <= nofile.hard);
        assert!(nofile.soft > 0);
    }
}
