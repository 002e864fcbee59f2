//! Prometheus metrics of the proxy, registered on a `Registry` passed in
//! (no globals), all named `slotway_*`.
//!
//! Label sets are bounded by construction: command names come from the
//! command table (anything else is `other`), redirect and backend error kinds
//! are enums, node addresses are bounded by the cluster's size (and dropped
//! with [`Metrics::forget_node`]), and keys are never labels.
//!
//! The hot path ([`Metrics::record_command`]) takes no lock and does no
//! label hashing: each table entry's counters are resolved once, on first
//! use, and found again through an immutable map keyed by the name's
//! address.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::command::{COMMANDS, CommandSpec};

/// Prefix of every metric name.
pub const NAMESPACE: &str = "slotway";

/// The `command` label of commands that are not in the command table.
pub const OTHER_COMMAND: &str = "other";

/// Buckets of `slotway_command_duration_seconds`: 10µs to 10s, about 2.5x
/// apart (1-2.5-5 per decade).
pub const COMMAND_DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a request went somewhere other than where the map said, or waited:
/// the `kind` label of `slotway_redirects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Moved,
    Ask,
    TryAgain,
    ClusterDown,
    Loading,
}

impl RedirectKind {
    pub const ALL: [RedirectKind; 5] = [
        RedirectKind::Moved,
        RedirectKind::Ask,
        RedirectKind::TryAgain,
        RedirectKind::ClusterDown,
        RedirectKind::Loading,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RedirectKind::Moved => "moved",
            RedirectKind::Ask => "ask",
            RedirectKind::TryAgain => "tryagain",
            RedirectKind::ClusterDown => "clusterdown",
            RedirectKind::Loading => "loading",
        }
    }
}

/// How a backend request or connection failed: the `kind` label of
/// `slotway_backend_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    Connect,
    Timeout,
    Closed,
    Protocol,
}

impl BackendErrorKind {
    pub const ALL: [BackendErrorKind; 4] = [
        BackendErrorKind::Connect,
        BackendErrorKind::Timeout,
        BackendErrorKind::Closed,
        BackendErrorKind::Protocol,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BackendErrorKind::Connect => "connect",
            BackendErrorKind::Timeout => "timeout",
            BackendErrorKind::Closed => "closed",
            BackendErrorKind::Protocol => "protocol",
        }
    }
}

/// Every metric of the proxy. Cheap to share (`Arc<Metrics>`); all methods
/// take `&self`.
#[derive(Debug)]
pub struct Metrics {
    /// Clients connected now. Prefer [`Metrics::client_connected`], which
    /// keeps it and `client_connections_total` in step.
    pub client_connections: IntGauge,
    /// Clients accepted since start.
    pub client_connections_total: IntCounter,
    /// Time from a command's arrival to its reply being ready.
    pub command_duration_seconds: Histogram,
    /// Epoch of the topology snapshot in use.
    pub topology_epoch: IntGauge,
    /// Writes whose outcome was reported unknown to a client (the reply was
    /// lost after the request was sent).
    pub unknown_outcome_total: IntCounter,
    /// Clients disconnected for malformed RESP or exceeded limits.
    pub protocol_errors_total: IntCounter,

    commands_total: IntCounterVec,
    commands: CommandCounters,
    redirects: [IntCounter; RedirectKind::ALL.len()],
    backend_requests_total: IntCounterVec,
    backend_errors_total: IntCounterVec,
    backend_connections: IntGaugeVec,
    topology_refreshes_total: IntCounterVec,
}

impl Metrics {
    /// Creates every metric and registers it on `registry`.
    ///
    /// # Errors
    /// A [`prometheus::Error`] if a name is already registered there (for
    /// example a second `Metrics` on the same registry).
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let client_connections = IntGauge::with_opts(opts(
            "client_connections",
            "Clients connected to the proxy now.",
        ))?;
        let client_connections_total = IntCounter::with_opts(opts(
            "client_connections_total",
            "Client connections accepted since start.",
        ))?;
        let commands_total = IntCounterVec::new(
            opts(
                "commands_total",
                "Commands answered, by command and outcome (ok, or error when the reply was an error).",
            ),
            &["command", "outcome"],
        )?;
        let command_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "command_duration_seconds",
                "Time from a command's arrival to its reply being ready.",
            )
            .namespace(NAMESPACE)
            .buckets(COMMAND_DURATION_BUCKETS.to_vec()),
        )?;
        let redirects_total = IntCounterVec::new(
            opts(
                "redirects_total",
                "Redirect and retry replies from nodes that the proxy handled, by kind.",
            ),
            &["kind"],
        )?;
        let backend_requests_total = IntCounterVec::new(
            opts("backend_requests_total", "Requests sent to each node."),
            &["node"],
        )?;
        let backend_errors_total = IntCounterVec::new(
            opts(
                "backend_errors_total",
                "Failed requests or connections to each node, by kind.",
            ),
            &["node", "kind"],
        )?;
        let backend_connections = IntGaugeVec::new(
            opts("backend_connections", "Open connections to each node."),
            &["node"],
        )?;
        let topology_refreshes_total = IntCounterVec::new(
            opts(
                "topology_refreshes_total",
                "Slot map refreshes, by reason and outcome (ok or error).",
            ),
            &["reason", "outcome"],
        )?;
        let topology_epoch = IntGauge::with_opts(opts(
            "topology_epoch",
            "Epoch of the topology snapshot in use.",
        ))?;
        let unknown_outcome_total = IntCounter::with_opts(opts(
            "unknown_outcome_total",
            "Writes whose outcome was reported unknown to a client.",
        ))?;
        let protocol_errors_total = IntCounter::with_opts(opts(
            "protocol_errors_total",
            "Clients disconnected for malformed requests or exceeded limits.",
        ))?;

        registry.register(Box::new(client_connections.clone()))?;
        registry.register(Box::new(client_connections_total.clone()))?;
        registry.register(Box::new(commands_total.clone()))?;
        registry.register(Box::new(command_duration_seconds.clone()))?;
        registry.register(Box::new(redirects_total.clone()))?;
        registry.register(Box::new(backend_requests_total.clone()))?;
        registry.register(Box::new(backend_errors_total.clone()))?;
        registry.register(Box::new(backend_connections.clone()))?;
        registry.register(Box::new(topology_refreshes_total.clone()))?;
        registry.register(Box::new(topology_epoch.clone()))?;
        registry.register(Box::new(unknown_outcome_total.clone()))?;
        registry.register(Box::new(protocol_errors_total.clone()))?;

        let redirects = RedirectKind::ALL.map(|k| redirects_total.with_label_values(&[k.label()]));

        Ok(Metrics {
            client_connections,
            client_connections_total,
            command_duration_seconds,
            topology_epoch,
            unknown_outcome_total,
            protocol_errors_total,
            commands_total,
            commands: CommandCounters::new(COMMANDS),
            redirects,
            backend_requests_total,
            backend_errors_total,
            backend_connections,
            topology_refreshes_total,
        })
    }

    /// Counts one answered command and its latency. `name` is the command
    /// table's name (`CommandSpec::name`, e.g. `get` or `config|get`); any
    /// name not in the table is counted as `other`. `ok` is false when the
    /// reply sent to the client was an error.
    pub fn record_command(&self, name: &'static str, ok: bool, elapsed: Duration) {
        let counters = self.commands.get(name, &self.commands_total);
        if ok {
            counters.ok.inc();
        } else {
            counters.error.inc();
        }
        self.command_duration_seconds.observe(elapsed.as_secs_f64());
    }

    /// Commands answered so far, over every command name (INFO's
    /// `total_commands_processed`).
    pub fn total_commands(&self) -> u64 {
        let count = |c: &OutcomeCounters| c.ok.get() + c.error.get();
        let listed: u64 = self
            .commands
            .entries
            .iter()
            .filter_map(|(_, slot)| slot.get())
            .map(count)
            .sum();
        listed + self.commands.other.get().map_or(0, count)
    }

    /// Counts a client connection; the returned guard keeps it in
    /// `client_connections` until dropped.
    pub fn client_connected(&self) -> ClientGuard {
        self.client_connections_total.inc();
        self.client_connections.inc();
        ClientGuard {
            gauge: self.client_connections.clone(),
        }
    }

    pub fn record_redirect(&self, kind: RedirectKind) {
        // ALL lists each variant once, in declaration order.
        if let Some(counter) = self.redirects.get(kind as usize) {
            counter.inc();
        }
    }

    /// The counters of one node (`host:port`), resolved once so a backend
    /// link can keep them and update them without label lookups.
    pub fn node(&self, node: &str) -> NodeMetrics {
        NodeMetrics {
            requests_total: self.backend_requests_total.with_label_values(&[node]),
            connections: self.backend_connections.with_label_values(&[node]),
            errors: BackendErrorKind::ALL.map(|k| {
                self.backend_errors_total
                    .with_label_values(&[node, k.label()])
            }),
        }
    }

    /// Removes every series of `node`, for a node that left the cluster, so
    /// the `node` label stays bounded by the current cluster.
    pub fn forget_node(&self, node: &str) {
        // Err only means the series did not exist.
        let _ = self.backend_requests_total.remove_label_values(&[node]);
        let _ = self.backend_connections.remove_label_values(&[node]);
        for kind in BackendErrorKind::ALL {
            let _ = self
                .backend_errors_total
                .remove_label_values(&[node, kind.label()]);
        }
    }

    /// Counts a slot map refresh. `reason` is a fixed name from the refresher
    /// (`periodic`, `moved`, `failing`, ...).
    pub fn record_topology_refresh(&self, reason: &'static str, ok: bool) {
        self.topology_refreshes_total
            .with_label_values(&[reason, outcome(ok)])
            .inc();
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// Keeps a client counted in `slotway_client_connections` while alive.
#[derive(Debug)]
#[must_use = "the client stops being counted when the guard is dropped"]
pub struct ClientGuard {
    gauge: IntGauge,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Pre-resolved series of one node; see [`Metrics::node`].
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// Requests sent to the node.
    pub requests_total: IntCounter,
    /// Open connections to the node.
    pub connections: IntGauge,
    errors: [IntCounter; BackendErrorKind::ALL.len()],
}

impl NodeMetrics {
    pub fn record_error(&self, kind: BackendErrorKind) {
        if let Some(counter) = self.errors.get(kind as usize) {
            counter.inc();
        }
    }
}

/// `commands_total` series per command-table entry, created on first use.
#[derive(Debug)]
struct CommandCounters {
    /// One per table entry (subcommands included): its name and its series.
    entries: Vec<(&'static str, OnceLock<OutcomeCounters>)>,
    /// Keyed by the address and length of the table's own `&'static str`:
    /// the common case, callers passing `CommandSpec::name`, hashes two
    /// words instead of the name.
    by_addr: HashMap<(usize, usize), usize>,
    /// Fallback for an equal name stored elsewhere.
    by_name: HashMap<&'static str, usize>,
    /// Names not in the table.
    other: OnceLock<OutcomeCounters>,
}

#[derive(Debug)]
struct OutcomeCounters {
    ok: IntCounter,
    error: IntCounter,
}

impl CommandCounters {
    fn new(table: &'static [CommandSpec]) -> CommandCounters {
        let mut names = Vec::new();
        for spec in table {
            names.push(spec.name);
            names.extend(spec.subcommands.iter().map(|sub| sub.name));
        }
        let mut by_name = HashMap::new();
        let mut by_addr = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            by_name.entry(*name).or_insert(i);
            by_addr.entry(addr_key(name)).or_insert(i);
        }
        CommandCounters {
            entries: names.into_iter().map(|n| (n, OnceLock::new())).collect(),
            by_addr,
            by_name,
            other: OnceLock::new(),
        }
    }

    fn get(&self, name: &'static str, vec: &IntCounterVec) -> &OutcomeCounters {
        let entry = self
            .by_addr
            .get(&addr_key(name))
            .or_else(|| self.by_name.get(name))
            .and_then(|&i| self.entries.get(i));
        match entry {
            Some((label, slot)) => slot.get_or_init(|| OutcomeCounters::resolve(vec, label)),
            None => self
                .other
                .get_or_init(|| OutcomeCounters::resolve(vec, OTHER_COMMAND)),
        }
    }
}

impl OutcomeCounters {
    fn resolve(vec: &IntCounterVec, label: &'static str) -> OutcomeCounters {
        OutcomeCounters {
            ok: vec.with_label_values(&[label, "ok"]),
            error: vec.with_label_values(&[label, "error"]),
        }
    }
}

fn addr_key(name: &str) -> (usize, usize) {
    (name.as_ptr() as usize, name.len())
}

/// A session's own tally of the commands it answered, added to the shared
/// metrics in batches.
///
/// Every shared counter is an atomic that all worker threads write; updating
/// three or four of them per request makes their cache lines bounce between
/// cores. A session records into plain fields instead and flushes when it
/// has gathered enough, when its flush timer fires, and when it ends.
pub struct CommandRecorder<'a> {
    metrics: &'a Metrics,
    durations: prometheus::local::LocalHistogram,
    /// (name, ok, error) per command name seen since the last flush; a
    /// session uses few distinct commands, so a short list beats a map.
    counts: Vec<(&'static str, u64, u64)>,
    pending: usize,
}

impl<'a> CommandRecorder<'a> {
    /// Records this many commands before flushing on its own.
    pub const BATCH: usize = 256;

    pub fn new(metrics: &'a Metrics) -> CommandRecorder<'a> {
        CommandRecorder {
            metrics,
            durations: metrics.command_duration_seconds.local(),
            counts: Vec::new(),
            pending: 0,
        }
    }

    /// Like [`Metrics::record_command`], into the session's tally.
    pub fn record(&mut self, name: &'static str, ok: bool, elapsed: Duration) {
        self.durations.observe(elapsed.as_secs_f64());
        let i = match self
            .counts
            .iter()
            .position(|(n, _, _)| std::ptr::eq(*n, name))
        {
            Some(i) => i,
            None => {
                self.counts.push((name, 0, 0));
                self.counts.len() - 1
            }
        };
        if let Some((_, ok_count, error_count)) = self.counts.get_mut(i) {
            if ok {
                *ok_count += 1;
            } else {
                *error_count += 1;
            }
        }
        self.pending += 1;
        if self.pending >= Self::BATCH {
            self.flush();
        }
    }

    /// Commands recorded and not yet flushed.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Adds the tally to the shared metrics.
    pub fn flush(&mut self) {
        for (name, ok, error) in self.counts.drain(..) {
            let counters = self
                .metrics
                .commands
                .get(name, &self.metrics.commands_total);
            counters.ok.inc_by(ok);
            counters.error.inc_by(error);
        }
        self.durations.flush();
        self.pending = 0;
    }
}

impl Drop for CommandRecorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests;
