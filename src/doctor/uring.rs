//! Is io_uring really usable here? Creates the same kinds of rings glommio creates (a plain
//! one and an IOPOLL one, 128 entries), asks the kernel which operations it supports, and
//! runs one NOP through the plain ring. Seccomp filters (Docker's default profile blocks
//! io_uring), `kernel.io_uring_disabled` and old kernels all show up here as errors.

use super::needs::GLOMMIO_RING_DEPTH;
use io_uring::{opcode, register::Probe, IoUring};

/// Every operation glommio 0.9 checks for at start-up (`GLOMMIO_URING_OPS`); it exits the
/// process when one is missing.
const GLOMMIO_OPCODES: &[(u8, &str)] = &[
    (opcode::Nop::CODE, "NOP"),
    (opcode::Readv::CODE, "READV"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::Fsync::CODE, "FSYNC"),
    (opcode::ReadFixed::CODE, "READ_FIXED"),
    (opcode::WriteFixed::CODE, "WRITE_FIXED"),
    (opcode::PollAdd::CODE, "POLL_ADD"),
    (opcode::PollRemove::CODE, "POLL_REMOVE"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::RecvMsg::CODE, "RECVMSG"),
    (opcode::Timeout::CODE, "TIMEOUT"),
    (opcode::TimeoutRemove::CODE, "TIMEOUT_REMOVE"),
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::LinkTimeout::CODE, "LINK_TIMEOUT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Fallocate::CODE, "FALLOCATE"),
    (opcode::OpenAt::CODE, "OPENAT"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Statx::CODE, "STATX"),
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Recv::CODE, "RECV"),
];

/// What the probe proved: the operations glommio needs that this kernel lacks (empty = all).
#[derive(Debug)]
pub struct UringReport {
    pub missing_opcodes: Vec<&'static str>,
}

/// Why io_uring is not usable, with the errno when the kernel refused.
#[derive(Debug)]
pub struct UringError {
    pub step: &'static str,
    pub error: std::io::Error,
}

impl std::fmt::Display for UringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, self.error)
    }
}

pub fn probe() -> Result<UringReport, UringError> {
    let fail = |step| move |error| UringError { step, error };
    let mut ring: IoUring = IoUring::new(GLOMMIO_RING_DEPTH).map_err(fail("io_uring_setup"))?;
    let poll_ring: IoUring = IoUring::builder()
        .setup_iopoll()
        .build(GLOMMIO_RING_DEPTH)
        .map_err(fail("io_uring_setup(IORING_SETUP_IOPOLL)"))?;
    drop(poll_ring);

    let mut supported = Probe::new();
    ring.submitter()
        .register_probe(&mut supported)
        .map_err(fail("IORING_REGISTER_PROBE"))?;
    let missing_opcodes = GLOMMIO_OPCODES
        .iter()
        .filter(|(code, _)| !supported.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();

    run_nop(&mut ring)?;
    Ok(UringReport { missing_opcodes })
}

/// One NOP submitted and completed: the rings are mapped and the kernel answers.
fn run_nop(ring: &mut IoUring) -> Result<(), UringError> {
    const NOP_USER_DATA: u64 = 0x6a6f6b65;
    let nop = opcode::Nop::new().build().user_data(NOP_USER_DATA);
    // SAFETY: a NOP references no memory, so nothing must outlive the submission.
    unsafe { ring.submission().push(&nop) }.map_err(|_| UringError {
        step: "queueing a NOP",
        error: std::io::Error::other("submission queue full"),
    })?;
    ring.submit_and_wait(1).map_err(|error| UringError {
        step: "io_uring_enter",
        error,
    })?;
    let completion = ring.completion().next().ok_or_else(|| UringError {
        step: "reading the NOP's completion",
        error: std::io::Error::other("no completion after waiting for one"),
    })?;
    assert_eq!(
        completion.user_data(),
        NOP_USER_DATA,
        "the only submission is the NOP"
    );
    if completion.result() < 0 {
        return Err(UringError {
            step: "NOP",
            error: std::io::Error::from_raw_os_error(-completion.result()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aiocr's server cannot run without io_uring, so its test host must have it.
    #[test]
    fn this_host_runs_a_nop_and_supports_what_glommio_needs() {
        let report = probe().expect("io_uring must be usable on a host that runs aiocr's tests");
        assert!(
            report.missing_opcodes.is_empty(),
            "missing: {:?}",
            report.missing_opcodes
        );
    }
}
