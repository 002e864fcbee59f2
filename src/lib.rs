//! Slotway: a cluster-aware Redis proxy, and the built-in cluster nodes it
//! ships with.
//!
//! # Architecture
//!
//! A request travels through one module per step:
//!
//! ```text
//! client socket -> proxy::session (reads every complete request)
//!   -> resp::RequestDecoder (zero copy: raw bytes + argument offsets)
//!   -> command (the one command table: arity, flags, key specs, handling)
//!   -> cluster::slot (CRC16/XMODEM of the key or its {hash tag})
//!   -> proxy::topology (ArcSwap snapshot: slot -> master)
//!   -> proxy::backend (multiplexed, pipelined link per node, FIFO replies)
//!   -> proxy::dispatch (redirects, retries, failover waits)
//!   -> session writes replies in request order, batched
//! ```
//!
//! # Modules
//! - [`resp`]: the wire protocol (requests in, replies out).
//! - [`command`]: the command table, the single source of routing facts.
//! - [`cluster`]: cluster vocabulary shared by proxy and nodes: slots,
//!   redirect errors, CLUSTER NODES parsing.
//! - [`proxy`]: the proxy role.
//! - [`embedded`]: the embedded default: built-in nodes as child
//!   processes, for a proxy with no seeds.
//! - [`config`]: layered, typed configuration.
//! - [`metrics`]: Prometheus metrics, registered on a registry passed in.
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).
//! - [`node`]: the built-in cluster node (`slotway node`).
//! - [`operator`]: the operator's tool, `slotway cluster create|check|reshard`.

pub mod admin;
pub mod cluster;
pub mod command;
pub mod config;
pub mod embedded;
pub mod metrics;
pub mod node;
pub mod operator;
pub mod proxy;
pub mod resp;
