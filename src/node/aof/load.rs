//! Loading an append-only file at start: the base, then every incremental
//! file, replayed as Redis loads its AOF (see `replay`: no redirection,
//! expiry off, a MULTI block only once complete). Keys whose TTL passed
//! while the node was down are loaded, then go by normal expiry.
//!
//! A last command cut short (a crash in the middle of a write) is dropped
//! with a warning and the file is cut there, so that new writes do not
//! follow half a command (`aof-load-truncated yes`, Redis's default); cut
//! short anywhere else, or bytes that are not commands, stop the start
//! with the file and offset named.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;

use super::files::AofDir;
use super::manifest::Manifest;
use crate::node::replay::Replayer;
use crate::node::state::Shared;

/// Bytes read at a time: the lock is taken once per chunk.
const CHUNK: usize = 1 << 20;

/// Why an append-only file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the append-only file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "bad file format reading the append-only file {path} at offset {offset}: {why} \
         (make a backup, then cut the file at that offset or restore it)"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    #[error(
        "unexpected end of file reading the append-only file {path}: the command at offset \
         {offset} is cut short (set aof-load-truncated yes to drop it, if this is the last file)"
    )]
    Truncated { path: PathBuf, offset: u64 },
}

/// What was loaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub files: usize,
    /// Bytes of commands applied.
    pub bytes: u64,
    /// Bytes dropped from the end of the last file.
    pub truncated: u64,
}

/// Replays every file of `manifest` into the node.
///
/// # Errors
/// [`LoadError`]: a file missing or unreadable, damaged, or cut short
/// where that is not allowed.
pub fn load(
    shared: &Arc<Shared>,
    dir: &AofDir,
    manifest: &Manifest,
    load_truncated: bool,
) -> Result<Loaded, LoadError> {
    let started = Instant::now();
    let files: Vec<_> = manifest.replay_order().collect();
    let mut loaded = Loaded::default();
    for (i, file) in files.iter().enumerate() {
        let path = dir.file_path(&file.name);
        let last = i + 1 == files.len();
        let (applied, total) = replay_file(shared, &path)?;
        loaded.files += 1;
        loaded.bytes += applied;
        if applied == total {
            continue;
        }
        if !(last && load_truncated) {
            return Err(LoadError::Truncated {
                path,
                offset: applied,
            });
        }
        tracing::warn!(
            file = %path.display(),
            offset = applied,
            dropped_bytes = total - applied,
            "!!! short read while loading the append-only file: the last command is cut short; \
             truncating the file there and loading anyway (aof-load-truncated yes) !!!"
        );
        cut(&path, applied).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        loaded.truncated = total - applied;
    }
    tracing::info!(
        files = loaded.files,
        bytes = loaded.bytes,
        keys = shared.lock().db.len(),
        seconds = started.elapsed().as_secs_f64(),
        "DB loaded from append only file"
    );
    Ok(loaded)
}

/// Replays one file; returns the bytes of complete commands applied and
/// the file's size (they differ when it ends in the middle of a command or
/// of a MULTI block).
fn replay_file(shared: &Arc<Shared>, path: &PathBuf) -> Result<(u64, u64), LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let mut replayer = Replayer::new(id).multibulk_only();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; CHUNK];
    let (mut read, mut applied) = (0u64, 0u64);
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        read += n as u64;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut node = shared.lock();
        let done = replayer
            .apply(&mut node, shared, &mut buf)
            .map_err(|e| LoadError::Corrupt {
                path: path.clone(),
                offset: read - buf.len() as u64,
                why: e.to_string(),
            })?;
        applied += done as u64;
    }
    Ok((applied, read))
}

/// Cuts the file at `len` bytes, durably.
fn cut(path: &PathBuf, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

#[cfg(test)]
mod tests;
