//! What `aiocr serve` calls before it starts its shards: raise the descriptor limit as far as
//! allowed, and refuse early, with the fix, when io_uring or locked memory cannot work
//! (glommio's own failures there are a panic or a bare "MemLockLimit(65536/524288)").

use super::checks;
use super::host::{self, Limit, ProcSys};
use super::report::{Check, Status};

/// Raises the soft RLIMIT_NOFILE to the hard one (an unprivileged process may) and returns
/// the (soft, hard) limits in effect afterwards.
pub fn raise_nofile_limit() -> Result<(u64, u64), String> {
    let limit = host::rlimit(libc::RLIMIT_NOFILE)?;
    if limit.soft >= limit.hard {
        return Ok((limit.soft, limit.hard));
    }
    // An "unlimited" hard limit cannot be the soft one: the kernel caps nofile at fs.nr_open.
    let target = if host::is_unlimited(limit.hard) {
        ProcSys::real()
            .number("fs.nr_open")
            .ok_or("cannot read fs.nr_open")?
    } else {
        limit.hard
    };
    host::set_rlimit(
        libc::RLIMIT_NOFILE,
        Limit {
            soft: target,
            hard: limit.hard,
        },
    )
    .map_err(|error| {
        format!(
            "raising the open-files limit from {} to {target}: {error}",
            limit.soft
        )
    })?;
    let raised = host::rlimit(libc::RLIMIT_NOFILE)?;
    assert!(
        raised.soft >= limit.soft,
        "raising never lowers the soft limit"
    );
    Ok((raised.soft, raised.hard))
}

/// Refuses (Err, with what is wrong and the fix) when the kernel is too old, io_uring cannot
/// be set up, or locked memory is below what glommio needs to start `shards` executors.
/// What only lowers performance or the connection ceiling (memlock too low to register
/// glommio's buffers, nofile below `shards x max_connections_per_shard`) is printed to
/// stderr as a warning and does not refuse. Call `raise_nofile_limit` first.
pub fn preflight(shards: usize, max_connections_per_shard: usize) -> Result<(), String> {
    assert!(
        shards > 0,
        "the caller resolves 'one shard per core' before the preflight"
    );
    let proc_sys = ProcSys::real();
    let release = checks::kernel_release(&proc_sys);
    let kernel_check = checks::kernel(&release);
    // On an old kernel the io_uring probe can fail in less readable ways; report the cause.
    if kernel_check.status == Status::Fail {
        return Err(refusal(&[kernel_check]));
    }
    let found = [
        checks::io_uring(&proc_sys),
        checks::memlock(
            shards,
            host::kernel_version(&release),
            host::has_cap_ipc_lock(),
        ),
        checks::nofile(shards, max_connections_per_shard, &proc_sys),
    ];
    let failures: Vec<Check> = found
        .iter()
        .filter(|check| check.status == Status::Fail)
        .cloned()
        .collect();
    if !failures.is_empty() {
        return Err(refusal(&failures));
    }
    for check in found.iter().filter(|check| check.status != Status::Ok) {
        log_line!("aiocr: warning: {}: {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            log_line!("aiocr: warning: fix: {fix}");
        }
    }
    Ok(())
}

fn refusal(failures: &[Check]) -> String {
    let mut message = String::from("this host cannot run the server:");
    for check in failures {
        message.push_str(&format!("\n  {}: {}", check.name, check.detail));
        if let Some(fix) = &check.fix {
            message.push_str(&format!("\n  fix: {fix}"));
        }
    }
    message.push_str("\nThe files in tuning/ (sysctl, limits, systemd unit) prepare a host; `aiocr doctor` checks it.");
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let (soft, hard) = raise_nofile_limit().unwrap();
        let now = host::rlimit(libc::RLIMIT_NOFILE).unwrap();
        assert_eq!((now.soft, now.hard), (soft, hard));
        assert!(host::is_unlimited(hard) || soft == hard);
        // A second call has nothing left to raise and reports the same.
        assert_eq!(raise_nofile_limit().unwrap(), (soft, hard));
    }

    /// The test host runs aiocr's server tests, so it must pass the server's preflight.
    #[test]
    fn this_host_passes_the_preflight() {
        preflight(1, 100).unwrap();
    }

    /// nofile shortfalls lower the connection ceiling; they warn, never refuse.
    #[test]
    fn too_few_descriptors_do_not_refuse() {
        preflight(1, usize::MAX / 2).unwrap();
    }

    #[test]
    fn a_refusal_names_the_check_the_fix_and_tuning() {
        let message = refusal(&[Check::fail("memlock", "soft 64 KiB", "raise it")]);
        assert!(message.contains("memlock: soft 64 KiB"));
        assert!(message.contains("fix: raise it"));
        assert!(message.contains("tuning/"));
    }
}
