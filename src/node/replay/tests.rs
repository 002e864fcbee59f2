use bytes::BytesMut;

use super::Replayer;
use crate::node::client::ClientState;
use crate::node::cmd::tx::harness::{node, run};

const NOW: i64 = 1_700_000_000_000;

#[test]
fn a_partial_command_waits_for_its_end() {
    let (shared, _) = node();
    let mut r = Replayer::new(1);
    let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    let mut buf = BytesMut::from(&full[..10]);
    assert_eq!(r.apply(&mut shared.lock(), &shared, &mut buf).unwrap(), 0);
    buf.extend_from_slice(&full[10..]);
    assert_eq!(
        r.apply(&mut shared.lock(), &shared, &mut buf).unwrap(),
        full.len()
    );
    let mut c = ClientState::new(2, None);
    assert_eq!(run(&shared, &mut c, NOW, &["GET", "k"]), "$1\r\nv\r\n");
}

#[test]
fn a_transaction_is_applied_only_once_its_exec_arrives() {
    let (shared, _) = node();
    let mut r = Replayer::new(1);
    let mut buf = BytesMut::from(
        &b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"[..],
    );
    assert_eq!(r.apply(&mut shared.lock(), &shared, &mut buf).unwrap(), 0);
    assert!(r.in_transaction());
    let mut c = ClientState::new(2, None);
    assert_eq!(run(&shared, &mut c, NOW, &["GET", "n"]), "$-1\r\n");
    buf.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
    assert_eq!(
        r.apply(&mut shared.lock(), &shared, &mut buf).unwrap(),
        15 + 2 * 21 + 14
    );
    assert_eq!(run(&shared, &mut c, NOW, &["GET", "n"]), "$1\r\n2\r\n");
}

#[test]
fn replayed_commands_ignore_slot_ownership_and_expiry() {
    let (shared, _) = node();
    shared.lock().cluster.set_owners(0..16384, None);
    let mut r = Replayer::new(1);
    // A key whose TTL passed on this clock is still there for the stream.
    let mut buf = BytesMut::from(
        &b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$4\r\nPXAT\r\n$1\r\n5\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"[..],
    );
    r.apply(&mut shared.lock(), &shared, &mut buf).unwrap();
    let mut node = shared.lock();
    node.db.set_expiry_enabled(false);
    assert_eq!(
        node.db.get(b"k").map(|v| format!("{v:?}")),
        Some("Str(b\"2\")".to_string())
    );
}

#[test]
fn bad_input_is_an_error() {
    let (shared, _) = node();
    let mut r = Replayer::new(1);
    let mut buf = BytesMut::from(&b"*1\r\n$x\r\n"[..]);
    assert!(r.apply(&mut shared.lock(), &shared, &mut buf).is_err());
}
