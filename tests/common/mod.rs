//! The harness every integration test shares: free loopback ports, bounded
//! waits, real `redis-server` clusters, the proxy binary, and a small
//! synchronous RESP client.
//!
//! Everything here is bounded in time: no helper can hang a test. Every
//! process a helper starts is stopped when its owner is dropped, also when
//! the test panics.
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! #[test]
//! fn example() {
//!     let Some(_) = require_redis() else { return };
//!     let cluster = RedisCluster::start(3, 1);
//!     let proxy = Proxy::start(&cluster.seeds_arg());
//!     assert!(proxy.client().cmd(&["SET", "k", "v"]).is_ok());
//! }
//! ```

// Not every test binary uses every helper, and helpers are not `#[test]`
// functions, so the test-only clippy relaxations do not reach them.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bins;
mod builtin;
mod client;
mod clients;
mod cluster;
mod digest;
mod load;
mod migration;
mod ports;
pub mod process;
mod proxy;
mod redis;
mod wait;

// The re-exports are the harness API; each test binary uses part of it.
#[allow(unused_imports)]
pub use bins::{RedisBins, require_redis};
#[allow(unused_imports)]
pub use builtin::{NodePair, PlainRedis, ServerProcess, StandaloneNode, slotway_bin};
#[allow(unused_imports)]
pub use client::{DEFAULT_TIMEOUT, Reply, TestClient, encode_command};
#[allow(unused_imports)]
pub use clients::{clients_dir, require_ioredis, require_redis_py, run_client_script};
#[allow(unused_imports)]
pub use cluster::{
    BuiltinCluster, BuiltinNode, LonePair, NODE_TIMEOUT_MS, info_field, slot_ranges,
};
#[allow(unused_imports)]
pub use digest::{assert_same_keyspace, digest_diff, keyspace_digest};
#[allow(unused_imports)]
pub use load::{LoadLoop, LoadReport};
#[allow(unused_imports)]
pub use migration::Migration;
#[allow(unused_imports)]
pub use ports::{free_port, free_port_block, release_port};
#[allow(unused_imports)]
pub use proxy::{Proxy, ProxyOptions, cluster_with_proxy};
#[allow(unused_imports)]
pub use redis::{Backend, ClusterOptions, RedisCluster, RedisNode, hash_tag_for_slot};
#[allow(unused_imports)]
pub use wait::{Attempt, eventually, try_eventually};

/// For each `fn name(backend: Backend)` listed, a module `name` with one
/// test per backend, `name::redis_server` and `name::builtin_node`: the same
/// body proves the behaviour against Debian's redis-server and against
/// Slotway's own nodes.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn redis_server() {
                    super::$name($crate::common::Backend::Redis)
                }

                #[test]
                fn builtin_node() {
                    super::$name($crate::common::Backend::Builtin)
                }
            }
        )+
    };
}
