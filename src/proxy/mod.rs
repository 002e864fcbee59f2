//! The proxy role: accept plain Redis clients and serve them from a cluster.
//!
//! [`run`] binds the listeners and starts four kinds of tasks: the
//! refresher that keeps the slot map current and the learner that reads the
//! commands the table lacks from the cluster ([`refresh`]), one task per
//! backend link ([`backend`]), and one task per client ([`session`]).

pub mod backend;
pub mod blocking;
pub mod client_commands;
pub mod clients;
pub mod dedicated;
pub mod dispatch;
pub mod emulation;
pub mod fanout;
pub mod local;
pub mod multikey;
pub mod pause;
pub mod pubsub;
pub mod pubsub_introspect;
pub mod refresh;
pub mod router;
pub mod scan;
pub mod scripts;
pub mod session;
pub mod topology;
pub mod transaction;
pub mod wait;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::config::ProxyConfig;
use crate::metrics::Metrics;

use clients::{ClientHandle, Registry};
use local::ClientState;
use pause::ClientPause;
use refresh::ClusterView;
use scripts::ScriptCache;
use workers::Workers;

/// The Redis version the proxy reports in INFO and HELLO: the command set it
/// routes is Redis 7.0's.
pub const REDIS_VERSION: &str = "7.0.0";

/// Counters INFO reports.
#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub port: u16,
    pub connected_clients: AtomicU64,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
}

/// A connected client's place: its entry in the registry (CLIENT LIST),
/// its count against `limits.max_clients`, and the connections gauge. The
/// session gives it up before it closes the client's socket, so a client
/// that sees the close and connects again finds the place free, as with
/// Redis (which frees a client and closes its socket in one step).
pub struct Seat {
    registration: clients::Registration,
    _gauge: crate::metrics::ClientGuard,
    proxy: Arc<Proxy>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.proxy
            .stats
            .connected_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything a session needs, shared by all of them.
pub struct Proxy {
    pub config: Arc<ProxyConfig>,
    pub cluster: Arc<ClusterView>,
    pub metrics: Arc<Metrics>,
    pub stats: Stats,
    pub workers: Arc<Workers>,
    /// Script bodies SCRIPT LOAD passed, to heal a NOSCRIPT.
    pub scripts: ScriptCache,
    /// Every connected client (CLIENT LIST, CLIENT KILL).
    pub clients: Arc<Registry>,
    /// CLIENT PAUSE: this proxy's clients only.
    pub pause: ClientPause,
    next_client_id: AtomicU64,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "no seed nodes configured: give --seeds HOST:PORT[,HOST:PORT...] \
         (the embedded cluster of built-in nodes is not available yet)"
    )]
    NoSeeds,
    #[error("cannot start worker threads: {0}")]
    Workers(std::io::Error),
}

/// Runs the proxy until `shutdown` completes. `ready` turns true once the
/// slot map covers every slot (`/readyz`).
///
/// # Errors
/// [`RunError`] when no seed is configured or a listener cannot be bound.
pub async fn run(
    config: Arc<ProxyConfig>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    if config.cluster.seeds.is_empty() {
        return Err(RunError::NoSeeds);
    }
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "proxy listening");
    }
    let workers = Workers::start(worker_count(&config)).map_err(RunError::Workers)?;
    let proxy = start(config, metrics, ready, &listener, workers.clone());
    tracing::info!(
        listen = %proxy.config.listen,
        seeds = ?proxy.config.cluster.seeds,
        workers = workers.len(),
        "slotway proxy started"
    );
    serve(listener, proxy, shutdown).await;
    workers.stop();
    Ok(())
}

fn worker_count(config: &ProxyConfig) -> usize {
    match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Builds the shared state and starts the refresher.
pub fn start(
    config: Arc<ProxyConfig>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    listener: &TcpListener,
    workers: Arc<Workers>,
) -> Arc<Proxy> {
    let cluster = ClusterView::new(config.clone(), metrics.clone(), ready, workers.clone());
    tokio::spawn(cluster.clone().run_refresher());
    tokio::spawn(cluster.clone().run_learner());
    Arc::new(Proxy {
        stats: Stats {
            started: Instant::now(),
            port: listener.local_addr().map(|a| a.port()).unwrap_or(0),
            connected_clients: AtomicU64::new(0),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
        },
        config,
        cluster,
        metrics,
        workers,
        scripts: ScriptCache::default(),
        clients: Arc::default(),
        pause: ClientPause::default(),
        next_client_id: AtomicU64::new(1),
    })
}

/// Accepts clients until `shutdown` completes.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let stats = &proxy.stats;
        stats.connections_received.fetch_add(1, Ordering::Relaxed);
        if stats.connected_clients.load(Ordering::Relaxed) as usize
            >= proxy.config.limits.max_clients
        {
            stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        }
        let local_addr = match stream.local_addr() {
            Ok(local) => local,
            Err(err) => {
                tracing::warn!(%err, "cannot read a client connection's local address");
                continue;
            }
        };
        let registration = proxy.clients.register(ClientHandle::new(
            proxy.next_client_id.fetch_add(1, Ordering::Relaxed),
            addr,
            local_addr,
            i64::from(std::os::fd::AsRawFd::as_raw_fd(&stream)),
        ));
        // The session moves to a worker thread: deregister the socket here,
        // register it with the worker's runtime there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, "cannot hand a client over to a worker");
                continue;
            }
        };
        stats.connected_clients.fetch_add(1, Ordering::Relaxed);
        let seat = Seat {
            registration,
            _gauge: proxy.metrics.client_connected(),
            proxy: proxy.clone(),
        };
        let session_proxy = proxy.clone();
        proxy.workers.spawn_next(async move {
            let proxy = session_proxy;
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => {
                    let handle = seat.registration.handle.clone();
                    let client = ClientState::new(handle.clone());
                    // CLIENT KILL: the session is dropped wherever it is,
                    // which closes the client and its backend connections.
                    tokio::select! {
                        () = session::serve(proxy.clone(), stream, client, seat) => {}
                        () = handle.killed() => {}
                    }
                }
                Err(err) => tracing::warn!(%err, "cannot register a client with its worker"),
            }
        });
    }
}
