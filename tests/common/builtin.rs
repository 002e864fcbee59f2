//! One built-in node (`slotway node`) serving every slot on its own, and a
//! [`NodePair`]: that node next to a plain `redis-server`, so a test can send
//! both the same command and compare the replies byte for byte.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::bins::RedisBins;
use super::client::{Reply, TestClient};
use super::ports::{free_port, release_port};
use super::process;
use super::wait::try_eventually;

const START_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
const PORT_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;

/// The `slotway` binary built for this test run.
pub fn slotway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_slotway"))
}

/// A child process answering PING on a loopback port; SIGKILLed on drop.
pub struct ServerProcess {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `program args... <port flag>` on a free port (retrying another
    /// port if the bind loses a race) and waits until it answers PING.
    ///
    /// # Panics
    /// When it never answers; the message carries its log.
    fn spawn(
        program: &PathBuf,
        args: &[String],
        dir: &std::path::Path,
        name: &str,
    ) -> ServerProcess {
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = dir.join(format!("{name}-{port}.log"));
            let out = File::create(&log).expect("create a log file");
            let err = out.try_clone().expect("clone the log file");
            let mut cmd = Command::new(program);
            cmd.args(args)
                .args(["--port", &port.to_string()])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let child = cmd.spawn().expect("spawn the server");
            let mut server = ServerProcess {
                child: Some(child),
                port,
                log,
            };
            match server.wait_ping() {
                Ok(()) => return server,
                Err(why) => {
                    last_log = format!("{why}\n{}", process::tail(&server.log, LOG_TAIL_LINES));
                    drop(server);
                }
            }
        }
        panic!("{name} did not start: {last_log}");
    }

    /// Spawns `program` with exactly `args` (its port after `--port`) and
    /// waits until it answers PING.
    ///
    /// # Panics
    /// When `--port` is missing or it never answers.
    pub fn spawn_args(
        program: &PathBuf,
        args: &[String],
        dir: &std::path::Path,
        name: &str,
    ) -> ServerProcess {
        let port: u16 = args
            .iter()
            .position(|a| a == "--port")
            .and_then(|i| args.get(i + 1))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no --port in {args:?}"));
        let log = dir.join(format!("{name}-{port}.log"));
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the server");
        let mut server = ServerProcess {
            child: Some(child),
            port,
            log,
        };
        if let Err(why) = server.wait_ping() {
            panic!(
                "{name} on {port} did not start: {why}\n{}",
                server.log_tail()
            );
        }
        server
    }

    fn wait_ping(&mut self) -> Result<(), String> {
        try_eventually(START_TIMEOUT, POLL, || {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Ok(Err(format!("exited with {status}")));
                }
            }
            let mut c = TestClient::try_connect(&self.addr()).map_err(|e| e.to_string())?;
            c.try_cmd(&["PING"])
                .map(|_| Ok(()))
                .map_err(|e| e.to_string())
        })
        .and_then(|r| r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn client(&self) -> TestClient {
        TestClient::connect(&self.addr())
    }

    pub fn log_tail(&self) -> String {
        process::tail(&self.log, LOG_TAIL_LINES)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.addr(), self.log_tail());
        }
        release_port(self.port);
    }
}

/// A built-in node that owns all 16384 slots: a one-node cluster.
pub struct StandaloneNode {
    pub server: ServerProcess,
    _dir: TempDir,
}

impl StandaloneNode {
    /// Starts `slotway node` with `extra` flags and claims every slot.
    ///
    /// # Panics
    /// When it does not start or refuses the slots.
    pub fn start(extra: &[&str]) -> StandaloneNode {
        let dir = tempfile::Builder::new()
            .prefix("slotway-node-")
            .tempdir()
            .expect("create a temporary directory");
        let mut args: Vec<String> = ["node", "--bind", "127.0.0.1", "--log-level", "warn"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = ServerProcess::spawn(&slotway_bin(), &args, dir.path(), "slotway-node");
        server
            .client()
            .cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
            .expect_ok();
        StandaloneNode { server, _dir: dir }
    }

    pub fn client(&self) -> TestClient {
        self.server.client()
    }
}

/// A plain (non-cluster) `redis-server` with persistence off.
pub struct PlainRedis {
    pub server: ServerProcess,
    _dir: TempDir,
}

impl PlainRedis {
    /// # Panics
    /// When it does not start.
    pub fn start(bins: &RedisBins) -> PlainRedis {
        let dir = tempfile::Builder::new()
            .prefix("slotway-plain-redis-")
            .tempdir()
            .expect("create a temporary directory");
        let args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let server = ServerProcess::spawn(&bins.server, &args, dir.path(), "redis-server");
        PlainRedis { server, _dir: dir }
    }
}

/// The built-in node and redis-server side by side, each with its own
/// client.
pub struct NodePair {
    pub builtin: StandaloneNode,
    pub redis: PlainRedis,
    pub ours: TestClient,
    pub theirs: TestClient,
}

impl NodePair {
    /// # Panics
    /// When either server does not start.
    pub fn start(bins: &RedisBins) -> NodePair {
        let builtin = StandaloneNode::start(&[]);
        let redis = PlainRedis::start(bins);
        let ours = builtin.client();
        let theirs = redis.server.client();
        NodePair {
            builtin,
            redis,
            ours,
            theirs,
        }
    }

    /// Sends `args` to both; returns (built-in, redis-server) replies.
    pub fn both(&mut self, args: &[&str]) -> (Reply, Reply) {
        (self.ours.cmd(args), self.theirs.cmd(args))
    }

    /// [`NodePair::same`] for each command in turn.
    ///
    /// # Panics
    /// At the first command whose replies differ.
    pub fn same_all(&mut self, cmds: &[&[&str]]) {
        for cmd in cmds {
            self.same(cmd);
        }
    }

    /// Sends `args` to both and asserts the replies are identical.
    ///
    /// # Panics
    /// When they differ.
    pub fn same(&mut self, args: &[&str]) -> Reply {
        let (ours, theirs) = self.both(args);
        assert_eq!(ours, theirs, "replies differ for {args:?}");
        ours
    }
}
