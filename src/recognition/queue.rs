//! The bounded recognition queues shared by every shard: one per kind of work.

use super::{Job, Kind};

/// The queues' sending side (cheap to clone; every shard holds one).
#[derive(Clone)]
pub struct JobQueues {
    senders: [crossbeam_channel::Sender<Job>; 3],
    capacities: [usize; 3],
}

/// The receiving side, for the recognition and slide threads.
#[derive(Clone)]
pub struct JobReceivers {
    pub ocr: crossbeam_channel::Receiver<Job>,
    pub detect: crossbeam_channel::Receiver<Job>,
    pub slide: crossbeam_channel::Receiver<Job>,
}

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Ocr => 0,
        Kind::Detect => 1,
        Kind::Slide => 2,
    }
}

impl JobQueues {
    /// The queues, holding at most `capacities[i]` jobs of `Kind::ALL[i]`, and their
    /// receiving ends.
    pub fn bounded(capacities: [usize; 3]) -> (JobQueues, JobReceivers) {
        assert!(capacities.iter().all(|capacity| *capacity > 0));
        let (ocr_tx, ocr) = crossbeam_channel::bounded(capacities[0]);
        let (detect_tx, detect) = crossbeam_channel::bounded(capacities[1]);
        let (slide_tx, slide) = crossbeam_channel::bounded(capacities[2]);
        (
            JobQueues {
                senders: [ocr_tx, detect_tx, slide_tx],
                capacities,
            },
            JobReceivers { ocr, detect, slide },
        )
    }

    /// Room for one more job of `kind` right now (checked before reserving points; another
    /// shard may take the slot meanwhile, which `try_submit` then reports).
    pub fn has_room(&self, kind: Kind) -> bool {
        self.depth(kind) < self.capacity(kind)
    }

    /// Gives the job back when its queue is full (or no thread is left to take it).
    #[allow(clippy::result_large_err)] // handing the job back is the point
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.senders[index(job.task.kind())]
            .try_send(job)
            .map_err(|error| error.into_inner())
    }

    pub fn depth(&self, kind: Kind) -> usize {
        let depth = self.senders[index(kind)].len();
        assert!(
            depth <= self.capacity(kind),
            "a bounded queue holds at most its capacity"
        );
        depth
    }

    pub fn capacity(&self, kind: Kind) -> usize {
        self.capacities[index(kind)]
    }

    /// Jobs waiting, of every kind.
    pub fn total_depth(&self) -> usize {
        Kind::ALL.iter().map(|kind| self.depth(*kind)).sum()
    }

    /// Jobs the queues can hold, of every kind.
    pub fn total_capacity(&self) -> usize {
        self.capacities.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::cache::CacheKey;
    use crate::recognition::Task;
    use std::time::Instant;

    fn job(upload_id: u64, task: Task) -> Job {
        Job {
            upload_id,
            owner_shard: 1,
            task,
            cache_key: CacheKey::ocr([0; 32], Default::default()),
            constraints: Default::default(),
            enqueued_at: Instant::now(),
        }
    }

    fn ocr(upload_id: u64) -> Job {
        let task = Task::Ocr {
            image: vec![1, 2, 3],
            options: Default::default(),
        };
        job(upload_id, task)
    }

    #[test]
    fn each_kind_has_its_own_bounded_queue() {
        let (queues, receivers) = JobQueues::bounded([2, 1, 1]);
        assert!(queues.has_room(Kind::Ocr));
        queues.try_submit(ocr(1)).unwrap();
        queues.try_submit(ocr(2)).unwrap();
        assert!(!queues.has_room(Kind::Ocr));
        assert_eq!(queues.try_submit(ocr(3)).unwrap_err().upload_id, 3);
        // A full text queue leaves detection its room.
        assert!(queues.has_room(Kind::Detect));
        queues
            .try_submit(job(4, Task::Detect { image: vec![1] }))
            .unwrap();
        assert_eq!((queues.total_depth(), queues.total_capacity()), (3, 4));
        assert_eq!(receivers.ocr.recv().unwrap().upload_id, 1);
        assert_eq!(receivers.detect.recv().unwrap().upload_id, 4);
        assert!(queues.has_room(Kind::Ocr));
    }
}
