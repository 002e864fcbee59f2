//! The append-only file of a built-in node, laid out as Redis 7's
//! multi-part AOF: a directory `<dir>/<appenddirname>` holding a base file
//! (the keyspace at the last rewrite), incremental files (every write
//! since, as the write stream carries it) and a manifest naming them.
//!
//! ```text
//! feed (write stream) --take_aof--> writer thread --> <filename>.<n>.incr.aof
//!                                       |  fsync: always | everysec | no
//!                                       +-- rewrite: snapshot under the lock,
//!                                           new base written outside it,
//!                                           manifest switched atomically
//! ```
//!
//! - Loading (`load`) happens at start, before the node serves clients or
//!   its bus runs.
//! - Writing is Redis's: a connection writes the stream bytes of its
//!   batch of commands to the incremental file (write(2), no fsync) under
//!   the node lock, before its replies go out, so an acknowledged write
//!   survives the process being killed ([`flush`]). The writer thread
//!   (`writer`) fsyncs outside the lock (once a second for `everysec`, at
//!   once for `always`, whose connections hold their replies until then:
//!   [`SyncWait`], one fsync for the writes of many connections), writes
//!   what other tasks left in the buffer (expiry, replication), and runs
//!   rewrites.
//! - A rewrite (BGREWRITEAOF, or the files grew by
//!   `auto-aof-rewrite-percentage` past `auto-aof-rewrite-min-size`) takes
//!   the snapshot of the keyspace into memory under the node lock, in the
//!   same lock that switches to a new incremental file, so the snapshot and
//!   the new file meet exactly. Redis forks instead; a copy in memory is
//!   what a node without fork can do, and costs the size of the keyspace
//!   while the base file is written outside the lock.
//!
//! A write that fails is retried, reported in INFO (`aof_last_write_status`)
//! and makes the node refuse writes with `-MISCONF` until it succeeds, as
//! Redis does; it never stops the node.

pub mod config;
pub mod files;
pub mod load;
pub mod manifest;
mod writer;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::{Notify, watch};

use files::IncrFile;

use super::state::{NodeState, Shared};
pub use config::{AofConfig, FsyncPolicy};

/// Why the append-only file stops a node from starting.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("append-only file directory {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] load::LoadError),
}

/// How a rewrite relates to the files already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RewriteKind {
    /// The files describe the keyspace (BGREWRITEAOF, growth): writes from
    /// the snapshot on go to a new incremental file that the manifest names
    /// at once, after the old files; the new base replaces them all.
    Compact,
    /// The files no longer describe the keyspace (the AOF was just turned
    /// on, a full sync replaced the data): the new incremental file joins
    /// the manifest only with the new base, so a crash before that loads
    /// the old files whole rather than a mix.
    Restart,
}

/// What INFO persistence reports about the AOF.
#[derive(Debug, Clone)]
pub struct AofStatus {
    pub rewrite_in_progress: bool,
    pub rewrite_started: Option<Instant>,
    pub rewrites: u64,
    pub consecutive_failures: u64,
    pub last_rewrite_ok: bool,
    /// Seconds the last rewrite took (-1: none yet).
    pub last_rewrite_secs: i64,
    /// Why the last write failed, while writes fail.
    pub write_error: Option<String>,
    /// Why the last fsync failed, while fsyncs fail.
    pub fsync_error: Option<String>,
    /// Bytes of the files at the start or after the last rewrite.
    pub base_size: u64,
}

impl Default for AofStatus {
    fn default() -> Self {
        AofStatus {
            rewrite_in_progress: false,
            rewrite_started: None,
            rewrites: 0,
            consecutive_failures: 0,
            last_rewrite_ok: true,
            last_rewrite_secs: -1,
            write_error: None,
            fsync_error: None,
            base_size: 0,
        }
    }
}

/// The AOF's part of the node state: its settings as they are now, the
/// file written under the node lock, what is asked of the writer, and what
/// INFO reports.
#[derive(Debug)]
pub struct AofState {
    /// `appendonly`.
    pub enabled: bool,
    pub fsync: FsyncPolicy,
    pub rewrite_percentage: u64,
    pub rewrite_min_size: u64,
    pub load_truncated: bool,
    /// A rewrite asked for, not started yet.
    request: Option<RewriteKind>,
    /// The incremental file appended to; none while the AOF is off (and
    /// until the first rewrite after turning it on creates one: the bytes
    /// wait in the feed meanwhile).
    incr: Option<IncrFile>,
    /// `incr` is not in the manifest yet (a `Restart` rewrite runs).
    incr_pending: bool,
    /// Bytes in the manifest's other files (base, older incremental ones).
    other_files: u64,
    /// A file left when the AOF was turned off, for the writer to fsync
    /// and close, and the write position it ends at.
    closing: Option<(IncrFile, u64)>,
    /// Bytes whose write failed, written before the next ones.
    retry: Option<BytesMut>,
    /// Bytes written to incremental files since the start: the position
    /// `appendfsync always` waits for, published in `synced` once fsynced.
    written: u64,
    synced: watch::Receiver<u64>,
    /// Until the writer takes it: a node without a writer (unit tests)
    /// makes no connection wait.
    synced_tx: Option<watch::Sender<u64>>,
    /// Wakes the writer.
    wake: Arc<Notify>,
    pub status: AofStatus,
}

impl Default for AofState {
    fn default() -> Self {
        AofState::new(&AofConfig::default())
    }
}

impl AofState {
    pub fn new(config: &AofConfig) -> Self {
        let (synced_tx, synced) = watch::channel(0);
        AofState {
            enabled: config.enabled,
            fsync: config.fsync,
            rewrite_percentage: config.rewrite_percentage,
            rewrite_min_size: config.rewrite_min_size,
            load_truncated: config.load_truncated,
            request: None,
            incr: None,
            incr_pending: false,
            other_files: 0,
            closing: None,
            retry: None,
            written: 0,
            synced,
            synced_tx: Some(synced_tx),
            wake: Arc::new(Notify::new()),
            status: AofStatus::default(),
        }
    }

    /// A rewrite runs or is about to.
    pub fn rewriting(&self) -> bool {
        self.status.rewrite_in_progress || self.request.is_some()
    }

    /// Bytes in the files the manifest names (`aof_current_size`).
    pub fn current_size(&self) -> u64 {
        let incr = self
            .incr
            .as_ref()
            .filter(|_| !self.incr_pending)
            .map_or(0, |f| f.size);
        self.other_files + incr
    }

    /// The position every byte of the stream taken so far reaches once
    /// written.
    fn end_position(&self) -> u64 {
        self.written + self.retry.as_ref().map_or(0, |r| r.len() as u64)
    }

    fn ask(&mut self, kind: RewriteKind) {
        self.request = Some(kind);
        self.wake.notify_one();
    }
}

/// Writes the stream bytes buffered for the file (write(2), no fsync), as
/// Redis does before it sends replies. Called under the node lock at the
/// end of each batch of commands, and by the writer for bytes other tasks
/// left. A write that fails keeps its bytes for the next call and makes
/// the node refuse writes ([`write_refusal`]) until one succeeds.
pub fn flush(node: &mut NodeState) {
    let NodeState { aof, feed, .. } = node;
    let Some(incr) = aof.incr.as_mut() else {
        return;
    };
    let Some(bytes) = feed.take_aof() else {
        return;
    };
    let data = match aof.retry.take() {
        Some(mut earlier) => {
            earlier.extend_from_slice(&bytes);
            earlier
        }
        None => bytes,
    };
    if data.is_empty() {
        return;
    }
    match incr.append(&data) {
        Ok(()) => {
            aof.written += data.len() as u64;
            if aof.status.write_error.take().is_some() {
                tracing::warn!("append-only file writes work again");
            }
        }
        Err(e) => {
            if aof.status.write_error.is_none() {
                tracing::error!(file = %incr.file.name, error = %e,
                    "cannot write the append-only file; writes are refused until it works again");
            }
            aof.status.write_error = Some(e.to_string());
            aof.retry = Some(data);
        }
    }
}

/// CONFIG SET appendonly: `yes` starts the AOF with a rewrite (the files
/// on disk, if any, are from before and are replaced), `no` writes what
/// is buffered and hands the file to the writer to fsync and close, as
/// Redis does.
pub fn set_enabled(node: &mut NodeState, on: bool) {
    if node.aof.enabled == on {
        return;
    }
    node.aof.enabled = on;
    if on {
        node.feed.enable_aof();
        node.aof.ask(RewriteKind::Restart);
    } else {
        flush(node);
        node.feed.disable_aof();
        let aof = &mut node.aof;
        aof.request = None;
        aof.retry = None;
        aof.status.write_error = None;
        aof.incr_pending = false;
        aof.closing = aof.incr.take().map(|f| (f, aof.written));
        aof.wake.notify_one();
    }
}

/// BGREWRITEAOF: starts a rewrite; with the AOF off it writes a base file
/// alone, as Redis does.
///
/// # Errors
/// Redis's text when a rewrite already runs.
pub fn bgrewriteaof(node: &mut NodeState) -> Result<(), &'static str> {
    if node.aof.rewriting() {
        return Err("ERR Background append only file rewriting already in progress");
    }
    let kind = if node.aof.enabled {
        RewriteKind::Compact
    } else {
        RewriteKind::Restart
    };
    node.aof.ask(kind);
    Ok(())
}

/// For replication: a full sync has just replaced this node's keyspace.
/// Call it under the node lock that loaded the new keyspace, before any
/// of the master's stream after it is appended: the AOF then starts over
/// from this keyspace (as Redis restarts its AOF after a sync), and until
/// the new base is written a crash loads the old files, never a mix of
/// old data and new stream. Nothing happens with the AOF off.
pub fn rewrite_after_sync(node: &mut NodeState) {
    if node.aof.enabled {
        node.aof.ask(RewriteKind::Restart);
    }
}

/// Redis's `-MISCONF` refusal of writes while the AOF cannot be written.
pub fn write_refusal(node: &NodeState) -> Option<String> {
    let status = &node.aof.status;
    let error = status
        .write_error
        .as_ref()
        .or(status.fsync_error.as_ref())?;
    node.aof
        .enabled
        .then(|| format!("MISCONF Errors writing to the AOF file: {error}"))
}

/// The replies of a batch of commands, held until their writes are on
/// disk (`appendfsync always`).
#[derive(Debug)]
pub struct SyncWait {
    synced: watch::Receiver<u64>,
    need: u64,
}

impl SyncWait {
    /// Resolves once the writer has written and fsynced the batch (or is
    /// gone).
    pub async fn wait(mut self) {
        let need = self.need;
        let _ = self.synced.wait_for(|&done| done >= need).await;
    }
}

/// Called under the lock at the end of a batch of commands that started
/// when the stream was at `offset_before`, after [`flush`]: with
/// `appendfsync always`, if they wrote, what to wait for before their
/// replies go out (the writer is woken to fsync at once).
pub fn sync_wait(node: &NodeState, offset_before: u64) -> Option<SyncWait> {
    let aof = &node.aof;
    let wrote = node.feed.offset() != offset_before;
    if !(wrote && aof.enabled && aof.fsync == FsyncPolicy::Always && aof.synced_tx.is_none()) {
        return None;
    }
    aof.wake.notify_one();
    Some(SyncWait {
        synced: aof.synced.clone(),
        need: aof.end_position(),
    })
}

/// INFO persistence: the `aof_*` fields, as Redis names them.
pub fn info_fields(node: &NodeState) -> Vec<(&'static str, String)> {
    let aof = &node.aof;
    let s = &aof.status;
    let ok = |ok: bool| if ok { "ok" } else { "err" }.to_string();
    let current_secs = s
        .rewrite_started
        .filter(|_| s.rewrite_in_progress)
        .map_or(-1, |t| t.elapsed().as_secs() as i64);
    let mut lines = vec![
        ("aof_enabled", u8::from(aof.enabled).to_string()),
        (
            "aof_rewrite_in_progress",
            u8::from(aof.rewriting()).to_string(),
        ),
        ("aof_rewrite_scheduled", "0".into()),
        ("aof_last_rewrite_time_sec", s.last_rewrite_secs.to_string()),
        ("aof_current_rewrite_time_sec", current_secs.to_string()),
        ("aof_last_bgrewrite_status", ok(s.last_rewrite_ok)),
        ("aof_rewrites", s.rewrites.to_string()),
        (
            "aof_rewrites_consecutive_failures",
            s.consecutive_failures.to_string(),
        ),
        (
            "aof_last_write_status",
            ok(s.write_error.is_none() && s.fsync_error.is_none()),
        ),
    ];
    if aof.enabled {
        lines.extend([
            ("aof_current_size", aof.current_size().to_string()),
            ("aof_base_size", s.base_size.to_string()),
            ("aof_pending_rewrite", "0".into()),
        ]);
    }
    lines
}

/// The running writer: awaited at shutdown, after the last bytes are
/// written and fsynced.
pub struct AofTask {
    done: tokio::sync::oneshot::Receiver<()>,
}

impl AofTask {
    /// Waits until the writer has flushed and stopped (after shutdown).
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}

/// Loads the append-only file if `appendonly` is on (blocking the caller
/// until the keyspace is back), then starts the writer, which also serves
/// a later CONFIG SET appendonly yes and BGREWRITEAOF.
///
/// # Errors
/// [`AofError`] when the directory cannot be used or a file cannot be
/// loaded: the node must not start with part of its data.
pub async fn start(shared: &Arc<Shared>) -> Result<AofTask, AofError> {
    let opening = Arc::clone(shared);
    let opened = tokio::task::spawn_blocking(move || writer::Writer::open(opening))
        .await
        .map_err(|e| AofError::Dir {
            path: shared.config.dir.clone(),
            source: std::io::Error::other(e),
        })??;
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("aof-writer".into())
        .spawn(move || {
            opened.run(&runtime);
            let _ = done_tx.send(());
        });
    if let Err(source) = spawned {
        return Err(AofError::Dir {
            path: shared.config.dir.clone(),
            source,
        });
    }
    Ok(AofTask { done })
}

#[cfg(test)]
mod tests;
