//! Who must hear that a key was written: clients that WATCH it (their EXEC
//! fails) and clients blocked on it (BLPOP and friends run again).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

use super::db::Map;

#[derive(Debug, Default)]
pub struct KeyEvents {
    watchers: Map<Bytes, Vec<Arc<AtomicBool>>>,
    blocked: Map<Bytes, Vec<Arc<Notify>>>,
}

impl KeyEvents {
    /// `flag` is set when `key` is next written.
    pub fn watch(&mut self, key: Bytes, flag: &Arc<AtomicBool>) {
        let list = self.watchers.entry(key).or_default();
        if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
            list.push(Arc::clone(flag));
        }
    }

    /// Forgets `flag` for `key` (UNWATCH, EXEC, disconnect).
    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        if let Some(list) = self.watchers.get_mut(key) {
            list.retain(|f| !Arc::ptr_eq(f, flag));
            if list.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// `wake` is notified when `key` is next written.
    pub fn block_on(&mut self, key: Bytes, wake: &Arc<Notify>) {
        let list = self.blocked.entry(key).or_default();
        if !list.iter().any(|w| Arc::ptr_eq(w, wake)) {
            list.push(Arc::clone(wake));
        }
    }

    /// Forgets `wake` for `key` (the client was served, timed out or left).
    pub fn unblock(&mut self, key: &[u8], wake: &Arc<Notify>) {
        if let Some(list) = self.blocked.get_mut(key) {
            list.retain(|w| !Arc::ptr_eq(w, wake));
            if list.is_empty() {
                self.blocked.remove(key);
            }
        }
    }

    /// `key` was written (or deleted, or expired).
    pub fn touched(&mut self, key: &[u8]) {
        if let Some(list) = self.watchers.get(key) {
            for flag in list {
                flag.store(true, Ordering::Release);
            }
        }
        if let Some(list) = self.blocked.get(key) {
            // Blocked clients retry in the order they blocked; each one
            // re-checks the key under the lock, so waking all is safe.
            for wake in list {
                wake.notify_one();
            }
        }
    }

    /// Every key changed (FLUSHALL, FLUSHDB, a slot emptied).
    pub fn touched_all(&mut self) {
        for list in self.watchers.values() {
            for flag in list {
                flag.store(true, Ordering::Release);
            }
        }
    }
}
