//! Password hashing on threads of its own, never in front of the group commit's fsync.
//!
//! argon2id costs tens of milliseconds of CPU on purpose. It used to run on glommio's
//! blocking pool, which also runs every shard's group-commit fsync (server/commit.rs): a
//! flood of failed logins (~75/s) queued the fsyncs behind hashes and took upload
//! acknowledgements from 1.2 ms to 880 ms median (issue 14). Here instead:
//!
//! - One pool for the node: `password_hash_threads` dedicated OS threads (not pinned, at
//!   `password_hash_priority`, `nice:10` by default, so a reactor that wakes wins its core)
//!   fed by a bounded crossbeam channel of `password_hash_queue_len` jobs.
//! - Never an unbounded wait: a job that finds the queue full is refused at once
//!   ([`PoolError::Full`]); the endpoint answers 5001 with `Retry-After` and nothing was
//!   hashed. Nothing ever waits for room.
//! - Results go back the way recognition results do (src/recognition/mod.rs): each job
//!   carries a one-slot flume channel whose async receiver the shard's task awaits; glommio
//!   wakers are thread-safe, so a hash thread's send wakes the reactor without polling. A
//!   caller that went away dropped its receiver: the send fails and the thread moves on.

use crate::auth::{self, AuthError};
use crate::recognition::ThreadPriority;
use crossbeam_channel::{Receiver, Sender};
use std::thread::JoinHandle;

/// What a hash thread does.
enum Work {
    /// `auth::verify_password(hash, password)`.
    Verify { hash: String, password: String },
    /// `auth::hash_password(password)` (a fresh salt).
    Hash { password: String },
}

enum Done {
    Verified(bool),
    Hashed(Result<String, AuthError>),
}

struct Job {
    work: Work,
    reply: flume::Sender<Done>,
}

/// Why a job did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The queue was full: refused at once, nothing hashed (5001, `Retry-After`).
    Full,
    /// The pool has stopped (the server is stopping).
    Stopped,
}

/// The submitting side, shared by every shard (cheap to clone).
#[derive(Clone)]
pub struct PasswordPool {
    jobs: Sender<Job>,
    capacity: usize,
}

/// The running threads; `join` stops them.
pub struct PoolThreads {
    handles: Vec<JoinHandle<()>>,
    /// Dropped by `join`: the threads see the disconnection and exit.
    stop: Option<Sender<()>>,
}

impl PasswordPool {
    /// Starts `threads` hash threads behind a queue of `queue_len` jobs.
    pub fn start(
        threads: usize,
        queue_len: usize,
        priority: ThreadPriority,
    ) -> Result<(PasswordPool, PoolThreads), String> {
        assert!(threads > 0 && queue_len > 0, "a pool has threads and room");
        let (jobs, receiver) = crossbeam_channel::bounded::<Job>(queue_len);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let (receiver, stopped) = (receiver.clone(), stopped.clone());
            let handle = std::thread::Builder::new()
                .name(format!("aiocr-passwd-{index}"))
                .spawn(move || {
                    crate::recognition::set_priority(priority);
                    run_jobs(&receiver, &stopped);
                })
                .map_err(|e| format!("starting password hash thread {index}: {e}"))?;
            handles.push(handle);
        }
        let pool = PasswordPool {
            jobs,
            capacity: queue_len,
        };
        let threads = PoolThreads {
            handles,
            stop: Some(stop),
        };
        Ok((pool, threads))
    }

    /// Whether `password` matches the PHC `hash` (a malformed hash is no match).
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, PoolError> {
        match self.run(Work::Verify { hash, password }).await? {
            Done::Verified(matches) => Ok(matches),
            Done::Hashed(_) => unreachable!("a verification answers Verified"),
        }
    }

    /// The argon2id PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<Result<String, AuthError>, PoolError> {
        match self.run(Work::Hash { password }).await? {
            Done::Hashed(hashed) => Ok(hashed),
            Done::Verified(_) => unreachable!("a hash answers Hashed"),
        }
    }

    async fn run(&self, work: Work) -> Result<Done, PoolError> {
        let (reply, answer) = flume::bounded(1);
        self.jobs
            .try_send(Job { work, reply })
            .map_err(|error| match error {
                crossbeam_channel::TrySendError::Full(_) => PoolError::Full,
                crossbeam_channel::TrySendError::Disconnected(_) => PoolError::Stopped,
            })?;
        answer.recv_async().await.map_err(|_| PoolError::Stopped)
    }

    /// Jobs waiting for a thread now.
    pub fn depth(&self) -> usize {
        let depth = self.jobs.len();
        assert!(
            depth <= self.capacity,
            "a bounded queue holds at most its capacity"
        );
        depth
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl PoolThreads {
    /// Stops the threads (each finishes the job it holds) and waits for them.
    pub fn join(mut self) {
        drop(self.stop.take());
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// One hash thread: a job at a time until the pool stops.
fn run_jobs(jobs: &Receiver<Job>, stopped: &Receiver<()>) {
    loop {
        let job = crossbeam_channel::select! {
            recv(jobs) -> job => job,
            // Only ever disconnected (nothing is sent on it): the pool is stopping.
            recv(stopped) -> _ => return,
        };
        let Ok(Job { work, reply }) = job else {
            return; // every PasswordPool dropped
        };
        let done = match work {
            Work::Verify { hash, password } => {
                Done::Verified(auth::verify_password(&hash, &password))
            }
            Work::Hash { password } => Done::Hashed(auth::hash_password(&password)),
        };
        // A caller that went away dropped its receiver: nothing to do.
        let _ = reply.send(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        futures_lite::future::block_on(future)
    }

    #[test]
    fn hashes_and_verifies_on_its_own_threads() {
        let (pool, threads) = PasswordPool::start(1, 2, ThreadPriority::Normal).unwrap();
        let hash = block_on(pool.hash("correct horse".into()))
            .unwrap()
            .unwrap();
        assert!(block_on(pool.verify(hash.clone(), "correct horse".into())).unwrap());
        assert!(!block_on(pool.verify(hash, "wrong".into())).unwrap());
        assert_eq!((pool.depth(), pool.capacity()), (0, 2));
        threads.join();
        assert_eq!(
            block_on(pool.verify(auth::dummy_hash(), "x".into())),
            Err(PoolError::Stopped)
        );
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        // No thread takes jobs from this queue: the test holds its only place.
        let (jobs, receiver) = crossbeam_channel::bounded(1);
        let pool = PasswordPool { jobs, capacity: 1 };
        let (reply, _answer) = flume::bounded(1);
        let work = Work::Hash {
            password: "x".into(),
        };
        pool.jobs.try_send(Job { work, reply }).unwrap();
        assert_eq!(pool.depth(), 1);
        let refused = block_on(pool.verify(auth::dummy_hash(), "guess".into()));
        assert_eq!(refused, Err(PoolError::Full));
        assert_eq!(receiver.len(), 1, "the refused job was not queued");
    }
}
