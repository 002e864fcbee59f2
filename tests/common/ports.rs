//! Free loopback ports, handed out once per process and reserved against the
//! other test processes that run beside this one (nextest runs one process
//! per test).

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lowest port handed out.
const PORT_MIN: u16 = 20000;
/// Highest port handed out. With the bus offset this stays below 40000, and
/// the ports themselves stay below 32768, where the kernel starts picking
/// local ports for outgoing connections.
const PORT_MAX: u16 = 29999;
/// A cluster node also listens on its port + 10000 (the cluster bus).
const BUS_OFFSET: u16 = 10000;
/// Attempts before `free_port` gives up.
const MAX_ATTEMPTS: usize = 2000;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A random port in 20000..=29999 that is free to bind on 127.0.0.1, whose
/// cluster bus port (+10000) is free too, that this process has not handed
/// out before, and that no other live test process has reserved.
///
/// The reservation across processes is a file named after the port in
/// `$TMPDIR/slotway-test-ports/`, holding the owner's pid; a file whose pid
/// is gone is stale and reclaimed. Where that directory cannot be used, the
/// bind probe alone decides.
///
/// # Panics
/// When no such port turns up in a bounded number of attempts.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let span = u64::from(PORT_MAX - PORT_MIN) + 1;
    for _ in 0..MAX_ATTEMPTS {
        let offset = u16::try_from(random_u64() % span).expect("offset below span");
        let port = PORT_MIN + offset;
        if handed.contains(&port) || !can_bind(port) || !can_bind(port + BUS_OFFSET) {
            continue;
        }
        if !reserve(port) {
            continue;
        }
        handed.insert(port);
        return port;
    }
    panic!(
        "no free port pair (P, P+{BUS_OFFSET}) in {PORT_MIN}..={PORT_MAX} after {MAX_ATTEMPTS} attempts"
    );
}

/// `count` consecutive free ports (each with its bus port free), as
/// [`free_port`] hands them out: for a cluster whose nodes take a base port
/// and the ones after it (the embedded default). Returns the first.
///
/// # Panics
/// When no such block turns up in a bounded number of attempts.
pub fn free_port_block(count: u16) -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let span = u64::from(PORT_MAX - PORT_MIN - count) + 1;
    'attempt: for _ in 0..MAX_ATTEMPTS {
        let offset = u16::try_from(random_u64() % span).expect("offset below span");
        let base = PORT_MIN + offset;
        let ports: Vec<u16> = (base..base + count).collect();
        for &port in &ports {
            if handed.contains(&port) || !can_bind(port) || !can_bind(port + BUS_OFFSET) {
                continue 'attempt;
            }
        }
        let mut reserved = Vec::new();
        for &port in &ports {
            if !reserve(port) {
                for &r in &reserved {
                    release_port(r);
                }
                continue 'attempt;
            }
            reserved.push(port);
        }
        handed.extend(ports);
        return base;
    }
    panic!(
        "no block of {count} free ports in {PORT_MIN}..={PORT_MAX} after {MAX_ATTEMPTS} attempts"
    );
}

/// Drops this process's cross-process reservation of `port` once nothing
/// listens on it any more. The port stays handed out within this process.
pub fn release_port(port: u16) {
    let Some(path) = reservation_path(port) else {
        return;
    };
    if read_pid(&path) == Some(std::process::id()) {
        let _ = fs::remove_file(path);
    }
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.finish()
}

fn reservation_dir() -> Option<PathBuf> {
    // Without /proc there is no cheap way to tell a live owner from a stale
    // file, so the bind probe alone decides.
    if !Path::new("/proc/self").exists() {
        return None;
    }
    let dir = std::env::temp_dir().join("slotway-test-ports");
    fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

fn reservation_path(port: u16) -> Option<PathBuf> {
    reservation_dir().map(|dir| dir.join(port.to_string()))
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Claims `port` for this process; false when a live process holds it.
fn reserve(port: u16) -> bool {
    let Some(path) = reservation_path(port) else {
        return true;
    };
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let _ = write!(file, "{}", std::process::id());
                return true;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let owner_alive =
                    read_pid(&path).is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                if owner_alive {
                    return false;
                }
                // Stale (its process is gone) or half written: reclaim it.
                let _ = fs::remove_file(&path);
            }
            // The directory is unusable: fall back to the bind probe.
            Err(_) => return true,
        }
    }
    false
}
