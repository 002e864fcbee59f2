//! The embedded default: with no seed nodes configured, `slotway proxy`
//! starts a cluster of built-in nodes as child processes of its own binary
//! (`slotway node`), creates the cluster with the operator tool, and serves
//! it. The nodes' files live under one work directory, one subdirectory per
//! node; a cluster found there is started again as it was, not re-created.
//!
//! Each child's stdin is a pipe from the proxy: when the proxy exits, even
//! by SIGKILL, the pipe closes and the node shuts itself down
//! (`--stop-with-parent`), so no node outlives its proxy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, ChildStdin, Command};

use crate::config::EmbeddedConfig;
use crate::operator::{Console, CreateOptions, NodeClient, OpError, create};

/// How long a node may take to answer PING after it is spawned.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a restarted cluster may take to agree again.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM (the closed stdin) to SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the embedded cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot prepare {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find the slotway binary to start nodes: {0}")]
    Exe(std::io::Error),
    #[error("cannot start the node on port {port}: {source}")]
    Spawn { port: u16, source: std::io::Error },
    #[error("the node on port {port} did not start: {why} (its log: {log})")]
    NodeDown {
        port: u16,
        why: String,
        log: PathBuf,
    },
    #[error("cannot create the cluster: {0}")]
    Create(OpError),
    #[error(
        "the cluster in {dir} did not come back ({why}); stop anything using \
         its ports, or remove the directory to start a new, empty cluster"
    )]
    Rejoin { dir: PathBuf, why: String },
}

/// One node child process.
struct NodeProcess {
    port: u16,
    child: Child,
    /// Kept open for the node's lifetime: dropping it stops the node.
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// The running embedded cluster.
pub struct EmbeddedCluster {
    nodes: Vec<NodeProcess>,
}

impl EmbeddedCluster {
    /// Starts every node, then creates the cluster (first start) or waits
    /// until the existing one agrees again (later starts).
    ///
    /// # Errors
    /// [`EmbeddedError`]; nodes already started are stopped first.
    pub async fn start(config: &EmbeddedConfig) -> Result<EmbeddedCluster, EmbeddedError> {
        let exe = std::env::current_exe().map_err(EmbeddedError::Exe)?;
        let mut cluster = EmbeddedCluster { nodes: Vec::new() };
        match cluster.start_inner(config, &exe).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                cluster.stop().await;
                Err(e)
            }
        }
    }

    async fn start_inner(
        &mut self,
        config: &EmbeddedConfig,
        exe: &Path,
    ) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| EmbeddedError::Dir {
            path: config.dir.clone(),
            source,
        })?;
        let existing = (0..config.node_count()).any(|i| {
            node_dir(config, i)
                .join(conf_name(port_of(config, i)))
                .exists()
        });
        for i in 0..config.node_count() {
            let node = spawn_node(config, i, exe)?;
            self.nodes.push(node);
        }
        for node in &mut self.nodes {
            wait_ping(node).await?;
        }
        let addrs = self.addrs();
        if existing {
            tracing::info!(dir = %config.dir.display(), "restarting the embedded cluster found there");
            wait_rejoined(&addrs, config.node_count())
                .await
                .map_err(|why| EmbeddedError::Rejoin {
                    dir: config.dir.clone(),
                    why,
                })?;
        } else {
            tracing::info!(nodes = ?addrs, "creating the embedded cluster");
            let options = CreateOptions {
                yes: true,
                ..CreateOptions::default()
            };
            create(
                &addrs,
                config.replicas_per_master,
                &options,
                &mut Console::silent(),
            )
            .await
            .map_err(EmbeddedError::Create)?;
        }
        tracing::info!(nodes = ?addrs, "embedded cluster ready");
        Ok(())
    }

    /// `127.0.0.1:<port>` of every node: the proxy's seeds.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// Stops every node: closes its stdin (it shuts down cleanly), then
    /// kills whatever is still running after a grace period.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stdin = None;
        }
        let deadline = Instant::now() + STOP_GRACE;
        for node in &mut self.nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, node.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(port = node.port, "node did not stop in time; killing it");
                    let _ = node.child.kill().await;
                }
            }
        }
        self.nodes.clear();
    }
}

fn port_of(config: &EmbeddedConfig, i: usize) -> u16 {
    // validate() keeps base_port + node_count + 10000 below 65536.
    config.base_port.saturating_add(i as u16)
}

fn node_dir(config: &EmbeddedConfig, i: usize) -> PathBuf {
    config.dir.join(format!("node-{}", port_of(config, i)))
}

fn conf_name(port: u16) -> String {
    format!("nodes-{port}.conf")
}

fn spawn_node(config: &EmbeddedConfig, i: usize, exe: &Path) -> Result<NodeProcess, EmbeddedError> {
    let port = port_of(config, i);
    let dir = node_dir(config, i);
    std::fs::create_dir_all(&dir).map_err(|source| EmbeddedError::Dir {
        path: dir.clone(),
        source,
    })?;
    let log = dir.join("node.log");
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|source| EmbeddedError::Dir {
            path: log.clone(),
            source,
        })?;
    let stderr = file.try_clone().map_err(|source| EmbeddedError::Dir {
        path: log.clone(),
        source,
    })?;
    let mut child = Command::new(exe)
        .arg("node")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(&dir)
        .args(["--cluster-config-file", &conf_name(port)])
        .args([
            "--cluster-node-timeout",
            &config.node_timeout_ms.to_string(),
        ])
        .args(["--appendonly", if config.appendonly { "yes" } else { "no" }])
        .arg("--stop-with-parent")
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| EmbeddedError::Spawn { port, source })?;
    let stdin = child.stdin.take();
    Ok(NodeProcess {
        port,
        child,
        stdin,
        log,
    })
}

async fn wait_ping(node: &mut NodeProcess) -> Result<(), EmbeddedError> {
    let addr = format!("127.0.0.1:{}", node.port);
    let deadline = Instant::now() + NODE_START_TIMEOUT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = node.child.try_wait() {
            last = format!("exited with {status}");
            break;
        }
        match NodeClient::connect(&addr, COMMAND_TIMEOUT).await {
            Ok(mut client) => match client.text(&["PING"]).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(EmbeddedError::NodeDown {
        port: node.port,
        why: last,
        log: node.log.clone(),
    })
}

/// Waits until every node reports `cluster_state:ok` and knows all the
/// others.
async fn wait_rejoined(addrs: &[String], count: usize) -> Result<(), String> {
    let deadline = Instant::now() + REJOIN_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match all_agree(addrs, count).await {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        tokio::time::sleep(POLL * 4).await;
    }
    Err(last)
}

async fn all_agree(addrs: &[String], count: usize) -> Result<(), String> {
    for addr in addrs {
        let mut client = NodeClient::connect(addr, COMMAND_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let info = client
            .text(&["CLUSTER", "INFO"])
            .await
            .map_err(|e| e.to_string())?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        if field("cluster_state:") != "ok" {
            return Err(format!("{addr}: cluster_state:{}", field("cluster_state:")));
        }
        if field("cluster_known_nodes:") != count.to_string() {
            return Err(format!(
                "{addr} knows {} nodes of {count}",
                field("cluster_known_nodes:")
            ));
        }
    }
    Ok(())
}
