//! The files of an append-only file on disk: the directory (locked for one
//! node), the manifest (replaced atomically: temporary file, fsync, rename,
//! fsync of the directory), the incremental file being appended to, and
//! new base files. Everything here blocks: it runs on the writer's thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manifest::{AofFile, Manifest, manifest_name};

/// Prefix of the temporary files a crash may leave behind.
const TEMP_PREFIX: &str = "temp-";

/// The directory of an append-only file, held by one node.
#[derive(Debug)]
pub struct AofDir {
    path: PathBuf,
    filename: String,
    /// Holds the `flock` that keeps a second node out of the directory.
    _lock: File,
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` so that a crash leaves either the old file
/// or the new one: a temporary file, fsync, rename, fsync of `dir`.
///
/// # Errors
/// The I/O error; the old file is untouched.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl AofDir {
    /// Creates `path` if needed and locks it for this node.
    ///
    /// # Errors
    /// An I/O error, or `WouldBlock` when another node holds the directory.
    pub fn open(path: &Path, filename: &str) -> io::Result<AofDir> {
        fs::create_dir_all(path)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(format!("{filename}.lock")))?;
        if !crate::node::cluster::nodes_conf::try_lock(&lock)? {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is used by another node (give each node its own dir or appenddirname)",
                    path.display()
                ),
            ));
        }
        Ok(AofDir {
            path: path.to_path_buf(),
            filename: filename.to_string(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn filename(&self) -> &str {
        &self.filename
    }

    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The manifest on disk; `None` if there is none yet.
    ///
    /// # Errors
    /// An I/O error, or `InvalidData` naming the file and the bad line.
    pub fn read_manifest(&self) -> io::Result<Option<Manifest>> {
        let path = self.file_path(&manifest_name(&self.filename));
        let text = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8(text).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not UTF-8", path.display()),
            )
        })?;
        Manifest::parse(&text).map(Some).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        })
    }

    /// Replaces the manifest on disk with `manifest`, atomically.
    ///
    /// # Errors
    /// The I/O error; the old manifest stays.
    pub fn write_manifest(&self, manifest: &Manifest) -> io::Result<()> {
        write_atomic(
            &self.path,
            &manifest_name(&self.filename),
            manifest.render().as_bytes(),
        )
    }

    /// Creates (or empties) the incremental file `file` for appending. Its
    /// directory entry is made durable before the manifest names it.
    ///
    /// # Errors
    /// The I/O error.
    pub fn create_incr(&self, file: &AofFile) -> io::Result<IncrFile> {
        let handle = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.file_path(&file.name))?;
        drop(handle);
        sync_dir(&self.path)?;
        self.open_incr(file)
    }

    /// Opens the existing incremental file `file` to append to it.
    ///
    /// # Errors
    /// The I/O error.
    pub fn open_incr(&self, file: &AofFile) -> io::Result<IncrFile> {
        let handle = OpenOptions::new()
            .append(true)
            .open(self.file_path(&file.name))?;
        let size = handle.metadata()?.len();
        Ok(IncrFile {
            handle: Arc::new(handle),
            file: file.clone(),
            size,
        })
    }

    /// Writes a new base file `file` holding `bytes`: a temporary file,
    /// fsync, rename. Returns its size.
    ///
    /// # Errors
    /// The I/O error; no base file is left behind.
    pub fn write_base(&self, file: &AofFile, bytes: &[u8]) -> io::Result<u64> {
        write_atomic(&self.path, &file.name, bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Size of the file `name` (0 if it is missing).
    pub fn size_of(&self, name: &str) -> u64 {
        fs::metadata(self.file_path(name)).map_or(0, |m| m.len())
    }

    /// Deletes the files the manifest lists as history, then every other
    /// file of this AOF the manifest does not name (left by a crash in the
    /// middle of a rewrite), then writes the manifest without the history.
    ///
    /// # Errors
    /// An I/O error writing the manifest; files that cannot be deleted are
    /// logged and left.
    pub fn remove_unused(&self, manifest: &mut Manifest) -> io::Result<()> {
        let had_history = !manifest.history.is_empty();
        manifest.history.clear();
        let keep: Vec<String> = manifest.names().map(str::to_string).collect();
        let ours = |name: &str| {
            let own = name
                .strip_prefix(&self.filename)
                .is_some_and(|rest| rest.ends_with(".aof") && rest.starts_with('.'));
            let temp = name
                .strip_prefix(TEMP_PREFIX)
                .is_some_and(|rest| rest.starts_with(&self.filename));
            own || temp
        };
        for entry in fs::read_dir(&self.path)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ours(&name) && !keep.contains(&name) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(file = %name, "removed an old append-only file"),
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "cannot remove an old append-only file")
                    }
                }
            }
        }
        if had_history {
            self.write_manifest(manifest)?;
        }
        Ok(())
    }
}

/// The incremental file being appended to.
#[derive(Debug)]
pub struct IncrFile {
    /// Shared with the writer thread, which fsyncs it without the node
    /// lock while connections append under it.
    handle: Arc<File>,
    pub file: AofFile,
    /// Bytes in the file.
    pub size: u64,
}

impl IncrFile {
    /// Appends `bytes` whole or not at all: after a failed write the file
    /// is cut back to its old size, so that a retry does not follow half a
    /// command (as Redis does after a short write).
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match (&*self.handle).write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.handle.set_len(self.size) {
                    tracing::error!(file = %self.file.name, error = %cut,
                        "cannot cut a failed append-only write back; the file may end in half a command");
                }
                Err(e)
            }
        }
    }

    /// Forces what was written to disk.
    ///
    /// # Errors
    /// The I/O error of fsync.
    pub fn sync(&self) -> io::Result<()> {
        self.handle.sync_data()
    }

    /// The file, for an fsync outside the node lock.
    pub fn sync_handle(&self) -> Arc<File> {
        Arc::clone(&self.handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::aof::manifest::FileKind;

    #[test]
    fn the_directory_is_locked_for_one_node() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("appendonlydir");
        let held = AofDir::open(&dir, "appendonly.aof").unwrap();
        let err = AofDir::open(&dir, "appendonly.aof").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("another node"), "{err}");
        drop(held);
        AofDir::open(&dir, "appendonly.aof").unwrap();
    }

    #[test]
    fn manifest_round_trip_and_no_temporary_file_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AofDir::open(tmp.path(), "a.aof").unwrap();
        assert_eq!(dir.read_manifest().unwrap(), None);
        let mut m = Manifest::default();
        let base = m.next_base("a.aof");
        let incr = m.next_incr("a.aof");
        m.base = Some(base);
        m.incrs.push(incr);
        dir.write_manifest(&m).unwrap();
        assert_eq!(dir.read_manifest().unwrap(), Some(m));
        let names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with(TEMP_PREFIX)),
            "{names:?}"
        );
        fs::write(tmp.path().join("a.aof.manifest"), "file x seq 1\n").unwrap();
        let err = dir.read_manifest().unwrap_err();
        assert!(err.to_string().contains("a.aof.manifest: line 1"), "{err}");
    }

    #[test]
    fn appends_count_bytes_and_reopen_at_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AofDir::open(tmp.path(), "a.aof").unwrap();
        let file = Manifest::default().next_incr("a.aof");
        let mut incr = dir.create_incr(&file).unwrap();
        incr.append(b"hello ").unwrap();
        incr.sync().unwrap();
        drop(incr);
        let mut incr = dir.open_incr(&file).unwrap();
        assert_eq!(incr.size, 6);
        incr.append(b"world").unwrap();
        assert_eq!(fs::read(dir.file_path(&file.name)).unwrap(), b"hello world");
        assert_eq!(dir.size_of(&file.name), 11);
    }

    #[test]
    fn unused_files_go_and_the_manifest_forgets_its_history() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AofDir::open(tmp.path(), "a.aof").unwrap();
        for name in [
            "a.aof.1.base.aof",
            "a.aof.1.incr.aof",
            "a.aof.2.base.aof",
            "a.aof.2.incr.aof",
            "a.aof.3.incr.aof",
            "temp-a.aof.3.base.aof",
            "other.txt",
        ] {
            fs::write(tmp.path().join(name), b"x").unwrap();
        }
        let mut m = Manifest::parse(
            "file a.aof.2.base.aof seq 2 type b\n\
             file a.aof.1.base.aof seq 1 type h\n\
             file a.aof.2.incr.aof seq 2 type i\n",
        )
        .unwrap();
        dir.remove_unused(&mut m).unwrap();
        let mut left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a.aof.2.base.aof",
                "a.aof.2.incr.aof",
                "a.aof.lock",
                "a.aof.manifest",
                "other.txt"
            ]
        );
        let m = dir.read_manifest().unwrap().unwrap();
        assert!(m.history.is_empty());
        assert_eq!(m.incrs[0].kind, FileKind::Incr);
    }
}
