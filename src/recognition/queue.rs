//! The bounded recognition queue shared by every shard.

use super::Job;

/// The queue's sending side (cheap to clone; every shard holds one).
#[derive(Clone)]
pub struct JobQueue {
    sender: crossbeam_channel::Sender<Job>,
    capacity: usize,
}

impl JobQueue {
    /// The queue and the receiving end for the recognition threads.
    pub fn bounded(capacity: usize) -> (JobQueue, crossbeam_channel::Receiver<Job>) {
        assert!(capacity > 0);
        let (sender, receiver) = crossbeam_channel::bounded(capacity);
        (JobQueue { sender, capacity }, receiver)
    }

    /// Room for one more job right now (checked before reserving points; another shard may
    /// take the slot meanwhile, which `try_submit` then reports).
    pub fn has_room(&self) -> bool {
        self.sender.len() < self.capacity
    }

    /// Gives the job back when the queue is full (or no recognition side exists any more).
    #[allow(clippy::result_large_err)] // handing the job back is the point
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.sender
            .try_send(job)
            .map_err(|error| error.into_inner())
    }

    pub fn depth(&self) -> usize {
        let depth = self.sender.len();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RecognizeOptions;
    use std::time::Instant;

    fn job(upload_id: u64) -> Job {
        Job {
            upload_id,
            owner_shard: 1,
            image: vec![1, 2, 3],
            options: RecognizeOptions::default(),
            digest: [0; 32],
            constraints: Default::default(),
            enqueued_at: Instant::now(),
        }
    }

    #[test]
    fn full_queue_hands_the_job_back() {
        let (queue, receiver) = JobQueue::bounded(2);
        assert!(queue.has_room());
        queue.try_submit(job(1)).unwrap();
        queue.try_submit(job(2)).unwrap();
        assert!(!queue.has_room());
        assert_eq!(queue.depth(), 2);
        assert_eq!(queue.try_submit(job(3)).unwrap_err().upload_id, 3);
        assert_eq!(receiver.recv().unwrap().upload_id, 1);
        assert!(queue.has_room());
    }
}
