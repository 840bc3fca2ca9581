//! How much locked memory and how many file descriptors a configuration needs.
//!
//! Locked memory, from glommio 0.9's source (src/sys/uring.rs, `Reactor::new`) and the
//! kernel's io_uring accounting (io_uring/rsrc.c, io_uring/io_uring.c):
//! - every glommio executor (one per shard) refuses to start when RLIMIT_MEMLOCK is below
//!   512 KiB (`MIN_MEMLOCK_LIMIT`);
//! - it creates 3 rings (main, latency, poll) of `ring_depth` entries (default 128) and
//!   registers ONE buffer of `io_memory` bytes (default 10 MiB) with EACH of them. The kernel
//!   charges a registered buffer once per ring (it only de-duplicates pages within one ring),
//!   so one executor pins 3 x 10 MiB = 30 MiB;
//! - the charge goes to the USER's locked_vm (all processes of that uid together) against the
//!   registering process's RLIMIT_MEMLOCK, and is skipped for processes with CAP_IPC_LOCK;
//! - when registration fails glommio only logs a warning and does storage I/O through
//!   unregistered memory (slower DMA file I/O, sockets unaffected); only the 512 KiB
//!   minimum is fatal;
//! - before Linux 5.12 the rings themselves were charged to memlock too (since 5.12 they
//!   are charged to the memory cgroup): about 16 KiB per ring of 128 entries.
//!
//! File descriptors: one per connection, plus what each shard and the process hold anyway.

/// glommio's own floor: below this its executors do not start.
pub const GLOMMIO_MIN_MEMLOCK_BYTES: u64 = 512 * 1024;
/// glommio's default `io_memory`, registered with each ring.
pub const GLOMMIO_IO_MEMORY_BYTES: u64 = 10 << 20;
pub const GLOMMIO_RINGS_PER_EXECUTOR: u64 = 3;
/// glommio's default ring depth; the doctor's own probe ring uses the same.
pub const GLOMMIO_RING_DEPTH: u32 = 128;
/// SQ ring + SQE array + CQ ring (2 CQEs per SQE) of a 128-entry ring, rounded up to pages:
/// 2 pages of SQEs (128 x 64 bytes) and 2 pages of rings (256 x 16 bytes of CQEs + heads).
pub const RING_BYTES_128: u64 = 16 * 1024;
/// Linux 5.12 moved ring memory from memlock to memcg accounting.
pub const RINGS_UNCHARGED_SINCE: (u32, u32) = (5, 12);

/// Descriptors a shard holds besides its connections: listener, 3 rings, eventfds, timers,
/// its sled database files, journal; generous on purpose.
pub const FDS_PER_SHARD_OVERHEAD: u64 = 64;
/// Descriptors of the process itself: stdio, models, ONNX Runtime, recognition threads, logs.
pub const FDS_PROCESS_OVERHEAD: u64 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemlockNeed {
    /// Below this the server cannot start.
    pub to_start_bytes: u64,
    /// Below this glommio runs without registered buffers (slower storage I/O).
    pub to_register_bytes: u64,
}

pub fn memlock_need(shards: u64, kernel: Option<(u32, u32)>) -> MemlockNeed {
    assert!(shards > 0, "a server has at least one shard");
    // An unknown kernel is treated as old: over-asking is the safe mistake here.
    let rings_charged = kernel.is_none_or(|version| version < RINGS_UNCHARGED_SINCE);
    let rings_bytes = if rings_charged {
        shards * GLOMMIO_RINGS_PER_EXECUTOR * RING_BYTES_128
    } else {
        0
    };
    let buffers_bytes = shards * GLOMMIO_RINGS_PER_EXECUTOR * GLOMMIO_IO_MEMORY_BYTES;
    let to_start_bytes = GLOMMIO_MIN_MEMLOCK_BYTES.max(rings_bytes);
    MemlockNeed {
        to_start_bytes,
        to_register_bytes: to_start_bytes.max(rings_bytes + buffers_bytes),
    }
}

pub fn nofile_need(shards: u64, max_connections_per_shard: u64) -> u64 {
    assert!(shards > 0, "a server has at least one shard");
    shards
        .saturating_mul(max_connections_per_shard.saturating_add(FDS_PER_SHARD_OVERHEAD))
        .saturating_add(FDS_PROCESS_OVERHEAD)
}

/// The most connections per shard that `nofile` descriptors hold (the inverse of
/// [`nofile_need`]; 0 when not even the overheads fit).
pub fn connections_fitting(shards: u64, nofile: u64) -> u64 {
    assert!(shards > 0, "a server has at least one shard");
    (nofile.saturating_sub(FDS_PROCESS_OVERHEAD) / shards).saturating_sub(FDS_PER_SHARD_OVERHEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_on_a_current_kernel_needs_the_floor_to_start_and_30_mib_to_register() {
        let need = memlock_need(1, Some((6, 1)));
        assert_eq!(need.to_start_bytes, 512 * 1024);
        assert_eq!(need.to_register_bytes, 30 << 20);
    }

    #[test]
    fn old_kernels_also_charge_the_rings() {
        let need = memlock_need(64, Some((5, 10)));
        assert_eq!(need.to_start_bytes, 64 * 3 * 16 * 1024);
        assert_eq!(need.to_register_bytes, 64 * 3 * (16 * 1024 + (10 << 20)));
        assert_eq!(memlock_need(64, None), need);
    }

    #[test]
    fn descriptors_scale_with_shards_and_connections() {
        assert_eq!(nofile_need(2, 10_000), 2 * 10_064 + 256);
        assert_eq!(nofile_need(1, 0), 64 + 256);
        assert_eq!(nofile_need(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn connections_fitting_inverts_the_need() {
        for (shards, connections) in [(1, 0), (2, 10_000), (16, 65_000), (3, 1)] {
            let need = nofile_need(shards, connections);
            assert_eq!(connections_fitting(shards, need), connections);
            assert_eq!(
                connections_fitting(shards, need - 1),
                connections.saturating_sub(1)
            );
        }
        assert_eq!(connections_fitting(2, 1024), (1024 - 256) / 2 - 64);
        assert_eq!(connections_fitting(4, 100), 0);
    }
}
