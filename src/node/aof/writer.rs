//! The writer: a thread of its own that keeps the files of the AOF. Each
//! turn it takes the node lock briefly (to write what other tasks left in
//! the buffer, and to see what is asked of it), then works outside it:
//! fsync by policy, close a file the AOF was turned off with, start or
//! finish a rewrite. A new base file is written by a second thread, so
//! nothing waits for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::files::{AofDir, IncrFile, write_atomic};
use super::manifest::{AofFile, Manifest};
use super::{AofError, AofState, FsyncPolicy, RewriteKind, flush, load};
use crate::node::snapshot::write_keyspace;
use crate::node::state::Shared;

/// How often the writer looks at the clock (everysec fsync, bytes left by
/// expiry or replication, automatic rewrites) when nothing wakes it.
const TICK: Duration = Duration::from_millis(100);
const FSYNC_PERIOD: Duration = Duration::from_secs(1);
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

/// What one turn found under the lock.
struct Found {
    request: Option<RewriteKind>,
    enabled: bool,
    closing: Option<(IncrFile, u64)>,
    /// The file to fsync, and the position that makes durable.
    fsync: Option<(Arc<std::fs::File>, u64)>,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    /// `<dir>/<appenddirname>`.
    path: PathBuf,
    filename: String,
    /// Opened (and locked) at start with the AOF on, else when first needed.
    dir: Option<AofDir>,
    manifest: Manifest,
    /// The incremental file connections append to (the writer chooses it).
    current: Option<AofFile>,
    running: Option<Running>,
    /// Every byte before this position is on disk.
    synced: u64,
    fsync_failed: bool,
    last_fsync: Instant,
    synced_tx: watch::Sender<u64>,
    wake: Arc<tokio::sync::Notify>,
    /// A `Restart` that failed, tried again at this time.
    restart_at: Option<Instant>,
    /// No automatic rewrite before this time (after failures).
    auto_after: Instant,
}

impl Writer {
    /// Prepares the writer; with `appendonly yes`, opens the directory,
    /// loads the files into the node, and opens (or creates) the file to
    /// append to. Blocking.
    pub(super) fn open(shared: Arc<Shared>) -> Result<Writer, AofError> {
        let config = shared.config.aof.clone();
        let path = shared.config.dir.join(&config.dirname);
        let (synced_tx, wake) = {
            let mut node = shared.lock();
            node.aof = AofState::new(&config);
            (node.aof.synced_tx.take(), Arc::clone(&node.aof.wake))
        };
        let synced_tx = synced_tx.unwrap_or_else(|| watch::channel(0).0);
        let now = Instant::now();
        let mut writer = Writer {
            shared,
            path,
            filename: config.filename.clone(),
            dir: None,
            manifest: Manifest::default(),
            current: None,
            running: None,
            synced: 0,
            fsync_failed: false,
            last_fsync: now,
            synced_tx,
            wake,
            restart_at: None,
            auto_after: now,
        };
        if config.enabled {
            writer.open_at_start(config.load_truncated)?;
        }
        Ok(writer)
    }

    fn open_at_start(&mut self, load_truncated: bool) -> Result<(), AofError> {
        let path = self.path.clone();
        let dir_err = move |source| AofError::Dir {
            path: path.clone(),
            source,
        };
        let dir = AofDir::open(&self.path, &self.filename).map_err(&dir_err)?;
        let mut manifest = match dir.read_manifest().map_err(&dir_err)? {
            Some(manifest) => {
                load::load(&self.shared, &dir, &manifest, load_truncated)?;
                manifest
            }
            None => {
                // A first start: an empty base, as Redis creates one.
                let mut manifest = Manifest::default();
                let base = manifest.next_base(&self.filename);
                dir.write_base(&base, b"").map_err(&dir_err)?;
                tracing::info!(file = %base.name, "creating the append-only base file on server start");
                manifest.base = Some(base);
                manifest
            }
        };
        dir.remove_unused(&mut manifest).map_err(&dir_err)?;
        let incr = match manifest.incrs.last() {
            Some(last) => dir.open_incr(last).map_err(&dir_err)?,
            None => {
                let next = manifest.next_incr(&self.filename);
                let incr = dir.create_incr(&next).map_err(&dir_err)?;
                manifest.incrs.push(next);
                dir.write_manifest(&manifest).map_err(&dir_err)?;
                incr
            }
        };
        let other_files = manifest
            .replay_order()
            .filter(|f| f.name != incr.file.name)
            .map(|f| dir.size_of(&f.name))
            .sum();
        self.current = Some(incr.file.clone());
        self.dir = Some(dir);
        self.manifest = manifest;
        let mut node = self.shared.lock();
        node.feed.enable_aof();
        let aof = &mut node.aof;
        aof.other_files = other_files;
        aof.incr = Some(incr);
        aof.status.base_size = aof.current_size();
        Ok(())
    }

    /// Runs until shutdown; the last turn writes and fsyncs what is left.
    pub(super) fn run(mut self, runtime: &tokio::runtime::Handle) {
        let shutdown = self.shared.shutdown.clone();
        loop {
            let stopping = shutdown.is_cancelled() || self.wait(runtime, &shutdown);
            self.turn(stopping);
            if stopping {
                break;
            }
        }
        self.abandon_rewrite();
    }

    /// Sleeps until woken, the next tick, or shutdown (true).
    fn wait(&self, runtime: &tokio::runtime::Handle, shutdown: &CancellationToken) -> bool {
        runtime.block_on(async {
            tokio::select! {
                () = self.wake.notified() => false,
                () = tokio::time::sleep(TICK) => false,
                () = shutdown.cancelled() => true,
            }
        })
    }

    fn turn(&mut self, stopping: bool) {
        let found = self.look(stopping);
        if let Some((file, upto)) = found.closing {
            self.abandon_rewrite();
            self.current = None;
            self.sync_file(&file.sync_handle(), upto);
            tracing::info!(file = %file.file.name, "append-only file closed (appendonly no)");
        }
        if let Some((handle, upto)) = found.fsync {
            self.sync_file(&handle, upto);
        }
        self.publish();
        if let Some(kind) = found.request {
            self.start_rewrite(kind, found.enabled);
        }
        self.finish_rewrite();
    }

    /// Under the lock: writes what is buffered, takes what is asked.
    fn look(&mut self, stopping: bool) -> Found {
        let mut node = self.shared.lock();
        flush(&mut node);
        let aof = &mut node.aof;
        let closing = aof.closing.take();
        let mut request = None;
        if !stopping {
            if aof.request.is_none() && self.wants_rewrite(aof) {
                let restart = self.restart_at.take().is_some();
                aof.request = Some(if restart {
                    RewriteKind::Restart
                } else {
                    RewriteKind::Compact
                });
            }
            request = aof.request.take();
            if request.is_some() {
                aof.status.rewrite_in_progress = true;
                aof.status.rewrite_started = Some(Instant::now());
            }
        }
        let due = stopping || fsync_due(aof.fsync, self.last_fsync.elapsed());
        let fsync = match &aof.incr {
            Some(incr) if aof.written > self.synced && due => {
                Some((incr.sync_handle(), aof.written))
            }
            _ => None,
        };
        Found {
            request,
            enabled: aof.enabled,
            closing,
            fsync,
        }
    }

    /// A failed `Restart` whose retry is due, or the files grew enough.
    fn wants_rewrite(&self, aof: &AofState) -> bool {
        if self.running.is_some() || !aof.enabled {
            return false;
        }
        if let Some(at) = self.restart_at {
            return Instant::now() >= at;
        }
        if aof.incr.is_none() || aof.incr_pending || Instant::now() < self.auto_after {
            return false;
        }
        let current = aof.current_size();
        let base = aof.status.base_size.max(1);
        aof.rewrite_percentage > 0
            && current > aof.rewrite_min_size
            && (current.saturating_mul(100) / base).saturating_sub(100) >= aof.rewrite_percentage
    }

    /// Fsyncs `file`; on success every byte before `upto` is on disk. A
    /// failure makes the node refuse writes until an fsync works again.
    fn sync_file(&mut self, file: &std::fs::File, upto: u64) {
        let result = file.sync_data();
        let failed = result.as_ref().err().map(ToString::to_string);
        if failed.is_some() || self.fsync_failed {
            // Only a change of state takes the lock.
            self.shared.lock().aof.status.fsync_error = failed.clone();
        }
        match failed {
            None => {
                if self.fsync_failed {
                    tracing::warn!("append-only file fsyncs work again");
                }
                self.synced = self.synced.max(upto);
                self.last_fsync = Instant::now();
            }
            Some(e) if !self.fsync_failed => {
                tracing::error!(error = %e, "cannot fsync the append-only file; writes are refused until it works again");
            }
            Some(_) => {}
        }
        self.fsync_failed = result.is_err();
    }

    /// Tells waiting connections (`always`) how far the file is on disk.
    fn publish(&self) {
        let synced = self.synced;
        self.synced_tx.send_if_modified(|published| {
            let newer = synced > *published;
            if newer {
                *published = synced;
            }
            newer
        });
    }

    fn abandon_rewrite(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancelled.store(true, Ordering::Relaxed);
            self.shared.lock().aof.status.rewrite_in_progress = false;
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

    /// Creates the incremental file the stream goes to once the rewrite
    /// starts; for a `Compact` rewrite the manifest names it at once, after
    /// the files it follows (empty until the switch, so a crash before the
    /// switch loads the same data).
    fn prepare_incr(&mut self, kind: RewriteKind) -> std::io::Result<IncrFile> {
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
        Ok(incr)
    }

    /// The first half of a rewrite: under the lock, the stream switches to
    /// a new incremental file and the keyspace is copied; the copy goes to
    /// a new base file, written by another thread.
    fn start_rewrite(&mut self, kind: RewriteKind, enabled: bool) {
        self.abandon_rewrite();
        let started = Instant::now();
        let next = if enabled {
            match self.prepare_incr(kind) {
                Ok(incr) => Some(incr),
                Err(e) => return self.rewrite_failed(kind, &e),
            }
        } else {
            None
        };
        let next_name = next.as_ref().map(|f| f.file.clone());
        let switched = {
            let mut node = self.shared.lock();
            if node.aof.enabled != enabled {
                // Turned on or off meanwhile: that asks for its own rewrite
                // or abandons this one.
                node.aof.status.rewrite_in_progress = false;
                return;
            }
            match kind {
                // These writes came before the snapshot: after the old files.
                RewriteKind::Compact => flush(&mut node),
                // Already in the snapshot; the old files stay as they are.
                RewriteKind::Restart => {
                    let _ = node.feed.take_aof();
                    node.aof.retry = None;
                }
            }
            let mut snapshot = BytesMut::new();
            write_keyspace(&node.db, &mut snapshot);
            let aof = &mut node.aof;
            let old = match next {
                Some(incr) => aof.incr.replace(incr),
                None => None,
            };
            if let Some(old) = &old {
                if !aof.incr_pending {
                    aof.other_files += old.size;
                }
            }
            aof.incr_pending = kind == RewriteKind::Restart && next_name.is_some();
            (old, aof.written, snapshot)
        };
        let (old, written, snapshot) = switched;
        self.current = next_name.or(self.current.take());
        if let Some(old) = old {
            // Everything written so far is in the old file: make it
            // durable before moving on.
            self.sync_file(&old.sync_handle(), written);
            self.publish();
        }
        // (The directory first: opening it reads the manifest on disk,
        // which the new base's number follows.)
        let dir = match self.dir() {
            Ok(dir) => dir.path().to_path_buf(),
            Err(e) => return self.rewrite_failed(kind, &e),
        };
        let base = self.manifest.next_base(&self.filename);
        let (tx, result) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = {
            let wake = Arc::clone(&self.wake);
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

    fn rewrite_failed(&mut self, kind: RewriteKind, error: &dyn std::fmt::Display) {
        tracing::error!(error = %error, "background append only file rewriting failed");
        self.running = None;
        let mut node = self.shared.lock();
        let status = &mut node.aof.status;
        status.rewrite_in_progress = false;
        status.last_rewrite_ok = false;
        status.consecutive_failures += 1;
        let backoff =
            Duration::from_secs(1 << status.consecutive_failures.min(6)).min(MAX_REWRITE_BACKOFF);
        self.auto_after = Instant::now() + backoff;
        if kind == RewriteKind::Restart && node.aof.enabled {
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
        manifest.switch_to(running.base.clone(), self.current.clone());
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
        self.restart_at = None;
        {
            let mut node = self.shared.lock();
            let aof = &mut node.aof;
            aof.incr_pending = false;
            aof.other_files = base_size;
            let status = &mut aof.status;
            status.rewrite_in_progress = false;
            status.rewrites += 1;
            status.consecutive_failures = 0;
            status.last_rewrite_ok = true;
            status.last_rewrite_secs = running.started.elapsed().as_secs() as i64;
            aof.status.base_size = aof.current_size();
        }
        tracing::info!(base = %running.base.name, bytes = base_size, "background AOF rewrite finished successfully");
    }
}

#[cfg(test)]
mod tests;
