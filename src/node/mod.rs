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
//! nodes); replication (the link to this node's master, if it is a
//! replica, and the upkeep of its own replicas' links); the append-only
//! file's writer (`aof`).

pub mod aof;
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
pub mod propagate;
pub mod pubsub;
pub mod replay;
pub mod replication;
pub mod server;
pub mod snapshot;
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
    #[error(transparent)]
    ClusterConfig(#[from] cluster::nodes_conf::ConfError),
    #[error(transparent)]
    Aof(#[from] aof::AofError),
}

/// Runs a node until `shutdown` is cancelled.
///
/// # Errors
/// [`NodeError`] when a port cannot be bound, the cluster config file is
/// locked by another node or cannot be read, or the append-only file
/// cannot be loaded.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> Result<(), NodeError> {
    let cluster = load_cluster_state(&config)?;
    let addr = format!("{}:{}", config.bind, config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| NodeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let bus_addr = format!("{}:{}", config.bind, config.cluster_port);
    let bus_listener = TcpListener::bind(&bus_addr)
        .await
        .map_err(|source| NodeError::Bind {
            addr: bus_addr,
            source,
        })?;
    tracing::info!(%addr, id = %cluster.myself, "node listening");
    let save_notify = cluster.save_notify();
    let conf_file = cluster.conf_file.clone();
    let (bus, bus_outbox) = bus::BusHandle::new();
    let shared = Arc::new(Shared::new(config, NodeState::new(cluster), bus, shutdown));
    // The data comes back before anyone is served: clients and peers that
    // connect meanwhile wait in the listen queues.
    let aof = aof::start(&shared).await?;
    tokio::spawn(expire_loop(Arc::clone(&shared)));
    replication::start(&shared);
    tokio::spawn(bus::run(Arc::clone(&shared), bus_listener, bus_outbox));
    let saver =
        conf_file.map(|file| tokio::spawn(save_loop(Arc::clone(&shared), file, save_notify)));
    server::accept_loop(listener, Arc::clone(&shared)).await;
    if let Some(saver) = saver {
        let _ = saver.await;
    }
    aof.finished().await;
    Ok(())
}

/// The cluster state from `nodes-<port>.conf` if there is one (same id,
/// epochs, nodes, slots and role as before), else a new node alone; the
/// file is locked for this node and written at once, as Redis does.
fn load_cluster_state(config: &NodeConfig) -> Result<cluster::ClusterState, NodeError> {
    use cluster::nodes_conf::{self, ConfError, ConfigFile, MyAddr};
    let path = config.cluster_config_path();
    let (file, text) = ConfigFile::open(&path)?;
    let me = MyAddr {
        ip: config.announced_ip().to_string(),
        port: config.port,
        cport: config.cluster_port,
    };
    let mut cluster = match text {
        Some(text) => {
            nodes_conf::load(&text, &me, config.require_full_coverage).map_err(|why| {
                ConfError::Corrupt {
                    path: path.clone(),
                    why,
                }
            })?
        }
        None => cluster::ClusterState::new(
            cluster::ClusterNode::new(cluster::random_node_id(), me.ip, me.port, me.cport),
            config.require_full_coverage,
        ),
    };
    cluster.node_timeout_ms = config.node_timeout_ms;
    cluster.replica_validity_factor = config.replica_validity_factor;
    cluster.allow_replica_migration = config.allow_replica_migration;
    cluster.migration_barrier = config.migration_barrier;
    cluster.set_replica_no_failover(config.replica_no_failover);
    cluster.hold_state_after_restart(db::unix_ms());
    cluster.announce_ip = match &config.announce_ip {
        Some(ip) => Some(ip.clone()),
        None if config.bind == "0.0.0.0" || config.bind == "::" => None,
        None => Some(config.bind.clone()),
    };
    cluster.update_state();
    let version = file.next_version();
    file.write(version, &nodes_conf::config_text(&cluster))
        .map_err(|source| ConfError::Io {
            path: path.clone(),
            source,
        })?;
    cluster.take_dirty();
    tracing::info!(path = %path.display(), id = %cluster.myself, "cluster configuration ready");
    cluster.conf_file = Some(file);
    Ok(cluster)
}

/// Rewrites `nodes-<port>.conf` whenever the cluster configuration
/// changes: rendered under the node lock, written (fsync, rename) outside
/// it. A last write happens at shutdown if one is pending.
async fn save_loop(
    shared: Arc<Shared>,
    file: Arc<cluster::nodes_conf::ConfigFile>,
    notify: Arc<tokio::sync::Notify>,
) {
    loop {
        let stopping = tokio::select! {
            () = notify.notified() => false,
            () = shared.shutdown.cancelled() => true,
        };
        let render = {
            let mut node = shared.lock();
            node.cluster.take_dirty().then(|| {
                (
                    file.next_version(),
                    cluster::nodes_conf::config_text(&node.cluster),
                )
            })
        };
        if let Some((version, text)) = render {
            let writer = Arc::clone(&file);
            let written = tokio::task::spawn_blocking(move || writer.write(version, &text)).await;
            if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
                tracing::error!(path = %file.path().display(), error = %e, "cannot save the cluster configuration");
                // Try again in a moment rather than lose the change.
                shared.lock().cluster.mark_dirty();
                if !stopping {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if stopping {
            return;
        }
    }
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
        // Nothing changes while a manual failover pauses writes: the offset
        // the replica must reach stays put (Redis pauses expiry too).
        let paused = node.cluster.client_writes_paused_until(db::unix_ms());
        if !node.active_expire || paused.is_some() {
            continue;
        }
        node.db.set_clock(db::unix_ms());
        for key in node.db.expire_cycle(EXPIRE_BUDGET) {
            node.events.touched(&key);
        }
        node.propagate_expired();
    }
}
