//! Child processes: signals, bounded reaping, log tails.
//!
//! Signals go through `sh -c 'kill ...'` (the shell builtin, present even on
//! a minimal Debian) because the crate forbids `unsafe`, so `libc::kill` is
//! out of reach.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long to wait for a SIGKILLed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `signal` (`"STOP"`, `"CONT"`, `"TERM"`, ...) to `pid`; false if
/// `kill` failed (the process is gone).
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" \"$2\"",
            "sh",
            signal,
            &pid.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// SIGKILLs `child` (a stopped process dies too) and reaps it.
pub fn kill_and_reap(child: &mut Child) -> Option<ExitStatus> {
    let _ = child.kill();
    wait_exit(child, REAP_TIMEOUT)
}

/// SIGTERMs `child`, waits up to `grace`, then SIGKILLs it.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), "TERM");
    wait_exit(child, grace).or_else(|| kill_and_reap(child))
}

/// The last `lines` lines of the file at `path` (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
