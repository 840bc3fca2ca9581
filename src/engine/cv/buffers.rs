//! Large working buffers kept per thread between images.
//!
//! Allocating a few hundred kilobytes afresh for every slide or detection costs page faults:
//! glibc hands freed memory at the top of a heap back to the kernel, and the next image
//! touches new pages. Measured on slide matching, page faults and the zeroing of new pages
//! were a quarter of the time; recycling the FFT spectra, correlations and Canny's arrays
//! removes most of it.

use std::any::Any;
use std::cell::RefCell;

/// At most this many buffers are kept per thread...
const KEPT: usize = 8;
/// ...each at most this large (a larger image allocates as usual), so a thread keeps at most
/// 16 MiB.
const LARGEST_KEPT_BYTES: usize = 2 << 20;
/// Smaller buffers are left to the allocator.
const SMALLEST_KEPT_BYTES: usize = 32 << 10;

thread_local! {
    static KEPT_BUFFERS: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// A vector of `len` copies of `fill`, reusing a kept buffer of the same type when one is
/// large enough.
pub fn take<T: Copy + 'static>(len: usize, fill: T) -> Vec<T> {
    let reused = KEPT_BUFFERS.with(|kept| {
        let mut kept = kept.borrow_mut();
        let at = kept.iter().position(|b| {
            b.downcast_ref::<Vec<T>>()
                .is_some_and(|v| v.capacity() >= len)
        })?;
        kept.swap_remove(at).downcast::<Vec<T>>().ok().map(|b| *b)
    });
    let mut buffer = reused.unwrap_or_default();
    buffer.clear();
    buffer.resize(len, fill);
    buffer
}

/// Keeps `buffer` for a later [`take`] if its size is worth it and there is room.
pub fn give_back<T: 'static>(buffer: Vec<T>) {
    let bytes = buffer.capacity() * std::mem::size_of::<T>();
    if !(SMALLEST_KEPT_BYTES..=LARGEST_KEPT_BYTES).contains(&bytes) {
        return;
    }
    KEPT_BUFFERS.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() < KEPT {
            kept.push(Box::new(buffer));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_filled_and_typed() {
        let mut a = take(100_000, 7u32);
        a[5] = 9;
        let pointer = a.as_ptr();
        give_back(a);
        let b = take(50_000, 1u32);
        assert_eq!(b.as_ptr(), pointer, "reused");
        assert!(b.iter().all(|&v| v == 1) && b.len() == 50_000);
        // Another type never gets it.
        let c = take(1000, 0u8);
        assert_ne!(c.as_ptr() as usize, pointer as usize);
        give_back(b);
    }
}
