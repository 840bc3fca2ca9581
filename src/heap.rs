//! The C allocator's own view of the process's memory (glibc's malloc, which Rust's
//! allocations, sled's and ONNX Runtime's all go through): how much it holds and hands out,
//! and giving back what it keeps after a burst of frees. RSS alone cannot tell a leak from
//! memory glibc keeps after it was freed: each thread's arena keeps its own free memory and
//! lends it to no other thread (docs/cluster.md, "What the node alone's memory is").

/// What malloc holds for the whole process, summed over its arenas (`mallinfo2`); large
/// blocks mapped on their own count in both.
#[derive(Clone, Copy, Debug)]
pub struct HeapCounts {
    /// Handed out and not freed.
    pub in_use_bytes: usize,
    /// Taken from the system: in use or free inside the arenas.
    pub held_bytes: usize,
}

/// The counts now; `None` without glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn counts() -> Option<HeapCounts> {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's own counters (under
    // each arena's lock); glibc 2.33 and later have it.
    let info = unsafe { libc::mallinfo2() };
    let mapped_bytes = info.hblkhd;
    let counts = HeapCounts {
        in_use_bytes: info.uordblks + mapped_bytes,
        held_bytes: info.arena + mapped_bytes,
    };
    debug_assert!(
        counts.in_use_bytes <= counts.held_bytes,
        "malloc hands out only what it holds"
    );
    Some(counts)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn counts() -> Option<HeapCounts> {
    None
}

/// Returns to the system the free memory in every arena. Called once, when the models are
/// loaded: loading them frees 60-120 MiB (the model files' bytes, ONNX Runtime's graph
/// optimisation) in the loading threads' arenas, which glibc would keep for those threads for
/// good. Not on a timer: a page given back is faulted in again by the next allocation that
/// needs it, a cost paid inside some request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_freed() {
    // SAFETY: malloc_trim only walks the allocator's own arenas (under each arena's lock) and
    // releases free pages inside them; no memory in use moves.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_freed() {}
