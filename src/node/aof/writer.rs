//! The writer: a thread of its own that owns the files of the AOF. Each
//! turn it takes, under the node lock, what the node asks of it (bytes of
//! the write stream, a rewrite, the AOF turned off), then does the I/O
//! outside the lock: append, fsync by policy, start or finish a rewrite.
//! A new base file is written by a second thread, so appends go on while
//! it is written.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::watch;

use super::files::{AofDir, IncrFile, write_atomic};
use super::load;
use super::manifest::{AofFile, Manifest};
use super::{AofError, AofStatus, FsyncPolicy, RewriteKind};
use crate::node::snapshot::write_keyspace;
use crate::node::state::{NodeState, Shared};

/// How often the writer looks at the clock (everysec fsync, automatic
/// rewrites, retries) when no write wakes it.
const TICK: Duration = Duration::from_millis(100);
const FSYNC_PERIOD: Duration = Duration::from_secs(1);
/// How long a failed write waits before it is tried again.
const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// The longest wait before a failed rewrite is tried again on its own.
const MAX_REWRITE_BACKOFF: Duration = Duration::from_secs(60);

/// Whether written bytes are to be fsynced now, `since` the last fsync.
fn fsync_due(policy: FsyncPolicy, since: Duration) -> bool {
    match policy {
        FsyncPolicy::Always => true,
        FsyncPolicy::EverySec => since >= FSYNC_PERIOD,
        FsyncPolicy::No => false,
    }
}

/// A rewrite whose base file is being written.
struct Running {
    kind: RewriteKind,
    base: AofFile,
    result: mpsc::Receiver<std::io::Result<u64>>,
    started: Instant,
    /// Set when the rewrite is abandoned: its base file is not wanted.
    cancelled: Arc<AtomicBool>,
}

/// What one turn does, decided under the node lock.
enum Turn {
    Idle,
    Append(BytesMut, u64),
    Rewrite {
        kind: RewriteKind,
        pending: Option<BytesMut>,
        batch: u64,
        snapshot: BytesMut,
        enabled: bool,
    },
    Close(Option<BytesMut>, u64),
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    /// `<dir>/<appenddirname>`.
    path: PathBuf,
    filename: String,
    /// Opened (and locked) at start with the AOF on, else when first needed.
    dir: Option<AofDir>,
    manifest: Manifest,
    /// The incremental file appended to, while the AOF is on.
    incr: Option<IncrFile>,
    /// `incr` is not in the manifest yet (a `Restart` rewrite runs).
    incr_pending: bool,
    /// Bytes in the manifest's files, besides `incr` when it is in it.
    other_files: u64,
    running: Option<Running>,
    /// Bytes whose write failed, to go before the next ones, and the
    /// newest batch among them.
    retry: Option<(BytesMut, u64)>,
    last_attempt: Instant,
    unsynced: bool,
    last_fsync: Instant,
    /// The last batch written (and fsynced, for `always`), and the one
    /// published to waiting connections.
    written: u64,
    synced_tx: watch::Sender<u64>,
    wake: Arc<tokio::sync::Notify>,
    offsets: watch::Receiver<u64>,
    /// A `Restart` that failed, tried again at this time.
    restart_at: Option<Instant>,
    /// No automatic rewrite before this time (after failures).
    auto_after: Instant,
    policy: FsyncPolicy,
    stats: AofStatus,
}

impl Writer {
    /// Prepares the writer; with `appendonly yes`, opens the directory,
    /// loads the files into the node, and opens (or creates) the file to
    /// append to. Blocking.
    pub(super) fn open(shared: Arc<Shared>) -> Result<Writer, AofError> {
        let config = shared.config.aof.clone();
        let path = shared.config.dir.join(&config.dirname);
        let (synced_tx, wake, offsets) = {
            let mut node = shared.lock();
            node.aof = super::AofState::new(&config);
            let tx = node.aof.synced_tx.take();
            (tx, Arc::clone(&node.aof.wake), node.feed.subscribe())
        };
        let synced_tx = synced_tx.unwrap_or_else(|| watch::channel(0).0);
        let now = Instant::now();
        let mut writer = Writer {
            shared,
            path,
            filename: config.filename.clone(),
            dir: None,
            manifest: Manifest::default(),
            incr: None,
            incr_pending: false,
            other_files: 0,
            running: None,
            retry: None,
            last_attempt: now,
            unsynced: false,
            last_fsync: now,
            written: 0,
            synced_tx,
            wake,
            offsets,
            restart_at: None,
            auto_after: now,
            policy: config.fsync,
            stats: AofStatus::default(),
        };
        if config.enabled {
            writer.open_at_start(config.load_truncated)?;
        }
        Ok(writer)
    }

    fn open_at_start(&mut self, load_truncated: bool) -> Result<(), AofError> {
        let dir_err = |path: &PathBuf| {
            let path = path.clone();
            move |source| AofError::Dir { path, source }
        };
        let dir = AofDir::open(&self.path, &self.filename).map_err(dir_err(&self.path))?;
        let mut manifest = match dir.read_manifest().map_err(dir_err(&self.path))? {
            Some(manifest) => {
                load::load(&self.shared, &dir, &manifest, load_truncated)?;
                manifest
            }
            None => {
                // A first start: an empty base, as Redis creates one.
                let mut manifest = Manifest::default();
                let base = manifest.next_base(&self.filename);
                dir.write_base(&base, b"").map_err(dir_err(&self.path))?;
                tracing::info!(file = %base.name, "creating the append-only base file on server start");
                manifest.base = Some(base);
                manifest
            }
        };
        dir.remove_unused(&mut manifest)
            .map_err(dir_err(&self.path))?;
        let incr = match manifest.incrs.last() {
            Some(last) => dir.open_incr(last).map_err(dir_err(&self.path))?,
            None => {
                let next = manifest.next_incr(&self.filename);
                let incr = dir.create_incr(&next).map_err(dir_err(&self.path))?;
                manifest.incrs.push(next);
                dir.write_manifest(&manifest).map_err(dir_err(&self.path))?;
                incr
            }
        };
        self.other_files = manifest
            .replay_order()
            .filter(|f| f.name != incr.file.name)
            .map(|f| dir.size_of(&f.name))
            .sum();
        self.incr = Some(incr);
        self.dir = Some(dir);
        self.manifest = manifest;
        self.stats.current_size = self.current_size();
        self.stats.base_size = self.stats.current_size;
        let mut node = self.shared.lock();
        node.feed.enable_aof();
        node.aof.status = self.stats.clone();
        Ok(())
    }

    /// Runs until shutdown, then writes and fsyncs what is left.
    pub(super) fn run(mut self, runtime: &tokio::runtime::Handle) {
        let shutdown = self.shared.shutdown.clone();
        loop {
            let stopping = shutdown.is_cancelled() || self.wait(runtime, &shutdown);
            self.turn(stopping);
            if stopping {
                break;
            }
        }
        if let Some(incr) = &self.incr {
            if let Err(e) = incr.sync() {
                tracing::error!(error = %e, "cannot fsync the append-only file at shutdown");
            }
        }
        self.abandon_rewrite();
    }

    /// Sleeps until a write, a request, the next tick or shutdown (true).
    fn wait(
        &mut self,
        runtime: &tokio::runtime::Handle,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> bool {
        let offsets = &mut self.offsets;
        let wake = &self.wake;
        runtime.block_on(async {
            tokio::select! {
                changed = offsets.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(TICK).await;
                    }
                    false
                }
                () = wake.notified() => false,
                () = tokio::time::sleep(TICK) => false,
                () = shutdown.cancelled() => true,
            }
        })
    }

    fn turn(&mut self, stopping: bool) {
        match self.decide(stopping) {
            Turn::Idle => {}
            Turn::Append(bytes, batch) => self.append(bytes, batch),
            Turn::Rewrite {
                kind,
                pending,
                batch,
                snapshot,
                enabled,
            } => self.start_rewrite(kind, pending, batch, snapshot, enabled),
            Turn::Close(leftover, batch) => self.close(leftover, batch),
        }
        if self.retry.is_some() && self.last_attempt.elapsed() >= RETRY_PERIOD {
            self.append(BytesMut::new(), 0);
        }
        self.finish_rewrite();
        self.fsync_by_policy(stopping);
        self.release();
    }

    /// Under the lock: publishes the status and takes what there is to do.
    fn decide(&mut self, stopping: bool) -> Turn {
        let mut guard = self.shared.lock();
        let node: &mut NodeState = &mut guard;
        self.policy = node.aof.fsync;
        self.stats.current_size = self.current_size();
        node.aof.status = self.stats.clone();
        if !node.aof.enabled && (self.incr.is_some() || node.aof.leftover.is_some()) {
            return Turn::Close(node.aof.leftover.take(), node.aof.taken);
        }
        if !stopping {
            if node.aof.request.is_none() && self.wants_rewrite(&node.aof) {
                node.aof.request = Some(
                    self.restart_at
                        .take()
                        .map_or(RewriteKind::Compact, |_| RewriteKind::Restart),
                );
            }
            if let Some(kind) = node.aof.request.take() {
                let pending = node.feed.take_aof();
                node.aof.taken += 1;
                let mut snapshot = BytesMut::new();
                write_keyspace(&node.db, &mut snapshot);
                node.aof.status.rewrite_in_progress = true;
                node.aof.status.rewrite_started = Some(Instant::now());
                return Turn::Rewrite {
                    kind,
                    pending,
                    batch: node.aof.taken,
                    snapshot,
                    enabled: node.aof.enabled,
                };
            }
        }
        match node.feed.take_aof() {
            Some(bytes) if !bytes.is_empty() => {
                node.aof.taken += 1;
                Turn::Append(bytes, node.aof.taken)
            }
            _ => Turn::Idle,
        }
    }

    /// A failed `Restart` whose retry is due, or the files grew enough.
    fn wants_rewrite(&self, aof: &super::AofState) -> bool {
        if self.running.is_some() || !aof.enabled {
            return false;
        }
        if let Some(at) = self.restart_at {
            return Instant::now() >= at;
        }
        if self.incr.is_none() || self.incr_pending || Instant::now() < self.auto_after {
            return false;
        }
        let current = self.current_size();
        let base = self.stats.base_size.max(1);
        aof.rewrite_percentage > 0
            && current > aof.rewrite_min_size
            && (current.saturating_mul(100) / base).saturating_sub(100) >= aof.rewrite_percentage
    }

    fn current_size(&self) -> u64 {
        let incr = self
            .incr
            .as_ref()
            .filter(|_| !self.incr_pending)
            .map_or(0, |f| f.size);
        self.other_files + incr
    }

    /// Appends `bytes` (after any that failed before) to the open file.
    fn append(&mut self, bytes: BytesMut, batch: u64) {
        let (data, batch) = match self.retry.take() {
            Some((mut earlier, earlier_batch)) => {
                earlier.extend_from_slice(&bytes);
                (earlier, earlier_batch.max(batch))
            }
            None => (bytes, batch),
        };
        let Some(incr) = self.incr.as_mut() else {
            if !data.is_empty() {
                // No file to write to (it could not be created): keep the
                // bytes for when there is one.
                self.retry = Some((data, batch));
            }
            return;
        };
        if data.is_empty() {
            return;
        }
        self.last_attempt = Instant::now();
        match incr.append(&data) {
            Ok(()) => {
                if self.stats.write_error.take().is_some() {
                    tracing::warn!("append-only file writes work again");
                }
                self.unsynced = true;
                self.written = self.written.max(batch);
            }
            Err(e) => {
                if self.stats.write_error.is_none() {
                    tracing::error!(file = %incr.file.name, error = %e,
                        "cannot write the append-only file; writes are refused until it works again");
                }
                self.stats.write_error = Some(e.to_string());
                self.retry = Some((data, batch));
            }
        }
    }

    fn fsync_by_policy(&mut self, stopping: bool) {
        if self.unsynced && (stopping || fsync_due(self.policy, self.last_fsync.elapsed())) {
            self.fsync();
        }
    }

    fn fsync(&mut self) {
        let Some(incr) = &self.incr else {
            return;
        };
        match incr.sync() {
            Ok(()) => {
                self.unsynced = false;
                self.last_fsync = Instant::now();
            }
            Err(e) => {
                if self.stats.write_error.is_none() {
                    tracing::error!(file = %incr.file.name, error = %e, "cannot fsync the append-only file");
                }
                self.stats.write_error = Some(e.to_string());
            }
        }
    }

    /// Tells waiting connections (`always`) which batches are durable.
    fn release(&self) {
        if self.policy == FsyncPolicy::Always && (self.unsynced || self.retry.is_some()) {
            return;
        }
        let written = self.written;
        self.synced_tx.send_if_modified(|published| {
            let newer = written > *published;
            if newer {
                *published = written;
            }
            newer
        });
    }

    /// The AOF was turned off: the last bytes are written and fsynced, the
    /// file closed; a rewrite in progress is abandoned.
    fn close(&mut self, leftover: Option<BytesMut>, batch: u64) {
        self.abandon_rewrite();
        if self.incr_pending {
            self.retry = None;
        } else {
            self.append(leftover.unwrap_or_default(), batch);
            self.fsync();
        }
        self.written = self.written.max(batch);
        self.retry = None;
        self.unsynced = false;
        self.incr = None;
        self.incr_pending = false;
        self.stats.write_error = None;
        tracing::info!("append-only file closed (appendonly no)");
    }

    fn abandon_rewrite(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancelled.store(true, Ordering::Relaxed);
            self.stats.rewrite_in_progress = false;
        }
    }

    /// Opens the directory (and the manifest on disk) if not done yet.
    fn dir(&mut self) -> std::io::Result<&AofDir> {
        if self.dir.is_none() {
            let dir = AofDir::open(&self.path, &self.filename)?;
            if let Some(manifest) = dir.read_manifest()? {
                self.manifest = manifest;
            }
            self.dir = Some(dir);
        }
        self.dir
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no append-only directory"))
    }

    /// The first half of a rewrite, right after the snapshot: the stream
    /// from here on goes to a new incremental file; the snapshot goes to a
    /// new base file, written by another thread.
    fn start_rewrite(
        &mut self,
        kind: RewriteKind,
        pending: Option<BytesMut>,
        batch: u64,
        snapshot: BytesMut,
        enabled: bool,
    ) {
        self.abandon_rewrite();
        let started = Instant::now();
        self.stats.rewrite_in_progress = true;
        self.stats.rewrite_started = Some(started);
        match kind {
            RewriteKind::Compact => {
                // These writes came before the snapshot: after the old files.
                self.append(pending.unwrap_or_default(), batch);
            }
            RewriteKind::Restart => {
                // Already in the snapshot; the old files are left as they are.
                self.retry = None;
                self.written = self.written.max(batch);
            }
        }
        let switched = if enabled {
            self.open_next_incr(kind)
        } else {
            Ok(())
        };
        let prepared = switched.and_then(|()| {
            let base = self.manifest.next_base(&self.filename);
            let dir = self.dir()?.path().to_path_buf();
            Ok((base, dir))
        });
        let (base, dir) = match prepared {
            Ok(ready) => ready,
            Err(e) => return self.rewrite_failed(kind, &e),
        };
        let (tx, result) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let wake = Arc::clone(&self.wake);
        let job = {
            let cancelled = Arc::clone(&cancelled);
            let base = base.clone();
            move || {
                let written =
                    write_atomic(&dir, &base.name, &snapshot).map(|()| snapshot.len() as u64);
                if cancelled.load(Ordering::Relaxed) && written.is_ok() {
                    let _ = std::fs::remove_file(dir.join(&base.name));
                }
                let _ = tx.send(written);
                wake.notify_one();
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("aof-rewrite".into())
            .spawn(job)
        {
            return self.rewrite_failed(kind, &e);
        }
        tracing::info!(kind = ?kind, base = %base.name, "background append only file rewriting started");
        self.running = Some(Running {
            kind,
            base,
            result,
            started,
            cancelled,
        });
    }

    /// Starts the next incremental file; for a `Compact` rewrite the
    /// manifest names it at once, after the files it follows.
    fn open_next_incr(&mut self, kind: RewriteKind) -> std::io::Result<()> {
        self.dir()?;
        let next = self.manifest.next_incr(&self.filename);
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no append-only directory"))?;
        let incr = dir.create_incr(&next)?;
        if kind == RewriteKind::Compact {
            let mut manifest = self.manifest.clone();
            manifest.incrs.push(next);
            dir.write_manifest(&manifest)?;
            self.manifest = manifest;
        }
        if let Some(old) = self.incr.take() {
            // The old file is complete: make it durable before moving on.
            if let Err(e) = old.sync() {
                tracing::warn!(file = %old.file.name, error = %e, "cannot fsync the previous append-only file");
            }
            if !self.incr_pending {
                self.other_files += old.size;
            }
        }
        self.unsynced = false;
        self.incr = Some(incr);
        self.incr_pending = kind == RewriteKind::Restart;
        Ok(())
    }

    fn rewrite_failed(&mut self, kind: RewriteKind, error: &dyn std::fmt::Display) {
        tracing::error!(error = %error, "background append only file rewriting failed");
        self.running = None;
        self.stats.rewrite_in_progress = false;
        self.stats.last_rewrite_ok = false;
        self.stats.consecutive_failures += 1;
        let backoff = Duration::from_secs(1 << self.stats.consecutive_failures.min(6))
            .min(MAX_REWRITE_BACKOFF);
        self.auto_after = Instant::now() + backoff;
        let enabled = self.shared.lock().aof.enabled;
        if kind == RewriteKind::Restart && enabled {
            // The AOF is not usable until a rewrite succeeds.
            self.restart_at = Some(self.auto_after);
        }
    }

    /// The second half: once the base file is written, the manifest
    /// switches to it (and the incremental file since the snapshot), and
    /// the old files are deleted.
    fn finish_rewrite(&mut self) {
        let Some(running) = &self.running else {
            return;
        };
        let written = match running.result.try_recv() {
            Ok(written) => written,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(std::io::Error::other("the rewrite thread stopped"))
            }
        };
        let Some(running) = self.running.take() else {
            return;
        };
        let base_size = match written {
            Ok(size) => size,
            Err(e) => return self.rewrite_failed(running.kind, &e),
        };
        let mut manifest = self.manifest.clone();
        let incr = self.incr.as_ref().map(|f| f.file.clone());
        manifest.switch_to(running.base.clone(), incr);
        let switched = match &self.dir {
            Some(dir) => dir
                .write_manifest(&manifest)
                .and_then(|()| dir.remove_unused(&mut manifest)),
            None => Err(std::io::Error::other("no append-only directory")),
        };
        if let Err(e) = switched {
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_file(dir.file_path(&running.base.name));
            }
            return self.rewrite_failed(running.kind, &e);
        }
        self.manifest = manifest;
        self.incr_pending = false;
        self.other_files = base_size;
        self.restart_at = None;
        let secs = running.started.elapsed().as_secs() as i64;
        self.stats.rewrite_in_progress = false;
        self.stats.rewrites += 1;
        self.stats.consecutive_failures = 0;
        self.stats.last_rewrite_ok = true;
        self.stats.last_rewrite_secs = secs;
        self.stats.current_size = self.current_size();
        self.stats.base_size = self.stats.current_size;
        tracing::info!(base = %running.base.name, bytes = base_size, "background AOF rewrite finished successfully");
    }
}

#[cfg(test)]
mod tests;
