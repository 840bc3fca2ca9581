//! The `--bench` loop of `aiocr ocr`, `det` and `slide`: one thread per worker repeats its
//! step until the deadline; the threads' item counts and stage times are added up.

use std::ops::AddAssign;
use std::time::{Duration, Instant};

/// What the threads did together.
pub struct Totals<S> {
    /// Items done (images, pairs).
    pub items: u64,
    /// Each stage's time, summed over the threads.
    pub stages: S,
    pub elapsed_s: f64,
}

/// Runs each worker's step on a thread of its own, over and over, for `duration`; a step
/// does some items (it returns how many) and adds its stage times to its thread's `S`.
/// Workers are built before the call, so that loading models is not timed.
pub fn run<S, W>(workers: Vec<W>, duration: Duration) -> Totals<S>
where
    S: Default + AddAssign + Send + 'static,
    W: FnMut(&mut S) -> u64 + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut step| {
            std::thread::spawn(move || {
                let (mut items, mut stages) = (0u64, S::default());
                while Instant::now() < deadline {
                    items += step(&mut stages);
                }
                (items, stages)
            })
        })
        .collect();
    let mut totals = Totals {
        items: 0,
        stages: S::default(),
        elapsed_s: 0.0,
    };
    for handle in handles {
        let (items, stages) = handle.join().expect("bench thread");
        totals.items += items;
        totals.stages += stages;
    }
    totals.elapsed_s = started.elapsed().as_secs_f64();
    totals
}

/// Where thread `thread` of `threads` starts in a corpus of `len` items: spread out, so that
/// the threads do not run the same items (the same image widths) in lockstep.
pub fn start_of(thread: usize, threads: usize, len: usize) -> usize {
    assert!(thread < threads && len > 0);
    thread * len / threads
}

/// The `--threads` of a benchmark: as given, else every core; at least one.
pub fn thread_count(asked: Option<usize>) -> usize {
    asked
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Steps(u64);

    impl AddAssign for Steps {
        fn add_assign(&mut self, other: Steps) {
            self.0 += other.0;
        }
    }

    #[test]
    fn every_thread_runs_and_the_counts_add_up() {
        let workers: Vec<_> = (0..3u64)
            .map(|per_step| {
                move |steps: &mut Steps| {
                    steps.0 += 1;
                    per_step + 1
                }
            })
            .collect();
        let totals = run(workers, Duration::from_millis(20));
        assert!(totals.stages.0 >= 3, "each thread stepped at least once");
        assert!(
            totals.items >= totals.stages.0,
            "every step did an item or more"
        );
        assert_eq!(start_of(0, 4, 10), 0);
        assert_eq!(start_of(3, 4, 10), 7);
        assert_eq!(thread_count(Some(0)), 1);
    }
}
