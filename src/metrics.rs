//! Metrics. PLACEHOLDER: the fields the proxy records, until the full
//! registry and admin port land.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub client_connections: IntGauge,
    pub client_connections_total: IntCounter,
    pub commands_total: IntCounterVec,
    pub command_duration_seconds: Histogram,
    pub redirects_total: IntCounterVec,
    pub backend_errors_total: IntCounterVec,
    pub topology_refreshes_total: IntCounterVec,
    pub topology_epoch: IntGauge,
    pub unknown_outcome_total: IntCounter,
    pub protocol_errors_total: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            client_connections: IntGauge::new(
                "slotway_client_connections",
                "open client connections",
            )?,
            client_connections_total: IntCounter::new(
                "slotway_client_connections_total",
                "accepted",
            )?,
            commands_total: IntCounterVec::new(
                Opts::new("slotway_commands_total", "commands"),
                &["command", "outcome"],
            )?,
            command_duration_seconds: Histogram::with_opts(HistogramOpts::new(
                "slotway_command_duration_seconds",
                "latency",
            ))?,
            redirects_total: IntCounterVec::new(
                Opts::new("slotway_redirects_total", "redirects"),
                &["kind"],
            )?,
            backend_errors_total: IntCounterVec::new(
                Opts::new("slotway_backend_errors_total", "errors"),
                &["node", "kind"],
            )?,
            topology_refreshes_total: IntCounterVec::new(
                Opts::new("slotway_topology_refreshes_total", "refreshes"),
                &["reason", "outcome"],
            )?,
            topology_epoch: IntGauge::new("slotway_topology_epoch", "version")?,
            unknown_outcome_total: IntCounter::new("slotway_unknown_outcome_total", "unknown")?,
            protocol_errors_total: IntCounter::new(
                "slotway_protocol_errors_total",
                "protocol errors",
            )?,
        };
        registry.register(Box::new(m.client_connections.clone()))?;
        Ok(m)
    }

    pub fn record_command(&self, name: &str, ok: bool, elapsed: std::time::Duration) {
        self.commands_total
            .with_label_values(&[name, if ok { "ok" } else { "error" }])
            .inc();
        self.command_duration_seconds.observe(elapsed.as_secs_f64());
    }
}
