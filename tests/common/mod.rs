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

// Not every test binary uses every helper (nor every re-export), and helpers
// are not `#[test]` functions, so the test-only clippy relaxations do not
// reach them.
#![allow(dead_code, unused_imports)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod load;
mod ports;
mod process;
mod proxy;
mod redis;
mod wait;

pub use client::{DEFAULT_TIMEOUT, Reply, TestClient, encode_command};
pub use load::{LoadLoop, LoadReport};
pub use ports::{free_port, release_port};
pub use proxy::{Proxy, ProxyOptions};
pub use redis::{
    ClusterOptions, Migration, RedisBins, RedisCluster, RedisNode, hash_tag_for_slot, require_redis,
};
pub use wait::{Attempt, eventually, try_eventually};
