//! The `slotway` binary's command line: exit statuses and messages for bad
//! configuration, startup failures and a clean shutdown.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EX_USAGE: i32 = 64;

/// The binary with an empty environment, so the caller's SLOTWAY_* or
/// RUST_LOG variables cannot change the outcome.
fn slotway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slotway"));
    cmd.env_clear();
    cmd
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn run(cmd: &mut Command) -> (i32, String) {
    let Output { status, stderr, .. } = cmd.stdin(Stdio::null()).output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn unknown_config_key_exits_64_naming_it() {
    let file = config_file("listen = \"127.0.0.1:0\"\n[backend]\nconect_timeout_ms = 100\n");
    let (code, stderr) = run(slotway().arg("--config").arg(file.path()));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(
        stderr.starts_with("slotway: invalid configuration: "),
        "{stderr}"
    );
    assert!(stderr.contains("conect_timeout_ms"), "{stderr}");

    // The same through the explicit subcommand.
    let (code, stderr) = run(slotway().arg("proxy").arg("--config").arg(file.path()));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(stderr.contains("conect_timeout_ms"), "{stderr}");
}

#[test]
fn unreadable_config_file_exits_64() {
    let (code, stderr) = run(slotway().args(["--config", "/nonexistent/slotway.toml"]));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(stderr.contains("/nonexistent/slotway.toml"), "{stderr}");
}

#[test]
fn invalid_values_exit_64_naming_the_key() {
    let (code, stderr) = run(slotway().env("SLOTWAY_BACKEND__CONNECTIONS_PER_NODE", "0"));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(stderr.contains("backend.connections_per_node"), "{stderr}");

    let (code, stderr) = run(slotway().args(["proxy", "--seeds", "127.0.0.1:7000,nope"]));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(stderr.contains("cluster.seeds[1]"), "{stderr}");

    let (code, stderr) = run(slotway().args(["--log-level", "loud"]));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(stderr.contains("log.level"), "{stderr}");
}

#[test]
fn bad_command_line_exits_64_and_help_exits_0() {
    let (code, _) = run(slotway().arg("--no-such-flag"));
    assert_eq!(code, EX_USAGE);
    let (code, _) = run(slotway().arg("--help"));
    assert_eq!(code, 0);
}

#[test]
fn address_in_use_fails_startup() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(slotway().args([
        "--listen",
        &addr,
        "--admin-listen",
        "127.0.0.1:0",
        "--seeds",
        "127.0.0.1:1",
    ]));
    assert_ne!(code, 0, "{stderr}");
    assert_ne!(code, EX_USAGE, "{stderr}");
    // The message names the address that could not be bound; the exact
    // wording belongs to proxy::run.
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("slotway: ") && l.contains(&addr)),
        "{stderr}"
    );
}

#[test]
fn an_embedded_cluster_below_three_masters_exits_64() {
    // No seeds: the proxy would start the embedded cluster, but the
    // configuration is refused before anything starts.
    let (code, stderr) = run(slotway()
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("SLOTWAY_EMBEDDED__MASTERS", "2"));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(stderr.contains("embedded.masters"), "{stderr}");
}

#[test]
fn an_embedded_node_that_cannot_start_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_port_block(6);
    // The first node's port is taken: that node cannot listen.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", base)).unwrap();
    let (code, stderr) = run(slotway()
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("SLOTWAY_EMBEDDED__DIR", dir.path())
        .env("SLOTWAY_EMBEDDED__BASE_PORT", base.to_string()));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("the node on port {base} did not start")),
        "{stderr}"
    );
    // The nodes that did start were stopped with the proxy.
    for port in base + 1..base + 6 {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "a node still listens on {port}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_cleanly() {
    let mut child = slotway()
        // Nothing listens on port 1: the proxy starts and keeps looking.
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--seeds",
            "127.0.0.1:1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    // Wait for both listeners.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !(seen.iter().any(|l: &String| l.contains("proxy listening"))
        && seen.iter().any(|l| l.contains("admin endpoint listening")))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("slotway did not start: {seen:#?}");
            }
        }
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("slotway did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
