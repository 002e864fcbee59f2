//! The `slotway proxy` binary as a child process on free loopback ports,
//! ready once its admin endpoint's `/readyz` answers 200.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::bins::require_redis;
use super::client::TestClient;
use super::ports::{free_port, release_port};
use super::process;
use super::redis::{Backend, ClusterOptions, RedisCluster};
use super::wait::try_eventually;

/// How long the proxy may take to have a full slot map.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// SIGTERM to SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Timeout of one admin HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines shown when the proxy fails to start, or a test panics.
const LOG_TAIL_LINES: usize = 60;

/// How to start a [`Proxy`].
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The binary; the `slotway` built for this test run by default.
    pub bin: PathBuf,
    /// Appended after `proxy --listen .. --admin-listen .. --seeds ..`.
    pub args: Vec<String>,
    /// Extra environment (`SLOTWAY_*`, `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// Wait for `/readyz` to answer 200 before `start` returns.
    pub wait_ready: bool,
    pub ready_timeout: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_slotway")),
            args: Vec::new(),
            env: Vec::new(),
            wait_ready: true,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// A cluster of 3 masters of `backend` with `replicas` each (node timeout
/// 1000 ms, so failover is quick) and a proxy in front, started with
/// `proxy`; `None` when redis-server is missing and CI is not set (see
/// [`require_redis`]).
pub fn cluster_with_proxy(
    backend: Backend,
    replicas: usize,
    proxy: ProxyOptions,
) -> Option<(RedisCluster, Proxy)> {
    require_redis()?;
    let cluster = RedisCluster::start_with(ClusterOptions {
        backend,
        replicas_per_master: replicas,
        node_timeout_ms: 1000,
        ..ClusterOptions::default()
    });
    let proxy = Proxy::start_with(&cluster.seeds_arg(), proxy);
    Some((cluster, proxy))
}

/// A running `slotway proxy`. On drop it gets SIGTERM, then SIGKILL after a
/// grace period; if the test is panicking, the tail of its log is printed.
pub struct Proxy {
    child: Option<Child>,
    port: u16,
    admin_port: u16,
    addr: String,
    admin_addr: String,
    log: PathBuf,
    // Declared last: the log outlives the process.
    _dir: TempDir,
}

impl Proxy {
    /// Starts the proxy in front of `seeds` (`host:port,host:port,...`) and
    /// waits until it is ready.
    ///
    /// # Panics
    /// When it exits or is not ready in time; the message carries its log.
    pub fn start(seeds: &str) -> Proxy {
        Proxy::start_with(seeds, ProxyOptions::default())
    }

    /// [`Proxy::start`] with every option. An empty `seeds` passes no
    /// `--seeds` at all.
    ///
    /// # Panics
    /// As [`Proxy::start`].
    pub fn start_with(seeds: &str, opts: ProxyOptions) -> Proxy {
        let (port, admin_port) = (free_port(), free_port());
        let mut args: Vec<String> = vec![
            "proxy".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin_port}"),
        ];
        if !seeds.is_empty() {
            args.extend(["--seeds".to_string(), seeds.to_string()]);
        }
        args.extend(opts.args.iter().cloned());
        Proxy::launch(&args, port, admin_port, &opts)
    }

    /// Starts `slotway` with exactly `args` (which must include `--listen`
    /// and `--admin-listen` on 127.0.0.1) and waits until it is ready.
    ///
    /// # Panics
    /// As [`Proxy::start`], or when an address flag is missing.
    pub fn start_args(args: &[String]) -> Proxy {
        let port_after = |flag: &str| -> u16 {
            let value = args
                .iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
            value
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or_else(|| panic!("{flag} {value}: no port"))
        };
        let (port, admin_port) = (port_after("--listen"), port_after("--admin-listen"));
        Proxy::launch(args, port, admin_port, &ProxyOptions::default())
    }

    fn launch(args: &[String], port: u16, admin_port: u16, opts: &ProxyOptions) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("slotway-proxy-")
            .tempdir()
            .expect("create a temporary directory");
        let log = dir.path().join("proxy.log");
        let file = File::create(&log).expect("create proxy.log");
        let addr = format!("127.0.0.1:{port}");
        let admin_addr = format!("127.0.0.1:{admin_port}");
        let child = Command::new(&opts.bin)
            .args(args)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", opts.bin.display()));
        let mut proxy = Proxy {
            child: Some(child),
            port,
            admin_port,
            addr,
            admin_addr,
            log,
            _dir: dir,
        };
        if opts.wait_ready {
            proxy.wait_ready(opts.ready_timeout);
        }
        proxy
    }

    /// Waits until `/readyz` answers 200.
    ///
    /// # Panics
    /// When the proxy exits first or the timeout passes; the message carries
    /// the tail of its log.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let ready = try_eventually(timeout, Duration::from_millis(50), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Ok(Err(format!("the proxy exited: {status}")));
            }
            match self.admin_get("/readyz") {
                Ok((200, _)) => Ok(Ok(())),
                Ok((code, body)) => Err(format!("/readyz: {code} {body}")),
                Err(e) => Err(format!("/readyz: {e}")),
            }
        })
        .and_then(|exited| exited);
        if let Err(why) = ready {
            panic!(
                "proxy on {} not ready within {timeout:?}: {why}\n--- proxy log ---\n{}",
                self.addr,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// `127.0.0.1:<port>`: where clients connect.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>` of the admin HTTP endpoint.
    pub fn admin_addr(&self) -> &str {
        &self.admin_addr
    }

    /// The process id, until the proxy is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A new client connected to the proxy.
    ///
    /// # Panics
    /// When the connection fails.
    pub fn client(&self) -> TestClient {
        TestClient::connect(&self.addr)
    }

    /// `GET path` on the admin port: the status code and the body.
    ///
    /// # Errors
    /// When the request fails or the answer is not HTTP.
    pub fn admin_get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(&self.admin_addr, path)
    }

    /// The Prometheus text of `/metrics`.
    ///
    /// # Panics
    /// When `/metrics` does not answer 200.
    pub fn metrics_text(&self) -> String {
        match self.admin_get("/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics on {}: {other:?}", self.admin_addr),
        }
    }

    /// The proxy's stdout and stderr so far.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        process::tail(&self.log, lines)
    }

    /// SIGTERM, then SIGKILL after the grace period; the exit status (`None`
    /// if it was stopped before or could not be reaped).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        process::terminate(&mut child, STOP_GRACE)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- proxy {} log (last {LOG_TAIL_LINES} lines) ---\n{}",
                self.addr,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        release_port(self.port);
        release_port(self.admin_port);
    }
}

/// A minimal HTTP/1.1 GET (`Connection: close`); handles chunked bodies.
fn http_get(addr: &str, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{why}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}
