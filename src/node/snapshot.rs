//! A whole keyspace as a stream of commands: what a replica loads in a full
//! sync and what a rewritten append-only file starts with. Replayed on an
//! empty node (see `replay`), it rebuilds every key with its value and
//! absolute TTL: strings as `SET key value [PXAT t]`, every other type as
//! `RESTORE key t payload REPLACE ABSTTL` with a DUMP payload.

use bytes::BytesMut;

use super::db::{Entry, Keyspace, Value};
use super::dump;
use super::propagate::encode_command;
use crate::cluster::SLOT_COUNT;

/// Appends every key of `db` to `out` as commands, slot by slot.
pub fn write_keyspace(db: &Keyspace, out: &mut BytesMut) {
    for slot in 0..SLOT_COUNT as u16 {
        for (key, entry) in db.iter_slot(slot) {
            write_key(out, key, entry);
        }
    }
}

/// Appends the command that recreates `key` as `entry` holds it (its value
/// and absolute TTL), replacing whatever the key holds where it is replayed.
pub fn write_key(out: &mut BytesMut, key: &[u8], entry: &Entry) {
    let at = entry.expires_at.map(|t| t.to_string());
    match (&entry.value, &at) {
        (Value::Str(s), Some(at)) => {
            encode_command(out, &[b"SET", key, s, b"PXAT", at.as_bytes()]);
        }
        (Value::Str(s), None) => encode_command(out, &[b"SET", key, s]),
        (value, at) => {
            let payload = dump::dump(value);
            let at = at.as_deref().unwrap_or("0");
            encode_command(
                out,
                &[
                    b"RESTORE",
                    key,
                    at.as_bytes(),
                    &payload,
                    b"REPLACE",
                    b"ABSTTL",
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::write_keyspace;
    use crate::node::client::ClientState;
    use crate::node::cmd::tx::harness::{node, run};
    use crate::node::propagate::tests::content;
    use crate::node::replay::Replayer;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_snapshot_replays_to_the_same_keyspace() {
        let (source, _) = node();
        let mut c = ClientState::new(1, None);
        for cmd in [
            &["SET", "s", "v"][..],
            &["SET", "t", "v", "PX", "100000"],
            &["RPUSH", "l", "a", "b", "c"],
            &["HSET", "h", "f", "1"],
            &["SADD", "set", "x", "y"],
            &["ZADD", "z", "1.5", "m"],
            &["PEXPIRE", "l", "100000"],
        ] {
            run(&source, &mut c, NOW, cmd);
        }
        let mut stream = BytesMut::new();
        write_keyspace(&source.lock().db, &mut stream);
        let (copy, _) = node();
        let mut replayer = Replayer::new(99);
        let applied = replayer
            .apply(&mut copy.lock(), &copy, &mut stream)
            .unwrap();
        assert!(
            applied > 0 && stream.is_empty(),
            "every command was applied"
        );
        for key in ["s", "t", "l", "h", "set", "z"] {
            assert_eq!(content(&copy, key), content(&source, key), "{key}");
        }
        let mut d = ClientState::new(2, None);
        assert_eq!(run(&copy, &mut d, NOW, &["DBSIZE"]), ":6\r\n");
    }
}
