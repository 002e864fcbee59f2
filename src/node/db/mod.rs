//! The keyspace of a built-in node: one map per hash slot, so that
//! `CLUSTER COUNTKEYSINSLOT`, `GETKEYSINSLOT` and slot migration touch only
//! the keys of that slot, and `FLUSHSLOTS`/`DELSLOTS` are cheap.
//!
//! Expiry is lazy (a read of an expired key deletes it) and active
//! ([`Keyspace::expire_cycle`] walks the slots that hold keys with a TTL).
//! Every read and write goes through [`Keyspace`], which reads the clock
//! set once per command with [`Keyspace::set_clock`], as Redis caches
//! `mstime()` per command.

pub mod set;
pub mod value;
pub mod zset;

use bytes::Bytes;

use crate::cluster::{SLOT_COUNT, key_slot};
pub use set::MemberSet;
pub use value::{Hasher, Map, Set, Value};
pub use zset::SortedSet;

/// One key: its value and absolute expiry time (Unix ms).
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub expires_at: Option<i64>,
}

/// The keys of one slot.
#[derive(Debug, Default)]
struct SlotKeys {
    map: Map<Bytes, Entry>,
    /// How many keys of this slot have a TTL: the active expiry skips slots
    /// with none.
    volatile: usize,
}

/// Every key of the node, by slot.
#[derive(Debug)]
pub struct Keyspace {
    slots: Vec<SlotKeys>,
    len: usize,
    volatile: usize,
    /// Milliseconds since the Unix epoch, as of the command being run.
    now_ms: i64,
    /// Where the active expiry resumes.
    expire_cursor: usize,
    /// Keys removed by expiry since the start (INFO stats `expired_keys`).
    pub expired_keys: u64,
    /// False on a replica and while a write stream is replayed: no key is
    /// ever due, because the master's own `DEL`s decide when keys expire
    /// (a replica that expired keys on its own clock could apply a later
    /// write to a key its master still had, and diverge).
    expiry_enabled: bool,
    /// Keys removed by expiry until [`Keyspace::take_expired`]: the master
    /// propagates them as `DEL`s.
    expired_log: Vec<Bytes>,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self::new()
    }
}

/// The current time in Unix milliseconds.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Keyspace {
    pub fn new() -> Self {
        let hasher = Hasher::new();
        Keyspace {
            slots: (0..SLOT_COUNT)
                .map(|_| SlotKeys {
                    map: Map::with_hasher(hasher.clone()),
                    volatile: 0,
                })
                .collect(),
            len: 0,
            volatile: 0,
            now_ms: unix_ms(),
            expire_cursor: 0,
            expired_keys: 0,
            expiry_enabled: true,
            expired_log: Vec::new(),
        }
    }

    /// Sets the clock every expiry check of the next command uses.
    pub fn set_clock(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Turns expiry on (a master) or off (a replica, a replay): see
    /// `expiry_enabled`.
    pub fn set_expiry_enabled(&mut self, enabled: bool) {
        self.expiry_enabled = enabled;
    }

    pub fn expiry_enabled(&self) -> bool {
        self.expiry_enabled
    }

    /// True if a key that expires at `at` (Unix ms) is already gone.
    pub fn is_due(&self, at: i64) -> bool {
        self.expiry_enabled && at <= self.now_ms
    }

    /// The keys expiry removed since the last call.
    pub fn take_expired(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.expired_log)
    }

    /// Number of keys (expired ones not yet removed included, as Redis's
    /// DBSIZE).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.volatile
    }

    fn slot_of(&mut self, key: &[u8]) -> &mut SlotKeys {
        let slot = usize::from(key_slot(key));
        // `key_slot` is always below SLOT_COUNT; the index cannot fail.
        &mut self.slots[slot]
    }

    /// Removes `key` if its TTL has passed; true if it did.
    fn expire_if_due(&mut self, key: &[u8]) -> bool {
        if !self.expiry_enabled {
            return false;
        }
        let now = self.now_ms;
        let slot = self.slot_of(key);
        let due = matches!(slot.map.get(key), Some(Entry { expires_at: Some(t), .. }) if *t <= now);
        if due {
            let removed = slot.map.remove_entry(key);
            slot.volatile -= 1;
            if let Some((key, _)) = removed {
                self.expired_log.push(key);
            }
            self.len -= 1;
            self.volatile -= 1;
            self.expired_keys += 1;
        }
        due
    }

    /// The live entry of `key`.
    pub fn entry(&mut self, key: &[u8]) -> Option<&Entry> {
        self.expire_if_due(key);
        self.slot_of(key).map.get(key)
    }

    /// The live value of `key`.
    pub fn get(&mut self, key: &[u8]) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    /// The live value of `key`, read without the lazy delete of an expired
    /// key: for commands that hold several values at once (SINTER, ZUNION),
    /// after a [`Keyspace::get`] of each key has done the deleting.
    pub fn peek(&self, key: &[u8]) -> Option<&Value> {
        self.slots
            .get(usize::from(key_slot(key)))?
            .map
            .get(key)
            .filter(|e| !e.expires_at.is_some_and(|t| self.is_due(t)))
            .map(|e| &e.value)
    }

    /// The live value of `key`, for changing in place (the TTL is kept).
    /// A caller that empties a collection calls [`Keyspace::remove_if_empty`].
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.expire_if_due(key);
        self.slot_of(key).map.get_mut(key).map(|e| &mut e.value)
    }

    /// True if `key` exists and has not expired.
    pub fn contains(&mut self, key: &[u8]) -> bool {
        self.entry(key).is_some()
    }

    /// The value of `key`, created with `create()` (and no TTL) if absent.
    pub fn get_or_insert_with(
        &mut self,
        key: &Bytes,
        create: impl FnOnce() -> Value,
    ) -> &mut Value {
        self.expire_if_due(key);
        let len = &mut self.len;
        let slot = &mut self.slots[usize::from(key_slot(key))];
        let entry = slot.map.entry(key.clone()).or_insert_with(|| {
            *len += 1;
            Entry {
                value: create(),
                expires_at: None,
            }
        });
        &mut entry.value
    }

    /// Stores `value` under `key` with no TTL (SET's semantics); returns the
    /// previous live value.
    pub fn insert(&mut self, key: Bytes, value: Value) -> Option<Value> {
        self.insert_entry(
            key,
            Entry {
                value,
                expires_at: None,
            },
        )
    }

    /// Stores `value` keeping the key's current TTL (SET ... KEEPTTL).
    pub fn insert_keep_ttl(&mut self, key: Bytes, value: Value) -> Option<Value> {
        let expires_at = self.entry(&key).and_then(|e| e.expires_at);
        self.insert_entry(key, Entry { value, expires_at })
    }

    /// Stores a whole entry (value and TTL); returns the previous live value.
    pub fn insert_entry(&mut self, key: Bytes, entry: Entry) -> Option<Value> {
        self.expire_if_due(&key);
        let volatile = entry.expires_at.is_some();
        let slot = self.slot_of(&key);
        let old = slot.map.insert(key, entry);
        let was_volatile = matches!(
            &old,
            Some(Entry {
                expires_at: Some(_),
                ..
            })
        );
        match (was_volatile, volatile) {
            (false, true) => {
                slot.volatile += 1;
                self.volatile += 1;
            }
            (true, false) => {
                slot.volatile -= 1;
                self.volatile -= 1;
            }
            _ => {}
        }
        if old.is_none() {
            self.len += 1;
        }
        old.map(|e| e.value)
    }

    /// Deletes `key`; returns its live value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        self.remove_entry(key).map(|e| e.value)
    }

    /// Deletes `key`; returns its live entry (value and TTL).
    pub fn remove_entry(&mut self, key: &[u8]) -> Option<Entry> {
        if self.expire_if_due(key) {
            return None;
        }
        let slot = self.slot_of(key);
        let old = slot.map.remove(key)?;
        if old.expires_at.is_some() {
            slot.volatile -= 1;
            self.volatile -= 1;
        }
        self.len -= 1;
        Some(old)
    }

    /// Deletes `key` if it holds an empty collection, as Redis does after a
    /// command takes the last element out.
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        let empty =
            matches!(self.slot_of(key).map.get(key), Some(e) if e.value.is_empty_collection());
        if empty {
            self.remove(key);
        }
    }

    /// The TTL of a live key as an absolute Unix ms time.
    pub fn expires_at(&mut self, key: &[u8]) -> Option<i64> {
        self.entry(key).and_then(|e| e.expires_at)
    }

    /// Sets (Some) or clears (None) the TTL of a live key; false if the key
    /// does not exist. A time in the past deletes the key, as Redis does.
    pub fn set_expiry(&mut self, key: &[u8], at: Option<i64>) -> bool {
        if !self.contains(key) {
            return false;
        }
        if let Some(t) = at {
            if self.is_due(t) {
                self.remove(key);
                return true;
            }
        }
        let slot = self.slot_of(key);
        let Some(entry) = slot.map.get_mut(key) else {
            return false;
        };
        let before = entry.expires_at.is_some();
        entry.expires_at = at;
        match (before, at.is_some()) {
            (false, true) => {
                slot.volatile += 1;
                self.volatile += 1;
            }
            (true, false) => {
                slot.volatile -= 1;
                self.volatile -= 1;
            }
            _ => {}
        }
        true
    }

    /// Number of keys in `slot`.
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.slots.get(usize::from(slot)).map_or(0, |s| s.map.len())
    }

    /// Up to `count` keys of `slot` (expired ones skipped).
    pub fn keys_in_slot(&self, slot: u16, count: usize) -> Vec<Bytes> {
        let now = self.now_ms;
        self.slots
            .get(usize::from(slot))
            .map(|s| {
                s.map
                    .iter()
                    .filter(|(_, e)| !matches!(e.expires_at, Some(t) if t <= now))
                    .take(count)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every live key of `slot` with its entry, for SCAN, KEYS and DUMP of
    /// a whole slot.
    pub fn iter_slot(&self, slot: u16) -> impl Iterator<Item = (&Bytes, &Entry)> + '_ {
        self.slots
            .get(usize::from(slot))
            .into_iter()
            .flat_map(|s| s.map.iter())
            .filter(move |(_, e)| !e.expires_at.is_some_and(|t| self.is_due(t)))
    }

    /// Deletes every key of `slot`; returns how many there were.
    pub fn clear_slot(&mut self, slot: u16) -> usize {
        let Some(s) = self.slots.get_mut(usize::from(slot)) else {
            return 0;
        };
        let n = s.map.len();
        self.volatile -= s.volatile;
        self.len -= n;
        s.map = Map::with_hasher(s.map.hasher().clone());
        s.volatile = 0;
        n
    }

    /// Deletes every key (FLUSHALL).
    pub fn clear(&mut self) {
        for slot in 0..SLOT_COUNT {
            self.clear_slot(slot as u16);
        }
    }

    /// One step of active expiry: examines at most `budget` keys, in the
    /// slots that have keys with a TTL, resuming where the last step
    /// stopped. Returns the keys it deleted (so that watchers and replicas
    /// can be told).
    pub fn expire_cycle(&mut self, budget: usize) -> Vec<Bytes> {
        let mut deleted = Vec::new();
        if self.volatile == 0 || !self.expiry_enabled {
            return deleted;
        }
        let now = self.now_ms;
        let mut examined = 0;
        let mut slots_seen = 0;
        while examined < budget && slots_seen < SLOT_COUNT {
            let index = self.expire_cursor;
            self.expire_cursor = (self.expire_cursor + 1) % SLOT_COUNT;
            slots_seen += 1;
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.volatile == 0 {
                continue;
            }
            examined += slot.map.len();
            let before = slot.map.len();
            slot.map.retain(|k, e| {
                let keep = !matches!(e.expires_at, Some(t) if t <= now);
                if !keep {
                    deleted.push(k.clone());
                }
                keep
            });
            let removed = before - slot.map.len();
            slot.volatile -= removed;
            self.volatile -= removed;
            self.len -= removed;
        }
        self.expired_keys += deleted.len() as u64;
        self.expired_log.extend(deleted.iter().cloned());
        deleted
    }
}

#[cfg(test)]
mod tests;
