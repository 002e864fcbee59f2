//! docker/compose.yml and docker/sidecar.yml, run as processes: there is no
//! Docker engine here, so this test reads each service's `command` from the
//! files, maps container names and ports onto free loopback ports, and runs
//! the same commands with the same binary. A command in the files that the
//! binary rejects, or a topology that does not serve, fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use yaml_rust2::{Yaml, YamlLoader};

const NODES: usize = 6;
/// The port every node uses inside its container.
const CONTAINER_NODE_PORT: &str = "6379";

fn load(path: &str) -> Yaml {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).expect("read the compose file");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .into_iter()
        .next()
        .expect("one document")
}

fn command(doc: &Yaml, service: &str) -> Vec<String> {
    doc["services"][service]["command"]
        .as_vec()
        .unwrap_or_else(|| panic!("service {service} has a command list"))
        .iter()
        .map(|v| v.as_str().expect("string arguments").to_string())
        .collect()
}

/// Rewrites container addresses to loopback ones: `node-N:6379` and a lone
/// `node-N` (an announced IP) to this machine's node N, `0.0.0.0` to
/// 127.0.0.1, `/data` to a directory of the test, and listed ports.
struct Mapping {
    node_ports: Vec<u16>,
    ports: HashMap<String, u16>,
    data: std::path::PathBuf,
}

impl Mapping {
    fn map(&self, args: &[String], node: Option<usize>) -> Vec<String> {
        let mut out = Vec::new();
        for arg in args {
            let mut a = arg.clone();
            for (i, port) in self.node_ports.iter().enumerate() {
                a = a.replace(
                    &format!("node-{}:{CONTAINER_NODE_PORT}", i + 1),
                    &format!("127.0.0.1:{port}"),
                );
                if a == format!("node-{}", i + 1) {
                    a = "127.0.0.1".into();
                }
            }
            for (from, to) in &self.ports {
                a = a.replace(&format!(":{from}"), &format!(":{to}"));
            }
            a = a.replace("0.0.0.0", "127.0.0.1");
            if let Some(n) = node {
                if a == CONTAINER_NODE_PORT {
                    a = self.node_ports[n].to_string();
                }
                if a == "/data" {
                    a = self
                        .data
                        .join(format!("node-{}", n + 1))
                        .display()
                        .to_string();
                    std::fs::create_dir_all(&a).expect("node data dir");
                }
            }
            out.push(a);
        }
        out
    }
}

#[test]
fn compose_topology_serves_through_the_proxy_and_the_sidecar() {
    let Some(_bins) = require_redis() else { return };
    let compose = load("docker/compose.yml");
    let sidecar = load("docker/sidecar.yml");
    let dir = tempfile::tempdir().expect("temp dir");
    let mapping = Mapping {
        node_ports: (0..NODES).map(|_| free_port()).collect(),
        ports: [("7777", free_port()), ("7778", free_port())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        data: dir.path().to_path_buf(),
    };

    let mut nodes = Vec::new();
    for n in 0..NODES {
        let args = mapping.map(&command(&compose, &format!("node-{}", n + 1)), Some(n));
        assert_eq!(args.first().map(String::as_str), Some("node"));
        nodes.push(ServerProcess::spawn_args(
            &slotway_bin(),
            &args,
            dir.path(),
            "compose-node",
        ));
    }

    let create = mapping.map(&command(&compose, "create"), None);
    let output = Command::new(slotway_bin())
        .args(&create)
        .stdin(Stdio::null())
        .output()
        .expect("run the create service's command");
    assert!(
        output.status.success(),
        "create: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let proxy_args = mapping.map(&command(&compose, "proxy"), None);
    let proxy = Proxy::start_args(&proxy_args);
    let mut client = proxy.client();
    for i in 0..200 {
        client
            .cmd(&["SET", &format!("compose:{i}"), &i.to_string()])
            .expect_ok();
    }
    for i in 0..200 {
        assert_eq!(
            client.cmd(&["GET", &format!("compose:{i}")]).as_bulk(),
            Some(i.to_string().as_bytes())
        );
    }

    // The sidecar proxy listens on the app's localhost:6379; map that port.
    let mut side = Mapping {
        node_ports: mapping.node_ports.clone(),
        ports: [("6379", free_port()), ("6380", free_port())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        data: mapping.data.clone(),
    };
    // Seeds name node-N:6379: map them before the generic port rewrite.
    let raw = command(&sidecar, "app-proxy");
    let seeded: Vec<String> = raw
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for (i, port) in mapping.node_ports.iter().enumerate() {
                a = a.replace(
                    &format!("node-{}:6379", i + 1),
                    &format!("127.0.0.1:{port}"),
                );
            }
            a
        })
        .collect();
    side.node_ports.clear();
    let sidecar_proxy = Proxy::start_args(&side.map(&seeded, None));
    let mut app = sidecar_proxy.client();
    let first = app.cmd(&["INCR", "visits"]).expect_int();
    assert_eq!(app.cmd(&["INCR", "visits"]).expect_int(), first + 1);
    assert_eq!(
        client.cmd(&["GET", "visits"]).as_bulk(),
        Some((first + 1).to_string().as_bytes())
    );
    drop(nodes);
    let _ = Duration::from_secs(0);
}
