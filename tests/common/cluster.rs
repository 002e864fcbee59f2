//! A cluster of built-in nodes (`slotway node` processes) on free loopback
//! ports, in one temporary directory: started bare (each node alone), or
//! joined by hand the way `redis-cli --cluster create` joins them (slots,
//! config epochs, MEET, REPLICATE), so that tests of the bus do not depend
//! on INFO. Nodes can be killed and restarted on the same port and
//! directory; every process is SIGKILLed and reaped on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use slotway::cluster::nodes::{self, NodeLine};
use tempfile::TempDir;

use super::builtin::slotway_bin;
use super::client::{Reply, TestClient};
use super::ports::{free_port, release_port};
use super::process;
use super::wait::try_eventually;

/// `--cluster-node-timeout` of the test nodes.
pub const NODE_TIMEOUT_MS: u64 = 2000;
const NODE_START_TIMEOUT: Duration = Duration::from_secs(10);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);
const PORT_ATTEMPTS: usize = 5;
/// How long a cluster joined by hand may take to agree.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// One `slotway node` process.
pub struct BuiltinNode {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl BuiltinNode {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Flags added to a node's command line, by its port.
pub type NodeArgs = Box<dyn Fn(u16) -> Vec<String>>;

/// Built-in nodes sharing one directory (each has its `nodes-<port>.conf`).
pub struct BuiltinCluster {
    nodes: Vec<BuiltinNode>,
    /// Extra flags of every node (an append-only directory of its own...).
    args: NodeArgs,
    // Declared last: dropped after the nodes are gone.
    dir: TempDir,
}

/// redis-cli's split of the slots over `masters` masters (0-5460,
/// 5461-10922, 10923-16383 for three).
pub fn slot_ranges(masters: usize) -> Vec<(u16, u16)> {
    let per = 16384.0 / masters as f64;
    let mut first = 0i64;
    let mut cursor = 0.0;
    let mut out = Vec::new();
    for i in 0..masters {
        let mut last = (cursor + per - 1.0).round() as i64;
        if last > 16383 || i == masters - 1 {
            last = 16383;
        }
        if last < first {
            last = first;
        }
        out.push((first as u16, last as u16));
        first = last + 1;
        cursor += per;
    }
    out
}

impl BuiltinCluster {
    /// `n` nodes, each alone and serving nothing.
    ///
    /// # Panics
    /// When a node does not start.
    pub fn start_bare(n: usize) -> BuiltinCluster {
        BuiltinCluster::start_bare_with(n, |_| Vec::new())
    }

    /// [`BuiltinCluster::start_bare`] with `args(port)` added to each
    /// node's command line.
    ///
    /// # Panics
    /// When a node does not start.
    pub fn start_bare_with(
        n: usize,
        args: impl Fn(u16) -> Vec<String> + 'static,
    ) -> BuiltinCluster {
        let dir = tempfile::Builder::new()
            .prefix("slotway-cluster-")
            .tempdir()
            .expect("create a temporary directory");
        let mut cluster = BuiltinCluster {
            nodes: Vec::with_capacity(n),
            args: Box::new(args),
            dir,
        };
        for _ in 0..n {
            cluster.add_node();
        }
        cluster
    }

    /// `masters` masters with `replicas_per_master` replicas each, joined
    /// as redis-cli joins them, and converged.
    ///
    /// # Panics
    /// When a node does not start or the cluster does not converge.
    pub fn start(masters: usize, replicas_per_master: usize) -> BuiltinCluster {
        BuiltinCluster::start_with(masters, replicas_per_master, |_| Vec::new())
    }

    /// [`BuiltinCluster::start`] with `args(port)` added to each node's
    /// command line.
    ///
    /// # Panics
    /// As [`BuiltinCluster::start`].
    pub fn start_with(
        masters: usize,
        replicas_per_master: usize,
        args: impl Fn(u16) -> Vec<String> + 'static,
    ) -> BuiltinCluster {
        let total = masters * (1 + replicas_per_master);
        let cluster = BuiltinCluster::start_bare_with(total, args);
        for (i, (start, end)) in slot_ranges(masters).into_iter().enumerate() {
            let reply = cluster.client(i).cmd(&[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &start.to_string(),
                &end.to_string(),
            ]);
            reply.expect_ok();
        }
        for i in 0..total {
            let epoch = (i + 1).to_string();
            cluster
                .client(i)
                .cmd(&["CLUSTER", "SET-CONFIG-EPOCH", &epoch])
                .expect_ok();
        }
        let first = cluster.nodes[0].port.to_string();
        for i in 1..total {
            cluster
                .client(i)
                .cmd(&["CLUSTER", "MEET", "127.0.0.1", &first])
                .expect_ok();
        }
        cluster.wait_for(JOIN_TIMEOUT, "every node knows every node", |c| {
            for i in 0..total {
                let info = c.query_text(i, &["CLUSTER", "INFO"])?;
                let known = info_field(&info, "cluster_known_nodes");
                if known != Some(total.to_string().as_str()) {
                    return Err(format!("{}: cluster_known_nodes:{known:?}", c.addr(i)));
                }
            }
            Ok(())
        });
        for i in masters..total {
            let master = (i - masters) % masters;
            let id = cluster.node_id(master);
            cluster
                .client(i)
                .cmd(&["CLUSTER", "REPLICATE", &id])
                .expect_ok();
        }
        cluster.wait_converged(JOIN_TIMEOUT);
        cluster
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The extra flags of nodes started from now on (restarts).
    pub fn set_args(&mut self, args: impl Fn(u16) -> Vec<String> + 'static) {
        self.args = Box::new(args);
    }

    /// The arguments (after the program) node `i` starts with.
    pub fn command_line(&self, i: usize) -> Vec<String> {
        self.node_args(self.nodes[i].port)
    }

    fn node_args(&self, port: u16) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let mut line: Vec<String> = [
            "node",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--cluster-node-timeout",
            &NODE_TIMEOUT_MS.to_string(),
            "--dir",
            &dir,
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        line.extend((self.args)(port));
        line
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &BuiltinNode {
        &self.nodes[i]
    }

    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    pub fn addr(&self, i: usize) -> String {
        self.nodes[i].addr()
    }

    /// `127.0.0.1:<port>` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(BuiltinNode::addr).collect()
    }

    pub fn client(&self, i: usize) -> TestClient {
        TestClient::connect(&self.addr(i))
    }

    /// The index of the node listening on `addr` (`ip:port`).
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr() == addr)
    }

    /// The node's own id (CLUSTER MYID).
    ///
    /// # Panics
    /// When it does not answer.
    pub fn node_id(&self, i: usize) -> String {
        self.query_text(i, &["CLUSTER", "MYID"])
            .unwrap_or_else(|e| panic!("CLUSTER MYID: {e}"))
    }

    /// CLUSTER NODES of node `i`, parsed.
    ///
    /// # Panics
    /// When it does not answer.
    pub fn nodes_view(&self, i: usize) -> Vec<NodeLine> {
        nodes::parse(
            &self
                .query_text(i, &["CLUSTER", "NODES"])
                .unwrap_or_else(|e| panic!("CLUSTER NODES: {e}")),
        )
    }

    /// One command to node `i` with a short timeout; an error reply is an
    /// `Err` too.
    ///
    /// # Errors
    /// The connection error or the error reply, with the node's address.
    pub fn query(&self, i: usize, args: &[&str]) -> Result<Reply, String> {
        let addr = self.addr(i);
        let mut client =
            TestClient::try_connect(&addr).map_err(|e| format!("{addr}: connect: {e}"))?;
        client.set_timeout(QUERY_TIMEOUT);
        match client.try_cmd(args) {
            Ok(Reply::Error(e)) => Err(format!("{addr}: {args:?}: -{e}")),
            Ok(reply) => Ok(reply),
            Err(e) => Err(format!("{addr}: {args:?}: {e}")),
        }
    }

    /// [`BuiltinCluster::query`] for a text reply.
    ///
    /// # Errors
    /// As `query`, or when the reply is not text.
    pub fn query_text(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let reply = self.query(i, args)?;
        reply
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: {args:?}: not text: {reply:?}", self.addr(i)))
    }

    /// SIGKILLs node `i`; its directory stays for [`BuiltinCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    /// Starts node `i` again on its port and directory, SIGKILLing it first
    /// if it runs; returns once it answers PING.
    ///
    /// # Panics
    /// When it does not start.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let port = self.nodes[i].port;
        let child = self
            .spawn(port)
            .unwrap_or_else(|e| panic!("restart node {port}: {e}"));
        self.nodes[i].child = Some(child);
        if let Err(why) = self.wait_up(i) {
            panic!("restarted node {port}: {why}\n{}", self.log_tail(i, 30));
        }
    }

    /// Waits until `check` holds, panicking with the logs otherwise.
    ///
    /// # Panics
    /// When it does not hold within `timeout`.
    #[track_caller]
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&BuiltinCluster) -> Result<(), String>,
    ) {
        if let Err(why) = try_eventually(timeout, POLL, || check(self)) {
            panic!(
                "not true within {timeout:?}: {what}: {why}\n{}",
                self.logs_tail(15)
            );
        }
    }

    /// Waits until every running node reports `cluster_state:ok`, knows
    /// every node, and all of them agree on every node's role, master and
    /// slots, with no running node flagged failing or unreachable.
    ///
    /// # Panics
    /// When that does not happen within `timeout`.
    #[track_caller]
    pub fn wait_converged(&self, timeout: Duration) {
        self.wait_for(
            timeout,
            "the cluster converges",
            BuiltinCluster::check_converged,
        );
    }

    /// Ok when the running nodes have converged (see
    /// [`BuiltinCluster::wait_converged`]).
    ///
    /// # Errors
    /// What is not converged yet.
    pub fn check_converged(&self) -> Result<(), String> {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        let mut reference: Option<(usize, Vec<String>)> = None;
        for &i in &running {
            let info = self.query_text(i, &["CLUSTER", "INFO"])?;
            let state = info_field(&info, "cluster_state");
            if state != Some("ok") {
                return Err(format!("{}: cluster_state:{state:?}", self.addr(i)));
            }
            let known = info_field(&info, "cluster_known_nodes");
            if known != Some(self.nodes.len().to_string().as_str()) {
                return Err(format!("{}: cluster_known_nodes:{known:?}", self.addr(i)));
            }
            let view = nodes::parse(&self.query_text(i, &["CLUSTER", "NODES"])?);
            for line in &view {
                let live = self
                    .index_of(&line.addr)
                    .is_some_and(|j| self.nodes[j].is_running());
                if live && (line.failed || line.suspected || line.unusable || !line.connected) {
                    return Err(format!("{} sees {} as {line:?}", self.addr(i), line.addr));
                }
            }
            let signature = signature(&view);
            match &reference {
                Some((first, seen)) if *seen != signature => {
                    return Err(format!(
                        "{} and {} disagree:\n{seen:#?}\n{signature:#?}",
                        self.addr(*first),
                        self.addr(i)
                    ));
                }
                Some(_) => {}
                None => reference = Some((i, signature)),
            }
        }
        Ok(())
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        process::tail(&self.nodes[i].log, lines)
    }

    /// Every node's log tail, each under a header.
    pub fn logs_tail(&self, lines: usize) -> String {
        (0..self.nodes.len())
            .map(|i| {
                format!(
                    "--- slotway node {} ---\n{}\n",
                    self.addr(i),
                    self.log_tail(i, lines)
                )
            })
            .collect()
    }

    fn add_node(&mut self) {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let child = self
                .spawn(port)
                .unwrap_or_else(|e| panic!("spawn slotway node: {e}"));
            self.nodes.push(BuiltinNode {
                port,
                child: Some(child),
                log: self.log_path(port),
            });
            let i = self.nodes.len() - 1;
            match self.wait_up(i) {
                Ok(()) => return,
                Err(why) => {
                    last = format!("{why}\n{}", self.log_tail(i, 20));
                    self.kill(i);
                    self.nodes.pop();
                    release_port(port);
                }
            }
        }
        panic!("no slotway node started after {PORT_ATTEMPTS} ports; last: {last}");
    }

    fn log_path(&self, port: u16) -> PathBuf {
        self.dir.path().join(format!("slotway-{port}.log"))
    }

    fn spawn(&self, port: u16) -> std::io::Result<Child> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(port))?;
        Command::new(slotway_bin())
            .args(self.node_args(port))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    fn wait_up(&mut self, i: usize) -> Result<(), String> {
        let addr = self.addr(i);
        try_eventually(NODE_START_TIMEOUT, Duration::from_millis(20), || {
            let node = &mut self.nodes[i];
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                node.child = None;
                return Ok(Err(format!("slotway node on {addr} exited: {status}")));
            }
            let mut client = TestClient::try_connect(&addr).map_err(|e| e.to_string())?;
            client.set_timeout(QUERY_TIMEOUT);
            match client.try_cmd(&["PING"]) {
                Ok(Reply::Simple(s)) if s == "PONG" => Ok(Ok(())),
                other => Err(format!("PING: {other:?}")),
            }
        })
        .and_then(|r| r)
    }
}

impl Drop for BuiltinCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                process::kill_and_reap(&mut child);
            }
            release_port(node.port);
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs_tail(30));
        }
    }
}

/// What all nodes must agree on: each node's id, role, master and slots.
fn signature(view: &[NodeLine]) -> Vec<String> {
    let mut lines: Vec<String> = view
        .iter()
        .map(|n| {
            format!(
                "{} {} {} {} {:?}",
                n.id,
                n.addr,
                if n.master { "master" } else { "replica" },
                n.master_id.as_deref().unwrap_or("-"),
                n.slots
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The value of `name:value` in an INFO-style text.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// A lone built-in node and a lone `redis-server --cluster-enabled yes`
/// side by side, for comparing CLUSTER replies. Node ids and ports differ,
/// so [`LonePair::both`] writes `$ME`/`$PORT`/`$CPORT` in arguments and
/// replies for each side's own.
pub struct LonePair {
    pub ours: BuiltinCluster,
    theirs: Option<Child>,
    theirs_port: u16,
    ours_id: String,
    theirs_id: String,
    _dir: TempDir,
}

impl LonePair {
    /// # Panics
    /// When either server does not start.
    pub fn start(bins: &super::bins::RedisBins) -> LonePair {
        let ours = BuiltinCluster::start_bare(1);
        let dir = tempfile::Builder::new()
            .prefix("slotway-lone-redis-")
            .tempdir()
            .expect("create a temporary directory");
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log_path = dir.path().join(format!("redis-{port}.log"));
            let log = File::create(&log_path).expect("create a log file");
            let mut child = Command::new(&bins.server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--logfile", ""])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .arg("--dir")
                .arg(dir.path())
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log"))
                .stderr(log)
                .spawn()
                .expect("spawn redis-server");
            let addr = format!("127.0.0.1:{port}");
            let up = try_eventually(NODE_START_TIMEOUT, Duration::from_millis(20), || {
                if let Ok(Some(status)) = child.try_wait() {
                    return Ok(Err(format!("exited: {status}")));
                }
                let mut c = TestClient::try_connect(&addr).map_err(|e| e.to_string())?;
                c.try_cmd(&["PING"])
                    .map(|_| Ok(()))
                    .map_err(|e| e.to_string())
            })
            .and_then(|r| r);
            match up {
                Ok(()) => {
                    let ours_id = ours.node_id(0);
                    let theirs_id = TestClient::connect(&addr)
                        .cmd(&["CLUSTER", "MYID"])
                        .expect_str()
                        .to_string();
                    return LonePair {
                        ours,
                        theirs: Some(child),
                        theirs_port: port,
                        ours_id,
                        theirs_id,
                        _dir: dir,
                    };
                }
                Err(why) => {
                    last = format!("{why}\n{}", process::tail(&log_path, 20));
                    process::kill_and_reap(&mut child);
                    release_port(port);
                }
            }
        }
        panic!("redis-server did not start: {last}");
    }

    pub fn theirs_client(&self) -> TestClient {
        TestClient::connect(&format!("127.0.0.1:{}", self.theirs_port))
    }

    fn subst(args: &[&str], id: &str, port: u16) -> Vec<String> {
        args.iter()
            .map(|a| {
                a.replace("$ME", id)
                    .replace("$CPORT", &(port + 10000).to_string())
                    .replace("$PORT", &port.to_string())
            })
            .collect()
    }

    fn unsubst(reply: Reply, id: &str, port: u16) -> Reply {
        let fix = |s: &str| {
            s.replace(id, "$ME")
                .replace(&(port + 10000).to_string(), "$CPORT")
                .replace(&port.to_string(), "$PORT")
        };
        match reply {
            Reply::Simple(s) => Reply::Simple(fix(&s)),
            Reply::Error(s) => Reply::Error(fix(&s)),
            Reply::Int(n) if n == i64::from(port) => Reply::Simple("$PORT".into()),
            Reply::Bulk(Some(b)) => {
                Reply::Bulk(Some(fix(&String::from_utf8_lossy(&b)).into_bytes()))
            }
            Reply::Array(Some(items)) => Reply::Array(Some(
                items
                    .into_iter()
                    .map(|r| Self::unsubst(r, id, port))
                    .collect(),
            )),
            other => other,
        }
    }

    /// Sends `args` to both (with `$ME`, `$PORT`, `$CPORT` filled in for
    /// each); returns (ours, theirs) with their own id and ports written
    /// back as those placeholders.
    pub fn both(&self, args: &[&str]) -> (Reply, Reply) {
        let our_port = self.ours.port(0);
        let ours = self
            .ours
            .client(0)
            .cmd_bytes(&Self::subst(args, &self.ours_id, our_port));
        let theirs =
            self.theirs_client()
                .cmd_bytes(&Self::subst(args, &self.theirs_id, self.theirs_port));
        (
            Self::unsubst(ours, &self.ours_id, our_port),
            Self::unsubst(theirs, &self.theirs_id, self.theirs_port),
        )
    }

    /// [`LonePair::both`], asserting the replies are identical.
    ///
    /// # Panics
    /// When they differ.
    #[track_caller]
    pub fn same(&self, args: &[&str]) -> Reply {
        let (ours, theirs) = self.both(args);
        assert_eq!(ours, theirs, "replies differ for {args:?}");
        ours
    }
}

impl Drop for LonePair {
    fn drop(&mut self) {
        if let Some(mut child) = self.theirs.take() {
            process::kill_and_reap(&mut child);
        }
        release_port(self.theirs_port);
    }
}
