//! The proxy's view of the cluster: the published topology snapshot, the
//! node handles, and the task that keeps the snapshot current.
//!
//! Refreshes happen periodically, and on demand when a request meets a
//! `MOVED` or a dead link. On-demand requests are coalesced (any number of
//! them while one is pending cause one refresh) and rate limited. While a
//! node is failing the refresher polls fast, so held requests move to a
//! promoted replica soon after the cluster elects it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use tokio::sync::{Notify, watch};

use crate::cluster::nodes::{self, normalize_addr};
use crate::command::Learned;
use crate::command::learned::{parse_command_info, unknown_names};
use crate::config::ProxyConfig;
use crate::metrics::Metrics;
use crate::resp::Frame;

use super::backend::{LinkSettings, Node};
use super::topology::{Topology, merge};
use super::workers::Workers;

/// Why a refresh was asked for (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshReason {
    Moved,
    NodeDown,
    /// A fan-out (the end of a SCAN) wants the map as it is now.
    Verify,
}

impl RefreshReason {
    fn label(self) -> &'static str {
        match self {
            RefreshReason::Moved => "moved",
            RefreshReason::NodeDown => "node_down",
            RefreshReason::Verify => "verify",
        }
    }
}

const CLUSTER_NODES: &[u8] = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n";
/// Most nodes asked in one refresh; enough to outvote a stale answer.
const MAX_NODES_ASKED: usize = 16;

/// The cluster as the proxy sees it.
pub struct ClusterView {
    topology: ArcSwap<Topology>,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    seeds: Vec<String>,
    link_settings: LinkSettings,
    links_per_node: usize,
    workers: Arc<Workers>,
    wake: Notify,
    pending_reason: Mutex<Option<RefreshReason>>,
    /// Poll fast until then: a node is failing.
    failing_until: Mutex<Option<Instant>>,
    version_tx: watch::Sender<u64>,
    /// Refreshes started so far; the one in progress has this number.
    refreshes_started: AtomicU64,
    /// The number of the last refresh that finished.
    refreshed_tx: watch::Sender<u64>,
    /// Commands the table lacks, learned from the cluster's `COMMAND INFO`.
    learned: ArcSwap<Learned>,
    ready: Arc<AtomicBool>,
    config: Arc<ProxyConfig>,
    metrics: Arc<Metrics>,
}

impl ClusterView {
    pub fn new(
        config: Arc<ProxyConfig>,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
        workers: Arc<Workers>,
    ) -> Arc<ClusterView> {
        let (version_tx, _) = watch::channel(0);
        let (refreshed_tx, _) = watch::channel(0);
        Arc::new(ClusterView {
            topology: ArcSwap::from_pointee(Topology::empty()),
            nodes: Mutex::new(HashMap::new()),
            seeds: config
                .cluster
                .seeds
                .iter()
                .map(|s| normalize_addr(s))
                .collect(),
            link_settings: LinkSettings {
                connect_timeout: Duration::from_millis(config.backend.connect_timeout_ms),
                backoff_max: Duration::from_millis(config.backend.reconnect_backoff_max_ms),
                request_timeout: Duration::from_millis(config.backend.request_timeout_ms),
                max_dedicated: config.backend.max_dedicated_connections_per_node,
            },
            links_per_node: config.backend.connections_per_node,
            workers,
            wake: Notify::new(),
            pending_reason: Mutex::new(None),
            failing_until: Mutex::new(None),
            version_tx,
            refreshes_started: AtomicU64::new(0),
            refreshed_tx,
            learned: ArcSwap::from_pointee(Learned::default()),
            ready,
            config,
            metrics,
        })
    }

    /// The current snapshot. Cheap and lock-free.
    #[inline]
    pub fn snapshot(&self) -> Guard<Arc<Topology>> {
        self.topology.load()
    }

    /// A receiver that wakes whenever a new snapshot is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// The handle for the node at `addr`, created on first use.
    pub fn node(&self, addr: &str) -> Arc<Node> {
        let addr = normalize_addr(addr);
        lock(&self.nodes)
            .entry(addr.clone())
            .or_insert_with(|| {
                Node::new(
                    &addr,
                    self.links_per_node,
                    &self.link_settings,
                    &self.metrics.node(&addr),
                    &self.workers,
                )
            })
            .clone()
    }

    /// The commands learned from the cluster so far.
    pub fn learned(&self) -> Arc<Learned> {
        self.learned.load_full()
    }

    /// Refreshes the map now (coalesced with other requests) and waits, up
    /// to `timeout`, for a refresh that started after this call to finish.
    /// True if one did: the snapshot then reflects the cluster as of this
    /// call or later.
    pub async fn refresh_now(&self, timeout: Duration) -> bool {
        let wanted = self.refreshes_started.load(Ordering::Acquire) + 1;
        let mut finished = self.refreshed_tx.subscribe();
        self.request_refresh(RefreshReason::Verify);
        matches!(
            tokio::time::timeout(timeout, finished.wait_for(|&n| n >= wanted)).await,
            Ok(Ok(_))
        )
    }

    /// Asks for a refresh soon. Calls are coalesced.
    pub fn request_refresh(&self, reason: RefreshReason) {
        if reason == RefreshReason::NodeDown {
            let deadline =
                Instant::now() + Duration::from_millis(self.config.retry.failover_deadline_ms);
            *lock(&self.failing_until) = Some(deadline);
        }
        *lock(&self.pending_reason) = Some(reason);
        self.wake.notify_one();
    }

    /// Applies a `MOVED` at once: `slot` now lives at `addr`.
    pub fn apply_moved(&self, slot: u16, addr: &str) {
        let node = self.node(addr);
        let current = self.topology.load();
        if current
            .master(slot)
            .is_some_and(|n| n.addr() == node.addr())
        {
            return;
        }
        self.topology.rcu(|topo| {
            if topo.master(slot).is_some_and(|n| n.addr() == node.addr()) {
                topo.clone()
            } else {
                Arc::new(topo.with_moved_slot(slot, node.clone()))
            }
        });
        self.publish_version();
        self.request_refresh(RefreshReason::Moved);
    }

    fn publish_version(&self) {
        let topo = self.topology.load();
        self.metrics.topology_epoch.set(topo.version as i64);
        self.ready.store(topo.is_complete(), Ordering::Release);
        self.version_tx.send_replace(topo.version);
    }

    /// The refresher task: runs until the process ends.
    pub async fn run_refresher(self: Arc<Self>) {
        let periodic = Duration::from_millis(self.config.cluster.refresh_interval_ms);
        let fast = Duration::from_millis(self.config.cluster.failing_poll_interval_ms);
        let min_gap = Duration::from_millis(self.config.cluster.min_refresh_interval_ms);
        let mut last: Option<Instant> = None;
        let mut reason = "startup";
        loop {
            if let Some(last) = last {
                let gap = last.elapsed();
                if gap < min_gap {
                    tokio::time::sleep(min_gap - gap).await;
                }
            }
            let number = self.refreshes_started.fetch_add(1, Ordering::AcqRel) + 1;
            let ok = self.refresh_once().await;
            last = Some(Instant::now());
            self.refreshed_tx.send_replace(number);
            self.metrics.record_topology_refresh(reason, ok);
            let complete = self.snapshot().is_complete();
            let failing = {
                let mut until = lock(&self.failing_until);
                if until.is_some_and(|t| t <= Instant::now()) {
                    *until = None;
                }
                until.is_some()
            };
            let wait = if !complete || failing || !ok {
                fast
            } else {
                periodic
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => reason = if complete { "periodic" } else { "incomplete" },
                _ = self.wake.notified() => {
                    reason = lock(&self.pending_reason).take().map_or("requested", RefreshReason::label);
                }
            }
        }
    }

    /// Asks several nodes for CLUSTER NODES and publishes the merged map if
    /// it changed. Returns false when no node answered.
    async fn refresh_once(&self) -> bool {
        let current = self.snapshot();
        let mut addrs: Vec<String> = current.claims().known_addrs.clone();
        // Ask live nodes first; the seeds help when nothing is known yet.
        addrs.sort_by_key(|a| current.claims().failed_addrs.contains(a));
        for seed in &self.seeds {
            if !addrs.contains(seed) {
                addrs.push(seed.clone());
            }
        }
        addrs.truncate(MAX_NODES_ASKED.max(self.seeds.len()));
        let timeout = self.link_settings.connect_timeout;
        let queries = addrs.iter().map(|addr| {
            let node = self.node(addr);
            async move {
                let rx = node.send(Bytes::from_static(CLUSTER_NODES), false);
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(Ok(reply))) => parse_nodes_reply(&reply, node.addr()),
                    _ => None,
                }
            }
        });
        let answers: Vec<_> = futures_util::future::join_all(queries)
            .await
            .into_iter()
            .flatten()
            .collect();
        if answers.is_empty() {
            return false;
        }
        let previous = current.claims();
        let merged = merge(&answers, Some(previous));
        if &merged != previous {
            let version = current.version + 1;
            let topo = Topology::build(version, merged, |addr| self.node(addr));
            tracing::info!(
                version,
                masters = topo.masters().len(),
                complete = topo.is_complete(),
                "topology updated"
            );
            self.topology.store(Arc::new(topo));
            self.forget_unknown_nodes();
        }
        drop(current);
        self.publish_version();
        true
    }

    /// The learner task: learns the commands the table lacks at startup,
    /// whenever the map changes (new nodes may run a newer server), and once
    /// per refresh period (a module loaded at run time). A task of its own,
    /// so a slow answer never delays a refresh.
    pub async fn run_learner(self: Arc<Self>) {
        let periodic = Duration::from_millis(self.config.cluster.refresh_interval_ms);
        // Refreshes publish every 50 ms while a master fails; learning
        // never runs that often.
        let pace = Duration::from_millis(self.config.cluster.min_refresh_interval_ms)
            .max(Duration::from_millis(100));
        let mut versions = self.subscribe();
        let mut learned: Option<(Instant, u64)> = None;
        loop {
            let version = self.snapshot().version;
            let due = learned.is_none_or(|(at, seen)| seen != version || at.elapsed() >= periodic);
            if due && self.learn_commands().await {
                learned = Some((Instant::now(), version));
            }
            let _ = tokio::time::timeout(periodic, versions.changed()).await;
            tokio::time::sleep(pace).await;
        }
    }

    /// Learns the commands a master lists (`COMMAND LIST`) that neither the
    /// table nor an earlier pass knows, from its `COMMAND INFO`. False when
    /// no master answered.
    async fn learn_commands(&self) -> bool {
        let node = {
            let topo = self.snapshot();
            let masters = topo.masters();
            match masters.iter().find(|n| n.is_ready()).or(masters.first()) {
                Some(node) => node.clone(),
                None => return false,
            }
        };
        let Some(list) = self.ask(&node, &["COMMAND", "LIST"]).await else {
            return false;
        };
        let unknown = unknown_names(&list, &self.learned());
        if unknown.is_empty() {
            return true;
        }
        let mut args = vec!["COMMAND", "INFO"];
        args.extend(unknown.iter().map(String::as_str));
        let Some(info) = self.ask(&node, &args).await else {
            return false;
        };
        let specs = parse_command_info(&info);
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        self.learned
            .rcu(|current| Arc::new(current.with(specs.clone())));
        tracing::info!(
            commands = ?names,
            from = node.addr(),
            "learned commands missing from the command table"
        );
        true
    }

    /// Sends one command to `node` and parses the reply; `None` on an error
    /// reply, a failure or a timeout.
    async fn ask(&self, node: &Node, args: &[&str]) -> Option<Frame> {
        let request = crate::resp::Request::from_args(args).raw().clone();
        let rx = node.send(request, false);
        let reply = match tokio::time::timeout(self.link_settings.request_timeout, rx).await {
            Ok(Ok(Ok(reply))) => reply,
            _ => return None,
        };
        match Frame::parse(&reply) {
            Ok(Some((Frame::Error(_), _))) | Ok(None) | Err(_) => None,
            Ok(Some((frame, _))) => Some(frame),
        }
    }

    /// Drops handles of nodes the cluster no longer mentions (their links
    /// close once no request holds them).
    fn forget_unknown_nodes(&self) {
        let topo = self.snapshot();
        let known = &topo.claims().known_addrs;
        lock(&self.nodes).retain(|addr, _| {
            let keep = known.contains(addr) || self.seeds.contains(addr);
            if !keep {
                self.metrics.forget_node(addr);
            }
            keep
        });
    }
}

/// Parses a CLUSTER NODES reply. `myself` lines without an address (a node
/// that does not know its own IP) take the address we reached it at.
fn parse_nodes_reply(reply: &Bytes, reached_at: &str) -> Option<Vec<nodes::NodeLine>> {
    let (frame, _) = Frame::parse(reply).ok()??;
    let text = frame.as_bytes()?;
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = nodes::parse(text);
    for line in &mut lines {
        if line.myself && line.addr.starts_with(':') {
            line.addr = reached_at.to_string();
            line.unusable = false;
        }
    }
    Some(lines)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
