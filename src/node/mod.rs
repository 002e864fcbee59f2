//! The built-in cluster node (`slotway node`): a Redis Cluster node in the
//! same process model as `redis-server --cluster-enabled yes`, so the
//! embedded default, demos and tests need no Redis installed.
//!
//! ```text
//! server (accept, read pipelines, write replies)
//!   -> cmd::execute (table lookup, cluster check, MULTI queueing)
//!   -> cmd::<type> handlers over state::NodeState (one lock, as Redis's
//!      one thread): db (keyspace by slot), cluster (slots, epochs, nodes),
//!      events (WATCH, blocked clients)
//! ```
//!
//! Background tasks: active expiry; the cluster bus (gossip with the other
//! nodes).

pub mod bus;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod db;
pub mod dump;
pub mod events;
pub mod float;
pub mod glob;
pub mod pubsub;
pub mod server;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::NodeConfig;
use state::{NodeState, Shared};

/// How often active expiry runs, and how many keys one run may examine
/// (Redis: 10 times a second, bounded effort).
const EXPIRE_PERIOD: Duration = Duration::from_millis(100);
const EXPIRE_BUDGET: usize = 2000;

/// Errors that stop a node from starting.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Runs a node until `shutdown` is cancelled.
///
/// # Errors
/// [`NodeError`] when the client port cannot be bound.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> Result<(), NodeError> {
    let addr = format!("{}:{}", config.bind, config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| NodeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let myself = cluster::ClusterNode {
        id: cluster::random_node_id(),
        ip: config.announced_ip().to_string(),
        port: config.port,
        cport: config.cluster_port,
        master: None,
        config_epoch: 0,
        ping_sent_ms: 0,
        pong_received_ms: 0,
        connected: true,
        pfail: false,
        fail: false,
        handshake: false,
    };
    let cluster = cluster::ClusterState::new(myself, config.require_full_coverage);
    tracing::info!(%addr, id = %cluster.myself, "node listening");
    // The bus task (gossip) takes the receiving side once it runs.
    let (bus, _bus_outbox) = bus::BusHandle::new();
    let shared = Arc::new(Shared::new(config, NodeState::new(cluster), bus, shutdown));
    tokio::spawn(expire_loop(Arc::clone(&shared)));
    server::accept_loop(listener, shared).await;
    Ok(())
}

/// Active expiry: deletes keys whose TTL passed even if nobody reads them.
async fn expire_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(EXPIRE_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let mut node = shared.lock();
        if !node.active_expire {
            continue;
        }
        node.db.set_clock(db::unix_ms());
        for key in node.db.expire_cycle(EXPIRE_BUDGET) {
            node.events.touched(&key);
        }
    }
}
