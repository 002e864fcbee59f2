//! Typed, layered configuration for `slotway proxy`: built-in defaults, then
//! a TOML file, then `SLOTWAY_*` environment variables, then command-line
//! flags; then [`ProxyConfig::validate`].
//!
//! Every field has a `DEFAULT_*` constant next to its struct, wired in with
//! `#[serde(default = ...)]`, so a missing key (or section) takes the default
//! and an unknown key is an error (`deny_unknown_fields`): a typo never
//! silently falls back to a default. Durations and sizes carry their unit in
//! the name. `config/slotway.toml` lists every key with its default; a unit
//! test keeps it in step with the constants here.
//!
//! Environment keys use `__` between section and key:
//! `SLOTWAY_LISTEN`, `SLOTWAY_CLUSTER__SEEDS=10.0.0.1:7000,10.0.0.2:7000`,
//! `SLOTWAY_BACKEND__CONNECT_TIMEOUT_MS=500`. Empty values count as unset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Environment variables with this prefix (plus `_`) are configuration.
pub const ENV_PREFIX: &str = "SLOTWAY";

/// Upper bound for every `*_ms` setting: one day. Larger values are almost
/// certainly a unit mistake, and keeping them bounded means `Instant +
/// Duration` arithmetic can never overflow.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------
// The structs and their defaults
// ---------------------------------------------------------------------------

/// Address clients connect to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7777";
/// Address of the admin HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9777";

/// The address cluster-aware clients are told to use (CLUSTER SLOTS,
/// SHARDS, NODES); empty means the address each client connected to.
pub const DEFAULT_ADVERTISE: &str = "";

/// Worker threads serving clients; 0 means one per CPU.
pub const DEFAULT_WORKERS: usize = 0;
/// Most worker threads accepted.
pub const MAX_WORKERS: usize = 256;

/// Everything `slotway proxy` needs, immutable after startup (shared as
/// `Arc<ProxyConfig>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// `host:port` the proxy accepts clients on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `host:port` the proxy gives cluster-aware clients as the one node of
    /// its emulated cluster: set it when clients reach the proxy through NAT
    /// or a container port mapping. Empty: the address each client connected
    /// to.
    #[serde(default = "default_advertise")]
    pub advertise: String,
    /// `host:port` of the admin HTTP endpoint.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Worker threads, each with its own clients and backend links; 0 means
    /// one per CPU.
    #[serde(default = "default_workers")]
    pub workers: usize,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub embedded: EmbeddedConfig,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

fn default_advertise() -> String {
    DEFAULT_ADVERTISE.to_string()
}

fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.to_string()
}

fn default_workers() -> usize {
    DEFAULT_WORKERS
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_listen(),
            advertise: default_advertise(),
            admin_listen: default_admin_listen(),
            workers: default_workers(),
            cluster: ClusterConfig::default(),
            backend: BackendConfig::default(),
            retry: RetryConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            embedded: EmbeddedConfig::default(),
        }
    }
}

/// Full-map refresh period when nothing is wrong.
pub const DEFAULT_REFRESH_INTERVAL_MS: u64 = 5000;
/// Refreshes (MOVED-triggered included) never run closer together than this.
pub const DEFAULT_MIN_REFRESH_INTERVAL_MS: u64 = 100;
/// Refresh period while a node is failing and a promotion is awaited.
pub const DEFAULT_FAILING_POLL_INTERVAL_MS: u64 = 50;

/// `[cluster]`: where the cluster is and how often its map is refreshed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `host:port` of cluster nodes to learn the topology from. Empty: start
    /// the embedded cluster of built-in nodes.
    #[serde(default)]
    pub seeds: Vec<String>,
    #[serde(
        default = "default_refresh_interval_ms",
        deserialize_with = "whole_number"
    )]
    pub refresh_interval_ms: u64,
    #[serde(
        default = "default_min_refresh_interval_ms",
        deserialize_with = "whole_number"
    )]
    pub min_refresh_interval_ms: u64,
    #[serde(
        default = "default_failing_poll_interval_ms",
        deserialize_with = "whole_number"
    )]
    pub failing_poll_interval_ms: u64,
}

fn default_refresh_interval_ms() -> u64 {
    DEFAULT_REFRESH_INTERVAL_MS
}

fn default_min_refresh_interval_ms() -> u64 {
    DEFAULT_MIN_REFRESH_INTERVAL_MS
}

fn default_failing_poll_interval_ms() -> u64 {
    DEFAULT_FAILING_POLL_INTERVAL_MS
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seeds: Vec::new(),
            refresh_interval_ms: DEFAULT_REFRESH_INTERVAL_MS,
            min_refresh_interval_ms: DEFAULT_MIN_REFRESH_INTERVAL_MS,
            failing_poll_interval_ms: DEFAULT_FAILING_POLL_INTERVAL_MS,
        }
    }
}

/// Multiplexed connections per cluster node.
pub const DEFAULT_CONNECTIONS_PER_NODE: usize = 1;
/// Largest accepted `backend.connections_per_node`.
pub const MAX_CONNECTIONS_PER_NODE: usize = 64;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_RECONNECT_BACKOFF_MAX_MS: u64 = 1000;
/// Dedicated connections (transactions, blocking commands, subscriptions)
/// per node.
pub const DEFAULT_MAX_DEDICATED_CONNECTIONS_PER_NODE: usize = 1000;

/// `[backend]`: the links from the proxy to cluster nodes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Multiplexed, pipelined connections per node (1..=64).
    #[serde(
        default = "default_connections_per_node",
        deserialize_with = "whole_number"
    )]
    pub connections_per_node: usize,
    /// Time allowed for a TCP connect to a node.
    #[serde(
        default = "default_connect_timeout_ms",
        deserialize_with = "whole_number"
    )]
    pub connect_timeout_ms: u64,
    /// Time allowed for a node to answer a request before it counts as
    /// failing (a hung master).
    #[serde(
        default = "default_request_timeout_ms",
        deserialize_with = "whole_number"
    )]
    pub request_timeout_ms: u64,
    /// Cap of the exponential backoff between reconnect attempts.
    #[serde(
        default = "default_reconnect_backoff_max_ms",
        deserialize_with = "whole_number"
    )]
    pub reconnect_backoff_max_ms: u64,
    /// Dedicated connections open at once to each node: one per client in a
    /// WATCH, a blocking command or a subscription. Past it such a command
    /// gets an error.
    #[serde(
        default = "default_max_dedicated_connections_per_node",
        deserialize_with = "whole_number"
    )]
    pub max_dedicated_connections_per_node: usize,
}

fn default_connections_per_node() -> usize {
    DEFAULT_CONNECTIONS_PER_NODE
}

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

fn default_request_timeout_ms() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
}

fn default_reconnect_backoff_max_ms() -> u64 {
    DEFAULT_RECONNECT_BACKOFF_MAX_MS
}

fn default_max_dedicated_connections_per_node() -> usize {
    DEFAULT_MAX_DEDICATED_CONNECTIONS_PER_NODE
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            connections_per_node: DEFAULT_CONNECTIONS_PER_NODE,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            reconnect_backoff_max_ms: DEFAULT_RECONNECT_BACKOFF_MAX_MS,
            max_dedicated_connections_per_node: DEFAULT_MAX_DEDICATED_CONNECTIONS_PER_NODE,
        }
    }
}

/// MOVED/ASK redirects followed for one request before giving up.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
/// Largest accepted `retry.max_redirects`.
pub const MAX_MAX_REDIRECTS: u32 = 64;
pub const DEFAULT_RETRY_DEADLINE_MS: u64 = 5000;
pub const DEFAULT_FAILOVER_DEADLINE_MS: u64 = 15000;

/// `[retry]`: how long the proxy hides redirects and failover.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Redirects (MOVED/ASK) followed for one request (1..=64).
    #[serde(default = "default_max_redirects", deserialize_with = "whole_number")]
    pub max_redirects: u32,
    /// How long TRYAGAIN/CLUSTERDOWN/LOADING are retried with backoff before
    /// the error goes to the client.
    #[serde(
        default = "default_retry_deadline_ms",
        deserialize_with = "whole_number"
    )]
    pub retry_deadline_ms: u64,
    /// How long a request to a failing master is held while waiting for a
    /// promotion.
    #[serde(
        default = "default_failover_deadline_ms",
        deserialize_with = "whole_number"
    )]
    pub failover_deadline_ms: u64,
}

fn default_max_redirects() -> u32 {
    DEFAULT_MAX_REDIRECTS
}

fn default_retry_deadline_ms() -> u64 {
    DEFAULT_RETRY_DEADLINE_MS
}

fn default_failover_deadline_ms() -> u64 {
    DEFAULT_FAILOVER_DEADLINE_MS
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_redirects: DEFAULT_MAX_REDIRECTS,
            retry_deadline_ms: DEFAULT_RETRY_DEADLINE_MS,
            failover_deadline_ms: DEFAULT_FAILOVER_DEADLINE_MS,
        }
    }
}

pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Redis's `proto-max-bulk-len`: 512 MiB.
pub const DEFAULT_MAX_BULK_LEN: usize = crate::resp::DEFAULT_MAX_BULK_LEN;
/// Redis's limit on elements of one multibulk request.
pub const DEFAULT_MAX_MULTIBULK_LEN: usize = crate::resp::DEFAULT_MAX_MULTIBULK_LEN;
pub const DEFAULT_MAX_INFLIGHT_PER_CLIENT: usize = 1024;
/// Largest accepted `limits.max_inflight_per_client` (it sizes a channel).
pub const MAX_MAX_INFLIGHT_PER_CLIENT: usize = 1 << 20;
/// 1 GiB.
pub const DEFAULT_CLIENT_OUTPUT_LIMIT_BYTES: usize = 1 << 30;
/// Redis's hard `client-output-buffer-limit pubsub`: 32 MiB.
pub const DEFAULT_PUBSUB_OUTPUT_LIMIT_BYTES: usize = 32 << 20;

/// `[limits]`: what one client, or all of them, may use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connected clients at once; more are refused.
    #[serde(default = "default_max_clients", deserialize_with = "whole_number")]
    pub max_clients: usize,
    /// Largest bulk string in a request, in bytes.
    #[serde(default = "default_max_bulk_len", deserialize_with = "whole_number")]
    pub max_bulk_len: usize,
    /// Most elements in one request.
    #[serde(
        default = "default_max_multibulk_len",
        deserialize_with = "whole_number"
    )]
    pub max_multibulk_len: usize,
    /// Requests of one client in flight (the pipeline depth) before the proxy
    /// stops reading from it.
    #[serde(
        default = "default_max_inflight_per_client",
        deserialize_with = "whole_number"
    )]
    pub max_inflight_per_client: usize,
    /// Replies buffered for a client that does not read them, in bytes,
    /// before it is disconnected.
    #[serde(
        default = "default_client_output_limit_bytes",
        deserialize_with = "whole_number"
    )]
    pub client_output_limit_bytes: usize,
    /// Messages buffered for a subscriber that does not read them, in bytes,
    /// before it is disconnected (Redis's `client-output-buffer-limit
    /// pubsub`).
    #[serde(
        default = "default_pubsub_output_limit_bytes",
        deserialize_with = "whole_number"
    )]
    pub pubsub_output_limit_bytes: usize,
}

fn default_max_clients() -> usize {
    DEFAULT_MAX_CLIENTS
}

fn default_max_bulk_len() -> usize {
    DEFAULT_MAX_BULK_LEN
}

fn default_max_multibulk_len() -> usize {
    DEFAULT_MAX_MULTIBULK_LEN
}

fn default_max_inflight_per_client() -> usize {
    DEFAULT_MAX_INFLIGHT_PER_CLIENT
}

fn default_client_output_limit_bytes() -> usize {
    DEFAULT_CLIENT_OUTPUT_LIMIT_BYTES
}

fn default_pubsub_output_limit_bytes() -> usize {
    DEFAULT_PUBSUB_OUTPUT_LIMIT_BYTES
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: DEFAULT_MAX_CLIENTS,
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_multibulk_len: DEFAULT_MAX_MULTIBULK_LEN,
            max_inflight_per_client: DEFAULT_MAX_INFLIGHT_PER_CLIENT,
            client_output_limit_bytes: DEFAULT_CLIENT_OUTPUT_LIMIT_BYTES,
            pubsub_output_limit_bytes: DEFAULT_PUBSUB_OUTPUT_LIMIT_BYTES,
        }
    }
}

/// Log filter used when neither `--log-level` nor `RUST_LOG` is given.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// `[log]`: what is logged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a
    /// `tracing` filter such as `info,slotway::proxy=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    DEFAULT_LOG_LEVEL.to_string()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
        }
    }
}

/// Where the embedded cluster keeps its nodes' files.
pub const DEFAULT_EMBEDDED_DIR: &str = "slotway-data";
/// Client port of the first embedded node; the others follow (bus ports are
/// these + 10000).
pub const DEFAULT_EMBEDDED_BASE_PORT: u16 = 7001;
pub const DEFAULT_EMBEDDED_MASTERS: usize = 3;
pub const DEFAULT_EMBEDDED_REPLICAS_PER_MASTER: usize = 1;
pub const DEFAULT_EMBEDDED_NODE_TIMEOUT_MS: u64 = 5000;
/// Most nodes the embedded cluster starts.
pub const MAX_EMBEDDED_NODES: usize = 64;

/// `[embedded]`: the cluster of built-in nodes started when no seed is
/// configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Directory for the nodes' files (one subdirectory per node). A cluster
    /// found there is started again as it was.
    #[serde(default = "default_embedded_dir")]
    pub dir: PathBuf,
    /// Client port of the first node; node i listens on base_port + i and
    /// its cluster bus on that + 10000.
    #[serde(
        default = "default_embedded_base_port",
        deserialize_with = "whole_number"
    )]
    pub base_port: u16,
    /// Masters (at least 3, as Redis Cluster requires).
    #[serde(
        default = "default_embedded_masters",
        deserialize_with = "whole_number"
    )]
    pub masters: usize,
    #[serde(
        default = "default_embedded_replicas_per_master",
        deserialize_with = "whole_number"
    )]
    pub replicas_per_master: usize,
    /// The nodes' `cluster-node-timeout`.
    #[serde(
        default = "default_embedded_node_timeout_ms",
        deserialize_with = "whole_number"
    )]
    pub node_timeout_ms: u64,
    /// The nodes keep an append-only file (`appendfsync everysec`), so a
    /// restart brings back the data as well as the cluster.
    #[serde(default = "default_true")]
    pub appendonly: bool,
}

fn default_true() -> bool {
    true
}

fn default_embedded_dir() -> PathBuf {
    PathBuf::from(DEFAULT_EMBEDDED_DIR)
}

fn default_embedded_base_port() -> u16 {
    DEFAULT_EMBEDDED_BASE_PORT
}

fn default_embedded_masters() -> usize {
    DEFAULT_EMBEDDED_MASTERS
}

fn default_embedded_replicas_per_master() -> usize {
    DEFAULT_EMBEDDED_REPLICAS_PER_MASTER
}

fn default_embedded_node_timeout_ms() -> u64 {
    DEFAULT_EMBEDDED_NODE_TIMEOUT_MS
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            dir: default_embedded_dir(),
            base_port: DEFAULT_EMBEDDED_BASE_PORT,
            masters: DEFAULT_EMBEDDED_MASTERS,
            replicas_per_master: DEFAULT_EMBEDDED_REPLICAS_PER_MASTER,
            node_timeout_ms: DEFAULT_EMBEDDED_NODE_TIMEOUT_MS,
            appendonly: true,
        }
    }
}

impl EmbeddedConfig {
    /// Number of nodes started.
    pub fn node_count(&self) -> usize {
        self.masters * (1 + self.replicas_per_master)
    }
}

/// Reads an integer setting, accepting only a whole number in range. The
/// config crate's own conversion would round `1.7` to 2 without a word.
fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::{Error, Unexpected, Visitor};

    struct Whole<T>(std::marker::PhantomData<T>);

    impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "a non-negative whole number (fitting {})",
                std::any::type_name::<T>()
            )
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
            let v = u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))?;
            self.visit_u64(v)
        }

        fn visit_u128<E: Error>(self, v: u128) -> Result<T, E> {
            let v = u64::try_from(v)
                .map_err(|_| E::invalid_value(Unexpected::Other("a huge number"), &self))?;
            self.visit_u64(v)
        }

        fn visit_i128<E: Error>(self, v: i128) -> Result<T, E> {
            let v = u64::try_from(v)
                .map_err(|_| E::invalid_value(Unexpected::Other("a huge number"), &self))?;
            self.visit_u64(v)
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
            let n = v
                .trim()
                .parse::<u64>()
                .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))?;
            self.visit_u64(n)
        }
    }

    deserializer.deserialize_any(Whole(std::marker::PhantomData))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a configuration could not be loaded. Every variant's message names
/// the offending file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One layer (the file, the environment or the flags) has a syntax
    /// error, an unknown key or a value of the wrong type.
    #[error("{layer}: {source}")]
    Layer {
        layer: String,
        source: config::ConfigError,
    },
    /// Every key parsed but a value is out of range.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Values given on the command line: the top layer. `None` keeps the value
/// from the layers below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub admin_listen: Option<String>,
    pub seeds: Option<Vec<String>>,
    pub log_level: Option<String>,
}

impl ProxyConfig {
    /// Loads the configuration: defaults, then `file` (if given; no file is
    /// read otherwise), then the process's `SLOTWAY_*` environment, then
    /// `overrides`; then validates it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, key or variable at fault.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<ProxyConfig, ConfigError> {
        load_layers(file, None, overrides)
    }

    /// Like [`ProxyConfig::load`], but reads the environment layer from `env`
    /// (full variable names, e.g. `SLOTWAY_LISTEN`) instead of the process
    /// environment. Variables without the `SLOTWAY_` prefix are ignored.
    ///
    /// # Errors
    /// As [`ProxyConfig::load`].
    pub fn load_with_env<I>(
        file: Option<&Path>,
        env: I,
        overrides: &Overrides,
    ) -> Result<ProxyConfig, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        load_layers(file, Some(env.into_iter().collect()), overrides)
    }

    /// Parses a TOML document over the defaults and validates the result
    /// (no environment, no flags).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key at fault.
    pub fn from_toml_str(toml: &str) -> Result<ProxyConfig, ConfigError> {
        let file = toml_layer(toml, "TOML")?;
        let cfg = deserialize(file, "TOML")?;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn load_layers(
    file: Option<&Path>,
    env: Option<HashMap<String, String>>,
    overrides: &Overrides,
) -> Result<ProxyConfig, ConfigError> {
    let mut builder = config::Config::builder();

    // Each layer is deserialized on its own first, so an unknown key or a
    // bad type is reported against the layer it came from.
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let layer = format!("config file {}", path.display());
        let file_cfg = toml_layer(&text, &layer)?;
        deserialize(file_cfg.clone(), &layer)?;
        builder = builder.add_source(file_cfg);
    }

    let env_layer = "environment (SLOTWAY_*)";
    let env_cfg = config::Config::builder()
        .add_source(env_source(env))
        .build()
        .map_err(|source| layer_error(env_layer, source))?;
    deserialize(env_cfg.clone(), env_layer)?;
    builder = builder.add_source(env_cfg);

    let flags_layer = "command line";
    builder = apply_overrides(builder, overrides).map_err(|e| layer_error(flags_layer, e))?;
    let merged = builder
        .build()
        .map_err(|source| layer_error(flags_layer, source))?;
    let cfg = deserialize(merged, flags_layer)?;
    cfg.validate()?;
    Ok(cfg)
}

fn layer_error(layer: &str, source: config::ConfigError) -> ConfigError {
    ConfigError::Layer {
        layer: layer.to_string(),
        source,
    }
}

fn toml_layer(text: &str, layer: &str) -> Result<config::Config, ConfigError> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|source| layer_error(layer, source))
}

fn deserialize(cfg: config::Config, layer: &str) -> Result<ProxyConfig, ConfigError> {
    cfg.try_deserialize()
        .map_err(|source| layer_error(layer, source))
}

fn env_source(env: Option<HashMap<String, String>>) -> config::Environment {
    config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .ignore_empty(true)
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("cluster.seeds")
        .source(env.map(|vars| vars.into_iter().collect()))
}

type Builder = config::ConfigBuilder<config::builder::DefaultState>;

fn apply_overrides(mut b: Builder, o: &Overrides) -> Result<Builder, config::ConfigError> {
    if let Some(listen) = &o.listen {
        b = b.set_override("listen", listen.as_str())?;
    }
    if let Some(advertise) = &o.advertise {
        b = b.set_override("advertise", advertise.as_str())?;
    }
    if let Some(admin) = &o.admin_listen {
        b = b.set_override("admin_listen", admin.as_str())?;
    }
    if let Some(seeds) = &o.seeds {
        b = b.set_override("cluster.seeds", seeds.clone())?;
    }
    if let Some(level) = &o.log_level {
        b = b.set_override("log.level", level.as_str())?;
    }
    Ok(b)
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

impl ProxyConfig {
    /// Checks every value's range; [`ProxyConfig::load`] calls it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key at fault
    /// (`backend.connections_per_node`, `cluster.seeds[1]`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_addr("listen", &self.listen, Port::ZeroAllowed)?;
        if !self.advertise.is_empty() {
            check_addr("advertise", &self.advertise, Port::NonZero)?;
        }
        check_addr("admin_listen", &self.admin_listen, Port::ZeroAllowed)?;
        check_range("workers", self.workers, 0, MAX_WORKERS)?;

        let c = &self.cluster;
        for (i, seed) in c.seeds.iter().enumerate() {
            check_addr(&format!("cluster.seeds[{i}]"), seed, Port::NonZero)?;
        }
        check_ms("cluster.refresh_interval_ms", c.refresh_interval_ms)?;
        check_ms("cluster.min_refresh_interval_ms", c.min_refresh_interval_ms)?;
        check_ms(
            "cluster.failing_poll_interval_ms",
            c.failing_poll_interval_ms,
        )?;
        if c.min_refresh_interval_ms > c.refresh_interval_ms {
            return Err(ConfigError::invalid(
                "cluster.min_refresh_interval_ms",
                format!(
                    "must not exceed cluster.refresh_interval_ms ({} > {})",
                    c.min_refresh_interval_ms, c.refresh_interval_ms
                ),
            ));
        }

        let b = &self.backend;
        check_range(
            "backend.connections_per_node",
            b.connections_per_node,
            1,
            MAX_CONNECTIONS_PER_NODE,
        )?;
        check_ms("backend.connect_timeout_ms", b.connect_timeout_ms)?;
        check_ms("backend.request_timeout_ms", b.request_timeout_ms)?;
        check_ms(
            "backend.reconnect_backoff_max_ms",
            b.reconnect_backoff_max_ms,
        )?;
        check_range(
            "backend.max_dedicated_connections_per_node",
            b.max_dedicated_connections_per_node,
            1,
            usize::MAX,
        )?;

        let r = &self.retry;
        check_range("retry.max_redirects", r.max_redirects, 1, MAX_MAX_REDIRECTS)?;
        check_ms("retry.retry_deadline_ms", r.retry_deadline_ms)?;
        check_ms("retry.failover_deadline_ms", r.failover_deadline_ms)?;

        let l = &self.limits;
        check_range("limits.max_clients", l.max_clients, 1, usize::MAX)?;
        check_range("limits.max_bulk_len", l.max_bulk_len, 1, usize::MAX)?;
        check_range(
            "limits.max_multibulk_len",
            l.max_multibulk_len,
            1,
            usize::MAX,
        )?;
        check_range(
            "limits.max_inflight_per_client",
            l.max_inflight_per_client,
            1,
            MAX_MAX_INFLIGHT_PER_CLIENT,
        )?;
        check_range(
            "limits.client_output_limit_bytes",
            l.client_output_limit_bytes,
            1,
            usize::MAX,
        )?;
        check_range(
            "limits.pubsub_output_limit_bytes",
            l.pubsub_output_limit_bytes,
            1,
            usize::MAX,
        )?;

        check_log_level("log.level", &self.log.level)?;

        let e = &self.embedded;
        check_range("embedded.masters", e.masters, 3, MAX_EMBEDDED_NODES)?;
        check_range(
            "embedded.replicas_per_master",
            e.replicas_per_master,
            0,
            MAX_EMBEDDED_NODES,
        )?;
        check_range("embedded.node_count", e.node_count(), 3, MAX_EMBEDDED_NODES)?;
        // Every node's client port and bus port (+10000) must be valid.
        let last = usize::from(e.base_port) + e.node_count() - 1 + 10_000;
        if e.base_port == 0 || last > usize::from(u16::MAX) {
            return Err(ConfigError::invalid(
                "embedded.base_port",
                format!(
                    "must leave room for {} client ports and their bus ports (+10000) \
                     below 65536 (got {})",
                    e.node_count(),
                    e.base_port
                ),
            ));
        }
        check_ms("embedded.node_timeout_ms", e.node_timeout_ms)?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Port {
    /// A listen address may ask for an ephemeral port.
    ZeroAllowed,
    NonZero,
}

/// `host:port` where host is an IP address (IPv6 in brackets) or a DNS name.
/// Names are not resolved here: that happens when the address is used.
fn check_addr(key: &str, value: &str, port_rule: Port) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::invalid(key, format!("{why} (got {value:?})"));
    let port = if let Ok(addr) = value.parse::<SocketAddr>() {
        addr.port()
    } else {
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !host_ok {
            return Err(bad("expected host:port with an IP address or a host name"));
        }
        port.parse::<u16>()
            .map_err(|_| bad("port must be a number from 0 to 65535"))?
    };
    if port == 0 && port_rule == Port::NonZero {
        return Err(bad("port must not be 0"));
    }
    Ok(())
}

fn check_ms(key: &str, value: u64) -> Result<(), ConfigError> {
    check_range(key, value, 1, MAX_DURATION_MS)
}

fn check_range<T>(key: &str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if value < min {
        return Err(ConfigError::invalid(
            key,
            format!("must be at least {min} (got {value})"),
        ));
    }
    if value > max {
        return Err(ConfigError::invalid(
            key,
            format!("must be at most {max} (got {value})"),
        ));
    }
    Ok(())
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A level, or comma-separated `target=level` directives. Every directive
/// must end in a known level, so a typo (`inof`) is an error instead of being
/// read as a target name that matches nothing.
fn check_log_level(key: &str, value: &str) -> Result<(), ConfigError> {
    let bad = |why: String| ConfigError::invalid(key, format!("{why} (got {value:?})"));
    if value.trim().is_empty() {
        return Err(bad("must not be empty".into()));
    }
    for directive in value.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(bad(format!(
                "directive {directive:?} must end in one of {}",
                LEVELS.join(", ")
            )));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
