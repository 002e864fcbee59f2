//! Metrics. PLACEHOLDER until the Prometheus registry and admin port land.
