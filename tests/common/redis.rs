//! Real `redis-server` cluster nodes as child processes: find the binaries,
//! start a cluster on free loopback ports in a temporary directory, ask it
//! who owns what, break it (kill, stop, restart) and move slots.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use slotway::cluster::key_slot;
use slotway::cluster::nodes::{self, NodeLine};
use tempfile::TempDir;

use super::bins::RedisBins;
use super::client::{Reply, TestClient};
use super::ports::{free_port, release_port};
use super::process;
use super::wait::try_eventually;

/// `--cluster-node-timeout` of test clusters: short, so that a killed master
/// is replaced within a few seconds, yet long enough that a busy 2-core
/// machine does not fail nodes over by itself.
pub const DEFAULT_NODE_TIMEOUT_MS: u64 = 2000;
/// How long a new cluster may take to agree on everything.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one node may take to answer PING after it is spawned.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `redis-cli --cluster create` may run.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Ports tried per node before giving up (another process may take a port
/// between the probe and redis-server's bind).
const PORT_ATTEMPTS: usize = 5;
/// Timeout of the helpers' own queries, so a stopped node cannot stall them.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

/// A search for a hash tag, `t<n>`, whose slot is `slot`: keys `{t<n>}...`
/// all land there.
///
/// # Panics
/// Never in practice (every slot is hit within a few hundred thousand tries).
pub fn hash_tag_for_slot(slot: u16) -> String {
    (0..2_000_000u32)
        .map(|i| format!("t{i}"))
        .find(|tag| key_slot(tag.as_bytes()) == slot)
        .unwrap_or_else(|| panic!("no hash tag found for slot {slot}"))
}

/// The server a test cluster's nodes run: the same tests prove the proxy
/// against both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Debian's `redis-server` 7.
    Redis,
    /// Slotway's own `slotway node`.
    Builtin,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Redis => "redis-server",
            Backend::Builtin => "slotway node",
        }
    }
}

/// How to start a [`RedisCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Which server the nodes run.
    pub backend: Backend,
    /// At least 3 (`redis-cli --cluster create` refuses fewer).
    pub masters: usize,
    pub replicas_per_master: usize,
    pub node_timeout_ms: u64,
    /// Appended to every node's command line (`["--maxmemory", "10mb"]`).
    pub extra_args: Vec<String>,
    /// Every node keeps an append-only file (`appendfsync everysec`), each
    /// in a directory of its own, so a restart brings its data back.
    pub appendonly: bool,
    /// How long the new cluster may take to agree on everything.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            backend: Backend::Redis,
            masters: 3,
            replicas_per_master: 1,
            node_timeout_ms: DEFAULT_NODE_TIMEOUT_MS,
            extra_args: Vec::new(),
            appendonly: false,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// One `redis-server` process of a [`RedisCluster`].
pub struct RedisNode {
    port: u16,
    child: Option<Child>,
    stopped: bool,
    log: PathBuf,
}

impl RedisNode {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id, unless the node was killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Started by us, not killed since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Running and not stopped with SIGSTOP: it can answer.
    pub fn is_live(&self) -> bool {
        self.child.is_some() && !self.stopped
    }

    /// The node's log file (its stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// The slot ranges of one node's `CLUSTER SLOTS`, by port: what "all nodes
/// agree on the slot map" compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    master: u16,
    /// Sorted: nodes need not list replicas in the same order.
    replicas: Vec<u16>,
}

/// A Redis Cluster of real `redis-server` processes on free loopback ports,
/// all working in one temporary directory. Every node is SIGKILLed and reaped
/// on drop.
pub struct RedisCluster {
    bins: RedisBins,
    opts: ClusterOptions,
    nodes: Vec<RedisNode>,
    // Declared last: dropped after the nodes are gone.
    dir: TempDir,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas_per_master` replicas each and
    /// waits until every node reports `cluster_state:ok`, all agree on the
    /// slot map, and every replica's link to its master is up.
    ///
    /// # Panics
    /// When the binaries are missing (call `require_redis()` first), or the
    /// cluster does not form in time; the message carries the logs.
    pub fn start(masters: usize, replicas_per_master: usize) -> RedisCluster {
        RedisCluster::start_with(ClusterOptions {
            masters,
            replicas_per_master,
            ..ClusterOptions::default()
        })
    }

    /// [`RedisCluster::start`] with nodes of `backend`.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    pub fn start_on(backend: Backend, masters: usize, replicas_per_master: usize) -> RedisCluster {
        RedisCluster::start_with(ClusterOptions {
            backend,
            masters,
            replicas_per_master,
            ..ClusterOptions::default()
        })
    }

    /// [`RedisCluster::start`] with every option.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    pub fn start_with(opts: ClusterOptions) -> RedisCluster {
        assert!(
            opts.masters >= 3,
            "redis-cli --cluster create needs at least 3 masters"
        );
        let total = opts.masters * (1 + opts.replicas_per_master);
        let cluster = RedisCluster::spawn(opts, total);
        cluster.create();
        let expect_replicas = Some(cluster.opts.replicas_per_master);
        if let Err(why) = try_eventually(cluster.opts.ready_timeout, POLL, || {
            cluster.check_converged(expect_replicas)
        }) {
            panic!(
                "cluster did not converge within {:?}: {why}\n{}",
                cluster.opts.ready_timeout,
                cluster.logs_tail(10)
            );
        }
        cluster
    }

    /// Starts `count` cluster-enabled nodes that know nobody and own no
    /// slot, for tests of the tools that join nodes into a cluster. The
    /// nodes answer PING; nothing else is waited for.
    ///
    /// # Panics
    /// As [`RedisCluster::start`], except that nothing is created.
    pub fn start_bare(count: usize) -> RedisCluster {
        RedisCluster::start_bare_with(count, ClusterOptions::default())
    }

    /// [`RedisCluster::start_bare`] with node options; `masters` and
    /// `replicas_per_master` are not used (whoever creates the cluster
    /// decides).
    ///
    /// # Panics
    /// As [`RedisCluster::start_bare`].
    pub fn start_bare_with(count: usize, opts: ClusterOptions) -> RedisCluster {
        RedisCluster::spawn(opts, count)
    }

    /// Spawns `count` nodes in a new temporary directory, each answering
    /// PING, none joined.
    fn spawn(opts: ClusterOptions, count: usize) -> RedisCluster {
        let bins =
            RedisBins::locate().unwrap_or_else(|m| panic!("{m}: call require_redis() first"));
        let dir = tempfile::Builder::new()
            .prefix("slotway-redis-")
            .tempdir()
            .expect("create a temporary directory");
        // The cluster owns every node from the first spawn on, so a panic
        // below still kills the ones already started.
        let mut cluster = RedisCluster {
            bins,
            opts,
            nodes: Vec::with_capacity(count),
            dir,
        };
        for _ in 0..count {
            cluster.add_node();
        }
        cluster
    }

    /// The `redis-cli` binary the nodes were started with.
    pub fn cli_bin(&self) -> &Path {
        &self.bins.cli
    }

    /// Node addresses, one argument each (for `--cluster create`).
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::addr).collect()
    }

    /// The temporary directory holding `nodes-<port>.conf` and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// Every node started, in start order (killed ones included).
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// The ports of every node started.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisNode::port).collect()
    }

    /// # Panics
    /// When no node of this cluster listens on `port`.
    pub fn node(&self, port: u16) -> &RedisNode {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn node_mut(&mut self, port: u16) -> &mut RedisNode {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...` for every node: the proxy's `--seeds`.
    pub fn seeds_arg(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(RedisNode::addr).collect();
        addrs.join(",")
    }

    /// A new client connected to the node on `port`.
    ///
    /// # Panics
    /// When the connection fails.
    pub fn client(&self, port: u16) -> TestClient {
        TestClient::connect(&format!("127.0.0.1:{port}"))
    }

    /// The ports of the masters that own slots now, sorted, as the first node
    /// that answers sees them (masters flagged `fail` left out).
    ///
    /// # Panics
    /// When no live node answers.
    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .cluster_nodes_view(None)
            .iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .filter_map(|n| port_of(&n.addr))
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The ports of the replicas of the master on `master_port` that are not
    /// flagged `fail`, sorted.
    ///
    /// # Panics
    /// When no live node answers or none knows `master_port`.
    pub fn replicas_of(&self, master_port: u16) -> Vec<u16> {
        let view = self.cluster_nodes_view(None);
        let addr = format!("127.0.0.1:{master_port}");
        let id = view
            .iter()
            .find(|n| n.addr == addr)
            .map(|n| n.id.clone())
            .unwrap_or_else(|| panic!("no node knows {addr}"));
        let mut ports: Vec<u16> = view
            .iter()
            .filter(|n| n.master_id.as_deref() == Some(id.as_str()) && !n.failed)
            .filter_map(|n| port_of(&n.addr))
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The master that every live node names as the owner of `slot`; `None`
    /// while they disagree, or when none answers.
    pub fn master_for_slot(&self, slot: u16) -> Option<u16> {
        let mut owner = None;
        for port in self.live_ports() {
            let map = self.try_slot_map(port).ok()?;
            let here = map
                .iter()
                .find(|r| (r.start..=r.end).contains(&slot))?
                .master;
            if owner.is_some_and(|o| o != here) {
                return None;
            }
            owner = Some(here);
        }
        owner
    }

    /// The `CLUSTER NODES` line of the node on `port`, as it sees itself if
    /// it is live, else as the first live node sees it.
    pub fn node_for_port(&self, port: u16) -> Option<NodeLine> {
        let addr = format!("127.0.0.1:{port}");
        let from = self.nodes.iter().any(|n| n.port == port && n.is_live());
        self.cluster_nodes_view(from.then_some(port))
            .into_iter()
            .find(|n| n.addr == addr)
    }

    /// The cluster node id of the node on `port`.
    ///
    /// # Panics
    /// When no live node knows it.
    pub fn node_id(&self, port: u16) -> String {
        self.node_for_port(port)
            .unwrap_or_else(|| panic!("no node knows 127.0.0.1:{port}"))
            .id
    }

    /// SIGKILLs the node on `port` and reaps it. Its files stay for
    /// [`RedisCluster::restart`].
    pub fn kill(&mut self, port: u16) {
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            process::kill_and_reap(&mut child);
        }
        node.stopped = false;
    }

    /// SIGSTOPs the node on `port`: its sockets stay open, it answers nothing
    /// (a hung master).
    ///
    /// # Panics
    /// When the node is not running or the signal fails.
    pub fn stop(&mut self, port: u16) {
        let node = self.node_mut(port);
        let pid = node
            .pid()
            .unwrap_or_else(|| panic!("node {port} is not running"));
        assert!(process::signal(pid, "STOP"), "SIGSTOP {pid}");
        node.stopped = true;
        // Delivery is asynchronous; wait until the kernel shows it stopped.
        let stat = format!("/proc/{pid}/stat");
        if Path::new(&stat).exists() {
            let _ = try_eventually(Duration::from_secs(2), Duration::from_millis(5), || {
                std::fs::read_to_string(&stat)
                    .ok()
                    .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
                    .unwrap_or(false)
            });
        }
    }

    /// SIGCONTs a node stopped by [`RedisCluster::stop`].
    ///
    /// # Panics
    /// When the node is not running or the signal fails.
    pub fn cont(&mut self, port: u16) {
        let node = self.node_mut(port);
        let pid = node
            .pid()
            .unwrap_or_else(|| panic!("node {port} is not running"));
        assert!(process::signal(pid, "CONT"), "SIGCONT {pid}");
        node.stopped = false;
    }

    /// Starts the node on `port` again (SIGKILLing it first if it runs), with
    /// the same directory and `nodes-<port>.conf`, so it rejoins with its old
    /// identity. Its data is gone unless the cluster keeps an append-only
    /// file (`appendonly`): a former master comes
    /// back and is demoted to a replica of whoever took its slots. Returns
    /// once it answers PING; use [`RedisCluster::wait_converged`] to wait for
    /// the cluster.
    ///
    /// # Panics
    /// When it does not start.
    pub fn restart(&mut self, port: u16) {
        self.kill(port);
        let child = self
            .spawn_node(port)
            .unwrap_or_else(|e| panic!("restart node {port}: {e}"));
        self.node_mut(port).child = Some(child);
        if let Err(why) = self.wait_node_up(port) {
            panic!("restarted node {port}: {why}\n{}", self.log_tail(port, 20));
        }
    }

    /// Waits until every live node reports `cluster_state:ok` and knows every
    /// node, all live nodes agree on the slot map and flag no live node as
    /// failing, and every live replica's master link is up.
    ///
    /// # Panics
    /// When that does not happen within `timeout`.
    #[track_caller]
    pub fn wait_converged(&self, timeout: Duration) {
        if let Err(why) = try_eventually(timeout, POLL, || self.check_converged(None)) {
            panic!("cluster did not converge within {timeout:?}: {why}");
        }
    }

    /// The last `lines` lines of the log of the node on `port`.
    pub fn log_tail(&self, port: u16, lines: usize) -> String {
        process::tail(self.node(port).log_path(), lines)
    }

    /// The tail of every node's log, each under a header.
    pub fn logs_tail(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- redis {} ---\n{}\n",
                    n.port,
                    self.log_tail(n.port, lines)
                )
            })
            .collect()
    }

    /// Spawns a node on a free port and waits for PING; tries other ports if
    /// redis-server cannot bind the one it got.
    fn add_node(&mut self) {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let child = match self.spawn_node(port) {
                Ok(child) => child,
                Err(e) => panic!("spawn {}: {e}", self.bins.server.display()),
            };
            self.nodes.push(RedisNode {
                port,
                child: Some(child),
                stopped: false,
                log: self.node_log(port),
            });
            match self.wait_node_up(port) {
                Ok(()) => return,
                Err(why) => {
                    last = format!("{why}\n{}", self.log_tail(port, 10));
                    self.kill(port);
                    self.nodes.pop();
                    release_port(port);
                }
            }
        }
        panic!("no redis-server node started after {PORT_ATTEMPTS} ports; last: {last}");
    }

    fn node_log(&self, port: u16) -> PathBuf {
        self.dir.path().join(format!("redis-{port}.log"))
    }

    fn spawn_node(&self, port: u16) -> std::io::Result<Child> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.node_log(port))?;
        let mut command = match self.opts.backend {
            Backend::Redis => self.redis_server_command(port),
            Backend::Builtin => self.builtin_node_command(port),
        };
        if self.opts.appendonly {
            command
                .args(["--appendonly", "yes", "--appendfsync", "everysec"])
                .args(["--appenddirname", &format!("appendonlydir-{port}")]);
        }
        command
            .args(&self.opts.extra_args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    /// `slotway node` with the flags redis-server takes for the same job.
    fn builtin_node_command(&self, port: u16) -> Command {
        let mut command = Command::new(super::builtin::slotway_bin());
        command
            .arg("node")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args([
                "--cluster-node-timeout",
                &self.opts.node_timeout_ms.to_string(),
            ])
            // As redis-server below.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-allow-replica-migration", "no"]);
        command
    }

    /// `redis-server` as a cluster node.
    fn redis_server_command(&self, port: u16) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(&self.bins.server);
        command
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--daemonize", "no", "--logfile", ""])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args([
                "--cluster-node-timeout",
                &self.opts.node_timeout_ms.to_string(),
            ])
            // A replica may always take over, however long its link was
            // down, and replicas stay with the master they were given.
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-allow-replica-migration", "no"])
            // Full syncs start at once rather than after the default 5 s
            // wait for more replicas: a new cluster is ready seconds sooner.
            .args(["--repl-diskless-sync-delay", "0"])
            // CLUSTER SLOTS lists a replica only once its replication offset
            // is non-zero, which on an idle master takes until the master's
            // first ping down the link (every 10 s by default).
            .args(["--repl-ping-replica-period", "1"])
            .args(["--enable-debug-command", "local"]);
        command
    }

    /// Waits for PING on `port`, failing early if the process exits.
    fn wait_node_up(&mut self, port: u16) -> Result<(), String> {
        let addr = format!("127.0.0.1:{port}");
        try_eventually(NODE_START_TIMEOUT, Duration::from_millis(20), || {
            let node = self.node_mut(port);
            let exited = node.child.as_mut().map(Child::try_wait);
            if let Some(Ok(Some(status))) = exited {
                node.child = None;
                return Ok(Err(format!("redis-server on {port} exited: {status}")));
            }
            let mut client = TestClient::try_connect(&addr).map_err(|e| e.to_string())?;
            client.set_timeout(QUERY_TIMEOUT);
            match client.try_cmd(&["PING"]) {
                Ok(Reply::Simple(s)) if s == "PONG" => Ok(Ok(())),
                other => Err(format!("PING: {other:?}")),
            }
        })
        .and_then(|exited| exited)
    }

    /// `redis-cli --cluster create` over every node.
    fn create(&self) {
        let out = self.dir.path().join("cluster-create.log");
        let file = File::create(&out).expect("create cluster-create.log");
        let mut child = Command::new(&self.bins.cli)
            .args(["--cluster", "create"])
            .args(self.nodes.iter().map(RedisNode::addr))
            .args([
                "--cluster-replicas",
                &self.opts.replicas_per_master.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bins.cli.display()));
        let status = process::wait_exit(&mut child, CREATE_TIMEOUT);
        if status.is_none() {
            process::kill_and_reap(&mut child);
        }
        if !status.is_some_and(|s| s.success()) {
            panic!(
                "redis-cli --cluster create failed ({status:?}):\n{}\n{}",
                process::tail(&out, 40),
                self.logs_tail(10)
            );
        }
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_live())
            .map(RedisNode::port)
            .collect()
    }

    fn query(&self, port: u16, args: &[&str]) -> Result<Reply, String> {
        let mut client = TestClient::try_connect(&format!("127.0.0.1:{port}"))
            .map_err(|e| format!("{port}: connect: {e}"))?;
        client.set_timeout(QUERY_TIMEOUT);
        match client.try_cmd(args) {
            Ok(Reply::Error(e)) => Err(format!("{port}: {args:?}: -{e}")),
            Ok(reply) => Ok(reply),
            Err(e) => Err(format!("{port}: {args:?}: {e}")),
        }
    }

    fn query_text(&self, port: u16, args: &[&str]) -> Result<String, String> {
        let reply = self.query(port, args)?;
        reply
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{port}: {args:?}: not text: {reply:?}"))
    }

    /// `CLUSTER NODES` from `port`, or from the first live node that answers.
    fn cluster_nodes_view(&self, from: Option<u16>) -> Vec<NodeLine> {
        let ports = from.map_or_else(|| self.live_ports(), |p| vec![p]);
        let mut errors = Vec::new();
        for port in ports {
            match self.query_text(port, &["CLUSTER", "NODES"]) {
                Ok(text) => return nodes::parse(&text),
                Err(e) => errors.push(e),
            }
        }
        panic!("no live node answered CLUSTER NODES: {errors:?}");
    }

    fn try_slot_map(&self, port: u16) -> Result<Vec<SlotRange>, String> {
        let reply = self.query(port, &["CLUSTER", "SLOTS"])?;
        let bad = || format!("{port}: unexpected CLUSTER SLOTS reply {reply:?}");
        let node_port = |node: &Reply| -> Option<u16> {
            let fields = node.as_array()?;
            u16::try_from(fields.get(1)?.as_int()?).ok()
        };
        let mut map = Vec::new();
        for entry in reply.as_array().ok_or_else(bad)? {
            let fields = entry.as_array().ok_or_else(bad)?;
            let (Some(start), Some(end), Some(master)) = (
                fields.first().and_then(Reply::as_int),
                fields.get(1).and_then(Reply::as_int),
                fields.get(2).and_then(node_port),
            ) else {
                return Err(bad());
            };
            let mut replicas: Vec<u16> = fields.iter().skip(3).filter_map(node_port).collect();
            replicas.sort_unstable();
            map.push(SlotRange {
                start: u16::try_from(start).map_err(|_| bad())?,
                end: u16::try_from(end).map_err(|_| bad())?,
                master,
                replicas,
            });
        }
        map.sort_by_key(|r| r.start);
        Ok(map)
    }

    /// Ok when the live nodes have converged (see
    /// [`RedisCluster::wait_converged`]); with `expect_replicas`, every slot
    /// range must also list that many replicas.
    fn check_converged(&self, expect_replicas: Option<usize>) -> Result<(), String> {
        let live = self.live_ports();
        let mut reference: Option<(u16, Vec<SlotRange>)> = None;
        for &port in &live {
            let info = self.query_text(port, &["CLUSTER", "INFO"])?;
            let state = info_field(&info, "cluster_state");
            if state != Some("ok") {
                return Err(format!("{port}: cluster_state:{state:?}"));
            }
            let known = info_field(&info, "cluster_known_nodes");
            if known != Some(self.nodes.len().to_string().as_str()) {
                return Err(format!("{port}: cluster_known_nodes:{known:?}"));
            }
            let map = self.try_slot_map(port)?;
            match &reference {
                Some((first, seen)) if *seen != map => {
                    return Err(format!(
                        "slot maps differ: {first} sees {seen:?}, {port} sees {map:?}"
                    ));
                }
                Some(_) => {}
                None => reference = Some((port, map)),
            }
            let view = nodes::parse(&self.query_text(port, &["CLUSTER", "NODES"])?);
            for line in &view {
                let flagged = line.failed || line.suspected || line.unusable;
                let is_live = port_of(&line.addr).is_some_and(|p| live.contains(&p));
                if flagged && (is_live || line.unusable) {
                    return Err(format!("{port} flags {} as failing or unusable", line.addr));
                }
            }
            let me = view.iter().find(|n| n.myself).ok_or("no myself line")?;
            if !me.master {
                let replication = self.query_text(port, &["INFO", "replication"])?;
                let link = info_field(&replication, "master_link_status");
                if link != Some("up") {
                    return Err(format!("{port}: master_link_status:{link:?}"));
                }
            }
        }
        let (first, map) = reference.ok_or("no live node")?;
        if let Some(want) = expect_replicas {
            match self.opts.backend {
                Backend::Redis => {
                    if let Some(range) = map.iter().find(|r| r.replicas.len() != want) {
                        return Err(format!("want {want} replicas per master, have {range:?}"));
                    }
                }
                // Like redis-server 7.0, a built-in node lists a replica in
                // CLUSTER SLOTS only once it has replicated something, and
                // built-in nodes do not replicate yet: count the roles in
                // CLUSTER NODES instead.
                Backend::Builtin => {
                    let view = nodes::parse(&self.query_text(first, &["CLUSTER", "NODES"])?);
                    for master in view.iter().filter(|n| n.master && !n.slots.is_empty()) {
                        let replicas = view
                            .iter()
                            .filter(|n| n.master_id.as_deref() == Some(master.id.as_str()))
                            .count();
                        if replicas != want {
                            return Err(format!(
                                "want {want} replicas per master, {} has {replicas}",
                                master.addr
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                process::kill_and_reap(&mut child);
            }
            release_port(node.port);
        }
    }
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')?.1.parse().ok()
}

/// The value of `name:value` in an INFO-style text.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}
