use bytes::Bytes;

use super::*;

fn key(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn keys_are_indexed_by_slot() {
    let mut db = Keyspace::new();
    db.insert(key("{user1000}.following"), Value::Str(key("a")));
    db.insert(key("{user1000}.followers"), Value::Str(key("b")));
    db.insert(key("foo"), Value::Str(key("c")));
    let slot = key_slot(b"{user1000}.following");
    assert_eq!(db.count_in_slot(slot), 2);
    assert_eq!(db.count_in_slot(12182), 1, "foo is in slot 12182");
    assert_eq!(db.len(), 3);
    assert_eq!(db.clear_slot(slot), 2);
    assert_eq!(db.len(), 1);
}

#[test]
fn expired_keys_disappear_lazily_and_actively() {
    let mut db = Keyspace::new();
    db.set_clock(1_000);
    db.insert(key("a"), Value::Str(key("1")));
    db.insert(key("b"), Value::Str(key("2")));
    assert!(db.set_expiry(b"a", Some(2_000)));
    assert!(db.set_expiry(b"b", Some(2_000)));
    assert_eq!(db.volatile_len(), 2);
    assert!(db.get(b"a").is_some());
    db.set_clock(2_000);
    assert!(db.get(b"a").is_none(), "lazy expiry on read");
    assert_eq!(db.len(), 1);
    let deleted = db.expire_cycle(100_000);
    assert_eq!(deleted, vec![key("b")], "active expiry");
    assert_eq!(db.len(), 0);
    assert_eq!(db.volatile_len(), 0);
    assert_eq!(db.expired_keys, 2);
}

#[test]
fn set_clears_the_ttl_and_keepttl_keeps_it() {
    let mut db = Keyspace::new();
    db.set_clock(0);
    db.insert(key("k"), Value::Str(key("1")));
    db.set_expiry(b"k", Some(100));
    db.insert_keep_ttl(key("k"), Value::Str(key("2")));
    assert_eq!(db.expires_at(b"k"), Some(100));
    db.insert(key("k"), Value::Str(key("3")));
    assert_eq!(db.expires_at(b"k"), None);
    assert_eq!(db.volatile_len(), 0);
}

#[test]
fn an_expiry_in_the_past_deletes_the_key() {
    let mut db = Keyspace::new();
    db.set_clock(1_000);
    db.insert(key("k"), Value::Str(key("1")));
    assert!(db.set_expiry(b"k", Some(999)));
    assert!(!db.contains(b"k"));
    assert!(!db.set_expiry(b"missing", Some(5_000)));
}

#[test]
fn emptied_collections_are_removed() {
    let mut db = Keyspace::new();
    let list = db.get_or_insert_with(&key("l"), || Value::List(Default::default()));
    assert!(list.as_list_mut().is_ok());
    db.remove_if_empty(b"l");
    assert!(!db.contains(b"l"));
    assert_eq!(db.len(), 0);
}
