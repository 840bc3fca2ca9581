//! A shard-local stop signal: set once, awaited by any number of tasks on the same executor.
//! A waiter that is dropped before the stop (a read finished first) removes its waker, so the
//! list holds only tasks that are waiting right now.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopped: Cell<bool>,
    next_waiter_id: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl StopSignal {
    pub fn stop(&self) {
        self.inner.stopped.set(true);
        let waiters: Vec<Waker> = self
            .inner
            .waiters
            .borrow_mut()
            .drain()
            .map(|(_, waker)| waker)
            .collect();
        for waker in waiters {
            waker.wake();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.get()
    }

    /// Completes once `stop` was called.
    pub fn wait(&self) -> StopWait {
        let id = self.inner.next_waiter_id.get();
        self.inner.next_waiter_id.set(id + 1);
        StopWait {
            inner: self.inner.clone(),
            id,
        }
    }
}

pub struct StopWait {
    inner: Rc<Inner>,
    id: u64,
}

impl Future for StopWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.stopped.get() {
            return Poll::Ready(());
        }
        self.inner
            .waiters
            .borrow_mut()
            .insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for StopWait {
    fn drop(&mut self) {
        self.inner.waiters.borrow_mut().remove(&self.id);
    }
}
