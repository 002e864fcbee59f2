//! Configuration. PLACEHOLDER until the layered loader lands.

/// Everything `slotway proxy` needs, immutable after startup.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: String,
    pub admin_listen: String,
    pub cluster: ClusterConfig,
    pub backend: BackendConfig,
    pub retry: RetryConfig,
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub seeds: Vec<String>,
    pub refresh_interval_ms: u64,
    pub min_refresh_interval_ms: u64,
    pub failing_poll_interval_ms: u64,
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub connections_per_node: usize,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub reconnect_backoff_max_ms: u64,
}

#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub max_redirects: u32,
    pub retry_deadline_ms: u64,
    pub failover_deadline_ms: u64,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_clients: usize,
    pub max_bulk_len: usize,
    pub max_multibulk_len: usize,
    pub max_inflight_per_client: usize,
    pub client_output_limit_bytes: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "127.0.0.1:7777".into(),
            admin_listen: "127.0.0.1:9777".into(),
            cluster: ClusterConfig {
                seeds: vec![],
                refresh_interval_ms: 5000,
                min_refresh_interval_ms: 100,
                failing_poll_interval_ms: 50,
            },
            backend: BackendConfig {
                connections_per_node: 1,
                connect_timeout_ms: 1000,
                request_timeout_ms: 2000,
                reconnect_backoff_max_ms: 1000,
            },
            retry: RetryConfig {
                max_redirects: 5,
                retry_deadline_ms: 5000,
                failover_deadline_ms: 15000,
            },
            limits: LimitsConfig {
                max_clients: 10000,
                max_bulk_len: crate::resp::DEFAULT_MAX_BULK_LEN,
                max_multibulk_len: crate::resp::DEFAULT_MAX_MULTIBULK_LEN,
                max_inflight_per_client: 1024,
                client_output_limit_bytes: 1 << 30,
            },
        }
    }
}
