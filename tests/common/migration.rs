//! Moving one slot between masters in steps a test can interleave with its
//! own traffic: `CLUSTER SETSLOT IMPORTING/MIGRATING`, `MIGRATE ... KEYS`,
//! then `CLUSTER SETSLOT NODE`, as `redis-cli --cluster reshard` does.

use std::time::Duration;

use super::redis::RedisCluster;
use super::wait::try_eventually;

/// How long every node may take to name the new owner after `SETSLOT NODE`.
const AGREE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// A slot on its way from one master to another; see
/// [`RedisCluster::begin_migration`].
#[derive(Debug)]
pub struct Migration {
    pub slot: u16,
    /// The port of the source master.
    pub from: u16,
    /// The port of the target master.
    pub to: u16,
    from_id: String,
    to_id: String,
}

impl RedisCluster {
    /// Starts moving `slot` from its owner to the master on `to`: `CLUSTER
    /// SETSLOT IMPORTING` on the target, then `MIGRATING` on the source (the
    /// order `redis-cli --cluster reshard` uses). From here the source
    /// answers `ASK` for keys it no longer holds.
    ///
    /// # Panics
    /// When the owner is unknown, is `to` already, or a node refuses.
    pub fn begin_migration(&self, slot: u16, to: u16) -> Migration {
        let from = self
            .master_for_slot(slot)
            .unwrap_or_else(|| panic!("nodes disagree on the owner of slot {slot}"));
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let migration = Migration {
            slot,
            from,
            to,
            from_id: self.node_id(from),
            to_id: self.node_id(to),
        };
        let s = slot.to_string();
        self.client(to)
            .cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &migration.from_id])
            .expect_ok();
        self.client(from)
            .cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &migration.to_id])
            .expect_ok();
        migration
    }

    /// Moves up to `count` keys of the migrating slot with `MIGRATE ...
    /// KEYS`; returns how many were moved (0 once the source holds none).
    ///
    /// # Panics
    /// When a node refuses.
    pub fn migrate_keys(&self, migration: &Migration, count: usize) -> usize {
        let mut source = self.client(migration.from);
        let keys = source.cmd(&[
            "CLUSTER",
            "GETKEYSINSLOT",
            &migration.slot.to_string(),
            &count.to_string(),
        ]);
        let keys: Vec<Vec<u8>> = keys
            .expect_array()
            .iter()
            .map(|k| k.as_bulk().expect("a key").to_vec())
            .collect();
        if keys.is_empty() {
            return 0;
        }
        let port = migration.to.to_string();
        let mut args: Vec<&[u8]> = vec![
            b"MIGRATE",
            b"127.0.0.1",
            port.as_bytes(),
            b"",
            b"0",
            b"5000",
            b"KEYS",
        ];
        args.extend(keys.iter().map(Vec::as_slice));
        let reply = source.cmd_bytes(&args);
        assert!(
            reply.is_ok() || reply.as_str() == Some("NOKEY"),
            "MIGRATE: {reply:?}"
        );
        keys.len()
    }

    /// Moves the keys still left on the source, then `CLUSTER SETSLOT <slot>
    /// NODE <target>` on the target, the source and every other master, and
    /// waits until every live node names the target as the owner. From here
    /// the source answers `MOVED`.
    ///
    /// # Panics
    /// When a node refuses, or the nodes do not agree within 10 s.
    pub fn finish_migration(&self, migration: Migration) {
        for _ in 0..10_000 {
            if self.migrate_keys(&migration, 1000) == 0 {
                break;
            }
        }
        let s = migration.slot.to_string();
        let mut order = vec![migration.to, migration.from];
        order.extend(
            self.masters()
                .into_iter()
                .filter(|p| *p != migration.to && *p != migration.from),
        );
        for port in order {
            self.client(port)
                .cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &migration.to_id])
                .expect_ok();
        }
        let agreed = try_eventually(AGREE_TIMEOUT, POLL, || {
            self.master_for_slot(migration.slot) == Some(migration.to)
        });
        if let Err(why) = agreed {
            panic!(
                "slot {} not on {} everywhere: {why}",
                migration.slot, migration.to
            );
        }
    }
}
