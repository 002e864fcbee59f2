use std::fs;

use super::*;
use crate::node::aof::AofConfig;
use crate::node::aof::manifest::Manifest;
use crate::node::aof::tests::{node_in, run_all};

const SET_A: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
const SET_B: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n";

/// A directory with a manifest naming `files` (base first), each written
/// with its content.
fn aof_dir(root: &std::path::Path, files: &[&[u8]]) -> (AofDir, Manifest) {
    let dir = AofDir::open(&root.join("appendonlydir"), "appendonly.aof").unwrap();
    let mut m = Manifest::default();
    for (i, content) in files.iter().enumerate() {
        let f = if i == 0 {
            let f = m.next_base("appendonly.aof");
            m.base = Some(f.clone());
            f
        } else {
            let f = m.next_incr("appendonly.aof");
            m.incrs.push(f.clone());
            f
        };
        fs::write(dir.file_path(&f.name), content).unwrap();
    }
    dir.write_manifest(&m).unwrap();
    (dir, m)
}

#[test]
fn base_then_incremental_files_are_replayed_in_order() {
    let root = tempfile::tempdir().unwrap();
    let incr = [SET_B, b"*2\r\n$4\r\nINCR\r\n$1\r\na\r\n"].concat();
    let (dir, m) = aof_dir(root.path(), &[SET_A, &incr]);
    let shared = node_in(root.path(), AofConfig::default());
    let loaded = load(&shared, &dir, &m, true).unwrap();
    assert_eq!(loaded.files, 2);
    assert_eq!(loaded.bytes, (SET_A.len() + incr.len()) as u64);
    assert_eq!(loaded.truncated, 0);
    assert_eq!(run_all(&shared, &[&["GET", "a"]]), "$1\r\n2\r\n");
    assert_eq!(run_all(&shared, &[&["GET", "b"]]), "$1\r\n2\r\n");
}

#[test]
fn a_command_cut_short_at_the_end_is_dropped_and_the_file_cut() {
    let root = tempfile::tempdir().unwrap();
    let incr = [SET_B, &SET_A[..SET_A.len() - 3]].concat();
    let (dir, m) = aof_dir(root.path(), &[b"", &incr]);
    let shared = node_in(root.path(), AofConfig::default());
    let loaded = load(&shared, &dir, &m, true).unwrap();
    assert_eq!(loaded.truncated, (SET_A.len() - 3) as u64);
    assert_eq!(run_all(&shared, &[&["GET", "b"]]), "$1\r\n2\r\n");
    assert_eq!(run_all(&shared, &[&["EXISTS", "a"]]), ":0\r\n");
    let on_disk = fs::read(dir.file_path(&m.incrs[0].name)).unwrap();
    assert_eq!(on_disk, SET_B, "the half command is cut off the file");
}

#[test]
fn a_transaction_without_its_exec_at_the_end_is_dropped_whole() {
    let root = tempfile::tempdir().unwrap();
    let incr = [SET_B, b"*1\r\n$5\r\nMULTI\r\n", SET_A].concat();
    let (dir, m) = aof_dir(root.path(), &[b"", &incr]);
    let shared = node_in(root.path(), AofConfig::default());
    load(&shared, &dir, &m, true).unwrap();
    assert_eq!(run_all(&shared, &[&["EXISTS", "a"]]), ":0\r\n");
    assert_eq!(run_all(&shared, &[&["EXISTS", "b"]]), ":1\r\n");
    assert_eq!(fs::read(dir.file_path(&m.incrs[0].name)).unwrap(), SET_B);
}

#[test]
fn cut_short_is_an_error_without_aof_load_truncated_or_before_the_last_file() {
    let root = tempfile::tempdir().unwrap();
    let cut = &SET_A[..10];
    let (dir, m) = aof_dir(root.path(), &[b"", cut]);
    let shared = node_in(root.path(), AofConfig::default());
    let err = load(&shared, &dir, &m, false).unwrap_err();
    assert!(
        matches!(&err, LoadError::Truncated { offset: 0, path } if path.ends_with("appendonly.aof.1.incr.aof")),
        "{err}"
    );
    assert!(err.to_string().contains("aof-load-truncated"), "{err}");
    assert_eq!(
        fs::read(dir.file_path(&m.incrs[0].name)).unwrap(),
        cut,
        "left as it was"
    );

    let root = tempfile::tempdir().unwrap();
    let (dir, m) = aof_dir(root.path(), &[cut, SET_B]);
    let shared = node_in(root.path(), AofConfig::default());
    let err = load(&shared, &dir, &m, true).unwrap_err();
    assert!(
        matches!(&err, LoadError::Truncated { path, .. } if path.ends_with("appendonly.aof.1.base.aof")),
        "{err}"
    );
}

#[test]
fn garbage_in_the_middle_names_the_file_and_offset() {
    let root = tempfile::tempdir().unwrap();
    for garbage in [&b"hello world\r\n"[..], b"*2\r\n$3\r\nGET\r\n:1\r\n"] {
        let incr = [SET_A, garbage, SET_B].concat();
        let (dir, m) = aof_dir(root.path(), &[b"", &incr]);
        let shared = node_in(root.path(), AofConfig::default());
        let err = load(&shared, &dir, &m, true).unwrap_err();
        match &err {
            LoadError::Corrupt { path, offset, .. } => {
                assert!(path.ends_with("appendonly.aof.1.incr.aof"), "{err}");
                assert_eq!(*offset, SET_A.len() as u64, "{err}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("bad file format"), "{err}");
        assert_eq!(
            fs::read(dir.file_path(&m.incrs[0].name)).unwrap(),
            incr,
            "a damaged file is never cut"
        );
    }
}

#[test]
fn a_missing_file_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let (dir, m) = aof_dir(root.path(), &[b"", SET_A]);
    fs::remove_file(dir.file_path(&m.incrs[0].name)).unwrap();
    let shared = node_in(root.path(), AofConfig::default());
    let err = load(&shared, &dir, &m, true).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
}

#[test]
fn expired_keys_are_loaded_and_then_expire_normally() {
    let root = tempfile::tempdir().unwrap();
    let gone = b"*5\r\n$3\r\nSET\r\n$1\r\ng\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$1\r\n5\r\n";
    let (dir, m) = aof_dir(root.path(), &[gone, b""]);
    let shared = node_in(root.path(), AofConfig::default());
    load(&shared, &dir, &m, true).unwrap();
    assert_eq!(shared.lock().db.len(), 1, "loaded with its TTL past");
    assert_eq!(run_all(&shared, &[&["EXISTS", "g"]]), ":0\r\n");
}
