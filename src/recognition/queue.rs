//! The bounded recognition queues shared by every shard: one per kind of work, and the lone
//! lane: a text job submitted while nothing else is queued or running goes straight to the
//! wide runner (threads.rs), which runs it with every recognition core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Job, Kind, Task};

/// The queues' sending side (cheap to clone; every shard holds one).
#[derive(Clone)]
pub struct JobQueues {
    senders: [crossbeam_channel::Sender<Job>; 3],
    capacities: [usize; 3],
    lone: Arc<LoneLane>,
    lone_sender: crossbeam_channel::Sender<Job>,
}

/// The receiving side, for the recognition and slide threads.
#[derive(Clone)]
pub struct JobReceivers {
    pub ocr: crossbeam_channel::Receiver<Job>,
    pub detect: crossbeam_channel::Receiver<Job>,
    pub slide: crossbeam_channel::Receiver<Job>,
    /// The lone lane's one job at a time, for the wide runner.
    pub lone: crossbeam_channel::Receiver<Job>,
    pub activity: Arc<LoneLane>,
}

/// What decides whether a text job is alone: the recognition threads running a batch, and
/// whether the wide runner exists and holds a job.
#[derive(Default)]
pub struct LoneLane {
    /// Set once a wide runner takes the lane (never, without wide engines).
    open: AtomicBool,
    /// The wide runner holds a job (from its submission until its result is delivered).
    claimed: AtomicBool,
    /// Recognition threads running a batch right now.
    busy: AtomicUsize,
}

impl LoneLane {
    /// The wide runner is there: lone jobs may go to it from now on.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// The wide runner has stopped: no job goes to it any more.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// The wide runner delivered its job's result: the lane takes the next one.
    pub fn release(&self) {
        let was = self.claimed.swap(false, Ordering::SeqCst);
        assert!(was, "only a claimed lane is released");
    }

    /// A recognition thread starts running a batch.
    pub fn enter(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    /// ... and is done with it.
    pub fn leave(&self) {
        let was = self.busy.fetch_sub(1, Ordering::SeqCst);
        assert!(was >= 1, "busy counts the thread while it runs");
    }

    /// Claims the lane for a text job if nothing else runs and the wide runner is free.
    fn claim(&self, queued: usize) -> bool {
        self.open.load(Ordering::SeqCst)
            && queued == 0
            && self.busy.load(Ordering::SeqCst) == 0
            && self
                .claimed
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }
}

/// A job the wide engine may run: a text captcha of a model loaded at start (a user's model
/// is loaded by the single-threaded engines only).
fn lone_eligible(job: &Job) -> bool {
    matches!(&job.task, Task::Ocr { options, .. } if options.custom.is_none())
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
        // One place: a claimed lane holds at most the one job it was claimed for.
        let (lone_sender, lone) = crossbeam_channel::bounded(1);
        let activity = Arc::new(LoneLane::default());
        (
            JobQueues {
                senders: [ocr_tx, detect_tx, slide_tx],
                capacities,
                lone: Arc::clone(&activity),
                lone_sender,
            },
            JobReceivers {
                ocr,
                detect,
                slide,
                lone,
                activity,
            },
        )
    }

    /// Room for one more job of `kind` right now (checked before reserving points; another
    /// shard may take the slot meanwhile, which `try_submit` then reports).
    pub fn has_room(&self, kind: Kind) -> bool {
        self.depth(kind) < self.capacity(kind)
    }

    /// Gives the job back when its queue is full (or no thread is left to take it). A text
    /// job that finds nothing queued or running goes to the wide runner instead.
    #[allow(clippy::result_large_err)] // handing the job back is the point
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        let kind = job.task.kind();
        let job = match lone_eligible(&job) && self.lone.claim(self.depth(kind)) {
            true => match self.lone_sender.try_send(job) {
                Ok(()) => return Ok(()),
                // The runner has stopped: the queues take it (and are stopping too).
                Err(error) => {
                    self.lone.release();
                    error.into_inner()
                }
            },
            false => job,
        };
        self.senders[index(kind)]
            .try_send(job)
            .map_err(|error| error.into_inner())
    }

    /// Jobs in flight beyond the queues' capacities: the lone lane's one.
    pub fn lone_capacity(&self) -> usize {
        1
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

    #[test]
    fn a_lone_text_job_goes_to_the_wide_runner_once_it_is_there() {
        let (queues, receivers) = JobQueues::bounded([4, 4, 4]);
        queues.try_submit(ocr(1)).unwrap();
        assert_eq!(
            receivers.ocr.try_recv().unwrap().upload_id,
            1,
            "no runner yet"
        );
        receivers.activity.open();
        queues.try_submit(ocr(2)).unwrap();
        queues.try_submit(ocr(3)).unwrap();
        assert_eq!(receivers.lone.try_recv().unwrap().upload_id, 2);
        assert_eq!(
            receivers.ocr.try_recv().unwrap().upload_id,
            3,
            "the runner holds a job"
        );
        receivers.activity.release();
        // A recognition thread running a batch, or a job queued, is not alone.
        receivers.activity.enter();
        queues.try_submit(ocr(4)).unwrap();
        receivers.activity.leave();
        queues.try_submit(ocr(5)).unwrap();
        assert_eq!(receivers.ocr.try_recv().unwrap().upload_id, 4);
        assert_eq!(
            receivers.ocr.try_recv().unwrap().upload_id,
            5,
            "4 was queued"
        );
        // Only text jobs; none once the runner stopped.
        queues
            .try_submit(job(6, Task::Detect { image: vec![1] }))
            .unwrap();
        assert_eq!(receivers.detect.try_recv().unwrap().upload_id, 6);
        receivers.activity.close();
        queues.try_submit(ocr(7)).unwrap();
        assert_eq!(receivers.ocr.try_recv().unwrap().upload_id, 7);
        assert!(receivers.lone.try_recv().is_err());
    }
}
