//! The `slotway` binary: parses the command line, loads the configuration,
//! starts logging, and runs the chosen role until Ctrl-C or SIGTERM.
//!
//! Exit status: 0 after a clean shutdown, 64 (`EX_USAGE`) for a bad command
//! line or configuration, 1 when startup fails (an address cannot be bound).
//! `slotway cluster ...` exits 0 when the operation succeeded (for `check`:
//! when nothing is wrong), 64 for bad arguments, 1 otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use slotway::config::{Overrides, ProxyConfig};
use slotway::operator::{self, Console, CreateOptions, OpError, ReshardOptions};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: the hot path allocates a few small
/// objects per request (reply channels, tasks for split commands). Under
/// callgrind, glibc spent about 40% of a split MSET's instructions in its
/// allocator, consolidating its free lists whenever a larger block (a task)
/// was asked for; with mimalloc the MSET costs a third fewer instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

/// `EX_USAGE` from sysexits.h: the command was used incorrectly.
const EX_USAGE: u8 = 64;
/// Startup failed for a reason other than the configuration.
const EX_STARTUP: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "slotway",
    version,
    about = "A cluster-aware Redis proxy: one address in front of a Redis Cluster",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `slotway` runs the proxy with these flags.
    #[command(flatten)]
    proxy: ProxyArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default when no subcommand is given).
    Proxy(ProxyArgs),
    /// Run one built-in cluster node, as `redis-server --cluster-enabled yes`.
    // Boxed: its many redis-server flags make it far larger than the rest.
    Node(Box<NodeArgs>),
    /// Operate a cluster: create it, check it, move slots.
    Cluster(ClusterArgs),
}

/// Flags of `slotway node`; named as redis-server names them, so that
/// scripts written for redis-server work unchanged. Each wins over the
/// config file.
#[derive(Debug, Args)]
struct NodeArgs {
    /// A redis.conf-style file (`port 7000`, `cluster-node-timeout 5000`...).
    #[arg(value_name = "CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Client port [default: 6379].
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<String>,
    /// Cluster bus port [default: port + 10000].
    #[arg(long)]
    cluster_port: Option<u16>,
    /// Cluster state file, relative to --dir [default: nodes-<port>.conf].
    #[arg(long)]
    cluster_config_file: Option<String>,
    /// Working directory for the cluster state and the append-only file.
    #[arg(long)]
    dir: Option<String>,
    /// yes|no: keep an append-only file in --dir, replayed at start [default: no].
    #[arg(long)]
    appendonly: Option<String>,
    /// always|everysec|no: when the append-only file is fsynced [default: everysec].
    #[arg(long)]
    appendfsync: Option<String>,
    /// Prefix of the append-only file's names [default: appendonly.aof].
    #[arg(long)]
    appendfilename: Option<String>,
    /// Directory of the append-only file, inside --dir [default: appendonlydir].
    #[arg(long)]
    appenddirname: Option<String>,
    /// Rewrite the append-only file once it grew by this many percent [default: 100].
    #[arg(long)]
    auto_aof_rewrite_percentage: Option<String>,
    /// ... and only once it is this large [default: 64mb].
    #[arg(long)]
    auto_aof_rewrite_min_size: Option<String>,
    /// yes|no: load an append-only file whose last command is cut short [default: yes].
    #[arg(long)]
    aof_load_truncated: Option<String>,
    /// Milliseconds before an unanswering peer is suspected failing.
    #[arg(long)]
    cluster_node_timeout: Option<String>,
    /// yes|no: refuse queries while some slot is unserved [default: yes].
    #[arg(long)]
    cluster_require_full_coverage: Option<String>,
    /// The IP announced to peers and in redirects [default: the bind address].
    #[arg(long)]
    cluster_announce_ip: Option<String>,
    /// Accepted for redis-server compatibility; must be yes.
    #[arg(long)]
    cluster_enabled: Option<String>,
    /// A replica disconnected from its master for longer than node timeout
    /// times this does not fail over by itself; 0: always may [default: 10].
    #[arg(long)]
    cluster_replica_validity_factor: Option<String>,
    /// yes|no: a master whose slots all moved elsewhere follows their new
    /// owner as a replica [default: yes].
    #[arg(long)]
    cluster_allow_replica_migration: Option<String>,
    /// yes|no: as a replica, never fail the master over by itself
    /// [default: no].
    #[arg(long)]
    cluster_replica_no_failover: Option<String>,
    /// A replica moves to an orphaned master only if its own master keeps
    /// more than this many working replicas [default: 1].
    #[arg(long)]
    cluster_migration_barrier: Option<String>,
    /// Log filter (error, warn, info, debug, trace, or directives).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log_level: String,
    /// Shut down when stdin closes: set by a parent process (the embedded
    /// cluster) so that no node outlives it.
    #[arg(long, hide = true)]
    stop_with_parent: bool,
}

#[derive(Debug, Args)]
struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    /// Seconds to wait for a node to connect or answer one command.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 5.0)]
    command_timeout: f64,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Join empty cluster-enabled nodes into a new cluster, slots split
    /// evenly over the masters (like `redis-cli --cluster create`).
    Create {
        /// Every node of the new cluster.
        #[arg(value_name = "HOST:PORT", required = true, num_args = 1..)]
        nodes: Vec<String>,
        /// Replicas per master.
        #[arg(
            long,
            alias = "cluster-replicas",
            value_name = "N",
            default_value_t = 0
        )]
        replicas: usize,
        /// Accept the plan without asking.
        #[arg(long, alias = "cluster-yes")]
        yes: bool,
        /// Seconds to wait for the nodes to agree at each step.
        #[arg(long, value_name = "SECS", default_value_t = 60.0)]
        wait_timeout: f64,
    },
    /// Compare every node's view of the cluster: nodes, slot owners, open
    /// slots, coverage. Exits 1 when anything is wrong.
    Check {
        /// Any node of the cluster.
        #[arg(value_name = "HOST:PORT")]
        node: String,
    },
    /// Move slots and their keys from one master to another (the source's
    /// lowest-numbered slots).
    Reshard {
        /// Any node of the cluster.
        #[arg(value_name = "HOST:PORT")]
        node: String,
        /// Source master: node id, unique id prefix, or HOST:PORT.
        #[arg(long, value_name = "ID")]
        from: String,
        /// Target master: node id, unique id prefix, or HOST:PORT.
        #[arg(long, value_name = "ID")]
        to: String,
        /// How many slots to move.
        #[arg(long, value_name = "N")]
        slots: usize,
        /// Accept the plan without asking.
        #[arg(long, alias = "cluster-yes")]
        yes: bool,
        /// Overwrite keys that already exist on the target.
        #[arg(long)]
        replace: bool,
        /// Keys moved per MIGRATE.
        #[arg(long, value_name = "N", default_value_t = operator::reshard::DEFAULT_PIPELINE)]
        pipeline: usize,
        /// MIGRATE's timeout for one batch of keys, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 60_000)]
        migrate_timeout_ms: u64,
        /// Seconds to wait for every node to agree at the end.
        #[arg(long, value_name = "SECS", default_value_t = 60.0)]
        wait_timeout: f64,
    },
}

/// Flags of `slotway proxy`; each overrides the file and the environment.
#[derive(Debug, Args)]
struct ProxyArgs {
    /// TOML configuration file (every key: config/slotway.toml). Without it
    /// only the defaults, SLOTWAY_* variables and flags apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address clients connect to [config: listen].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address given to cluster-aware clients (CLUSTER SLOTS/SHARDS/NODES)
    /// when they reach the proxy through NAT or a port mapping [config:
    /// advertise; default: the address each client connected to].
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Cluster nodes to learn the topology from [config: cluster.seeds].
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]", value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Address of the admin HTTP endpoint: /metrics, /healthz, /readyz
    /// [config: admin_listen].
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<String>,
    /// Log filter: a level (error, warn, info, debug, trace) or directives
    /// such as `info,slotway::proxy=debug`. Wins over RUST_LOG, which wins
    /// over [config: log.level].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version also arrive here, on stdout.
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Some(Command::Proxy(args)) => proxy(args),
        Some(Command::Node(args)) => node(*args),
        Some(Command::Cluster(args)) => cluster(args),
        None => proxy(cli.proxy),
    }
}

/// `slotway cluster ...`: runs one operation on a small runtime of its own.
fn cluster(args: ClusterArgs) -> ExitCode {
    let command_timeout = match seconds("--command-timeout", args.command_timeout) {
        Ok(d) => d,
        Err(e) => return operator_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return startup_error(&format!("cannot start the runtime: {e}")),
    };
    let mut console = Console::stdio();
    let result = runtime.block_on(async {
        match args.command {
            ClusterCommand::Create {
                nodes,
                replicas,
                yes,
                wait_timeout,
            } => {
                let opts = CreateOptions {
                    yes,
                    wait_timeout: seconds("--wait-timeout", wait_timeout)?,
                    command_timeout,
                };
                let report = operator::create(&nodes, replicas, &opts, &mut console).await?;
                print_check(&mut console, &report.check);
                Ok(report.check.is_ok())
            }
            ClusterCommand::Check { node } => {
                let report = operator::check(&node, command_timeout).await?;
                print_check(&mut console, &report);
                Ok(report.is_ok())
            }
            ClusterCommand::Reshard {
                node,
                from,
                to,
                slots,
                yes,
                replace,
                pipeline,
                migrate_timeout_ms,
                wait_timeout,
            } => {
                let opts = ReshardOptions {
                    yes,
                    replace,
                    pipeline,
                    migrate_timeout: Duration::from_millis(migrate_timeout_ms),
                    command_timeout,
                    wait_timeout: seconds("--wait-timeout", wait_timeout)?,
                    ..ReshardOptions::new(from, to, slots)
                };
                operator::reshard(&node, &opts, &mut console).await?;
                let report = operator::check(&node, command_timeout).await?;
                print_check(&mut console, &report);
                Ok(report.is_ok())
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("slotway: the cluster check found problems");
            ExitCode::from(EX_STARTUP)
        }
        Err(e) => operator_error(&e),
    }
}

fn print_check(console: &mut Console, report: &operator::CheckReport) {
    for line in report.lines() {
        console.line(line);
    }
}

/// A duration flag in seconds: finite and positive.
fn seconds(flag: &str, value: f64) -> Result<Duration, OpError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| OpError::Usage(format!("{flag} must be a positive number of seconds")))
}

fn operator_error(e: &OpError) -> ExitCode {
    eprintln!("slotway: {e}");
    ExitCode::from(if e.is_usage() { EX_USAGE } else { EX_STARTUP })
}

fn proxy(args: ProxyArgs) -> ExitCode {
    let overrides = Overrides {
        listen: args.listen,
        advertise: args.advertise,
        admin_listen: args.admin_listen,
        seeds: args.seeds,
        log_level: args.log_level,
    };
    let config = match ProxyConfig::load(args.config.as_deref(), &overrides) {
        Ok(config) => Arc::new(config),
        Err(e) => return usage_error(&e),
    };
    let filter = match log_filter(&config, overrides.log_level.is_some()) {
        Ok(filter) => filter,
        Err(e) => return usage_error(&e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    tracing::debug!(?config, "configuration loaded");

    // The control runtime: accepting clients, the refresher, the admin
    // endpoint. Clients are served on the proxy's own worker threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return startup_error(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run_proxy(config)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(message) => startup_error(&message),
    }
}

/// Returns when stdin reaches end of file or fails.
async fn wait_stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

fn node(args: NodeArgs) -> ExitCode {
    let stop_with_parent = args.stop_with_parent;
    let config = match node_config(&args) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    let filter = match EnvFilter::try_new(&args.log_level) {
        Ok(filter) => filter,
        Err(e) => return usage_error(&format!("--log-level: {e}")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Like redis-server: one thread runs commands; a second one lets I/O
    // and the bus proceed while the first holds the lock.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return startup_error(&format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals =
            Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                signals.recv().await;
                shutdown.cancel();
            }
        });
        if stop_with_parent {
            tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    wait_stdin_closed().await;
                    tracing::info!("parent gone (stdin closed), shutting down");
                    shutdown.cancel();
                }
            });
        }
        slotway::node::run(config, shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    // The stdin watcher (--stop-with-parent) blocks a thread in a read
    // that only its parent can end: do not wait for it on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => startup_error(&message),
    }
}

/// The file first, then each flag given, `port` before the settings whose
/// defaults follow it.
fn node_config(args: &NodeArgs) -> Result<slotway::node::NodeConfig, String> {
    let mut config = slotway::node::NodeConfig::for_port(6379);
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        config
            .apply_conf(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let flags = [
        ("port", args.port.map(|p| p.to_string())),
        ("bind", args.bind.clone()),
        ("cluster-port", args.cluster_port.map(|p| p.to_string())),
        ("cluster-config-file", args.cluster_config_file.clone()),
        ("dir", args.dir.clone()),
        ("appendonly", args.appendonly.clone()),
        ("appendfsync", args.appendfsync.clone()),
        ("appendfilename", args.appendfilename.clone()),
        ("appenddirname", args.appenddirname.clone()),
        (
            "auto-aof-rewrite-percentage",
            args.auto_aof_rewrite_percentage.clone(),
        ),
        (
            "auto-aof-rewrite-min-size",
            args.auto_aof_rewrite_min_size.clone(),
        ),
        ("aof-load-truncated", args.aof_load_truncated.clone()),
        ("cluster-node-timeout", args.cluster_node_timeout.clone()),
        (
            "cluster-require-full-coverage",
            args.cluster_require_full_coverage.clone(),
        ),
        ("cluster-announce-ip", args.cluster_announce_ip.clone()),
        ("cluster-enabled", args.cluster_enabled.clone()),
        (
            "cluster-replica-validity-factor",
            args.cluster_replica_validity_factor.clone(),
        ),
        (
            "cluster-allow-replica-migration",
            args.cluster_allow_replica_migration.clone(),
        ),
        (
            "cluster-replica-no-failover",
            args.cluster_replica_no_failover.clone(),
        ),
        (
            "cluster-migration-barrier",
            args.cluster_migration_barrier.clone(),
        ),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            config.apply(key, &value).map_err(|e| format!("--{e}"))?;
        }
    }
    Ok(config)
}

/// `--log-level` (already folded into `config.log.level`) wins over
/// `RUST_LOG`, which wins over the file and `SLOTWAY_LOG__LEVEL`.
fn log_filter(config: &ProxyConfig, flag_given: bool) -> Result<EnvFilter, String> {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    match rust_log {
        Some(directives) if !flag_given => {
            EnvFilter::try_new(&directives).map_err(|e| format!("{}: {e}", EnvFilter::DEFAULT_ENV))
        }
        // Validated by ProxyConfig::validate.
        _ => EnvFilter::try_new(&config.log.level).map_err(|e| format!("log.level: {e}")),
    }
}

fn usage_error(message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("slotway: invalid configuration: {message}");
    ExitCode::from(EX_USAGE)
}

fn startup_error(message: &str) -> ExitCode {
    // Plain stderr, like a configuration error; logs go to stderr as well.
    eprintln!("slotway: {message}");
    ExitCode::from(EX_STARTUP)
}

/// Starts the admin endpoint and the proxy; returns when a shutdown signal
/// has stopped both, or with a message when startup fails.
async fn run_proxy(config: Arc<ProxyConfig>) -> Result<(), String> {
    let shutdown = CancellationToken::new();
    // Install the handlers before anything listens, so a signal that comes
    // after "listening" is always a clean shutdown.
    let signals = Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            signals.recv().await;
            shutdown.cancel();
        }
    });

    // No seeds: start the embedded cluster and serve it.
    let mut embedded = None;
    let config = if config.cluster.seeds.is_empty() {
        let cluster = tokio::select! {
            started = slotway::embedded::EmbeddedCluster::start(&config.embedded) => {
                started.map_err(|e| format!("embedded cluster: {e}"))?
            }
            () = shutdown.cancelled() => return Ok(()),
        };
        let mut with_seeds = (*config).clone();
        with_seeds.cluster.seeds = cluster.addrs();
        embedded = Some(cluster);
        Arc::new(with_seeds)
    } else {
        config
    };

    let registry = prometheus::Registry::new();
    // Registered before anything listens, so /metrics lists every family.
    let metrics = slotway::metrics::Metrics::new(&registry)
        .map_err(|e| format!("cannot register metrics: {e}"))?;
    // Flipped by the proxy once its slot map covers every slot.
    let ready = Arc::new(AtomicBool::new(false));

    let admin = tokio::net::TcpListener::bind(config.admin_listen.as_str())
        .await
        .map_err(|e| {
            format!(
                "cannot listen on admin address {}: {e}",
                config.admin_listen
            )
        })?;
    if let Ok(addr) = admin.local_addr() {
        tracing::info!(%addr, "admin endpoint listening");
    }
    let admin = tokio::spawn(slotway::admin::serve(
        admin,
        registry,
        Arc::clone(&ready),
        shutdown.clone().cancelled_owned(),
    ));

    let result = slotway::proxy::run(
        config,
        Arc::new(metrics),
        Arc::clone(&ready),
        shutdown.clone().cancelled_owned(),
    )
    .await;
    shutdown.cancel();
    let _ = admin.await;
    if let Some(mut cluster) = embedded {
        cluster.stop().await;
        tracing::info!("embedded cluster stopped");
    }
    result.map_err(|e| e.to_string())
}

/// SIGINT (Ctrl-C) and SIGTERM, registered up front.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        #[cfg(not(unix))]
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("Ctrl-C received, shutting down"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}
