//! Worker threads: each runs its own single-threaded runtime with its own
//! client sessions and its own link to every node.
//!
//! A request then never crosses threads: the session that decodes it, the
//! link that writes it and reads the reply, and the session that writes the
//! reply all run on one thread, so the hot path has no cross-thread wakeups
//! (each costs a futex or eventfd syscall). Only the slot map is shared,
//! read lock-free through `ArcSwap`.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

thread_local! {
    static WORKER_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the worker running the current thread, if it is one.
pub fn current() -> Option<usize> {
    WORKER_INDEX.with(Cell::get)
}

/// Handles to the worker runtimes.
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Starts `count` worker threads (at least one).
    ///
    /// # Errors
    /// When a thread or runtime cannot be created.
    pub fn start(count: usize) -> std::io::Result<Arc<Workers>> {
        let (stop, _) = watch::channel(false);
        let mut handles = Vec::new();
        for index in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let mut stopped = stop.subscribe();
            std::thread::Builder::new()
                .name(format!("slotway-worker-{index}"))
                .spawn(move || {
                    WORKER_INDEX.with(|w| w.set(Some(index)));
                    runtime.block_on(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    });
                })?;
        }
        Ok(Arc::new(Workers {
            handles,
            next: AtomicUsize::new(0),
            stop,
        }))
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Spawns `fut` on worker `index`.
    pub fn spawn_on<F>(&self, index: usize, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(handle) = self.handles.get(index % self.handles.len().max(1)) {
            handle.spawn(fut);
        }
    }

    /// Spawns `fut` on the next worker, round robin (one per new client).
    pub fn spawn_next<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.spawn_on(index, fut);
    }

    /// Stops every worker: their tasks (sessions, links) are dropped.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}
