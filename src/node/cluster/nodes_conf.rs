//! The CLUSTER NODES text and `nodes-<port>.conf`, which is that text plus
//! a `vars` line, as Redis writes it:
//!
//! ```text
//! <id> <ip>:<port>@<cport> <flags> <master|-> <ping_sent> <pong_recv> <config_epoch> <connected|disconnected> <slots>...
//! vars currentEpoch <n> lastVoteEpoch <n>
//! ```
//!
//! The file is rewritten whole on every change (a temporary file, fsync,
//! rename), so a crash leaves the old version or the new one. A node that
//! starts with the file present takes back its id, epochs, role, slots and
//! the nodes it knew. A separate `<file>.lock` held with `flock` keeps two
//! nodes from sharing one file; a file that cannot be read stops the node
//! from starting, as Redis does.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{ClusterNode, ClusterState, NodeId, Role};
use crate::cluster::SLOT_COUNT;
use crate::node::bus::proto::is_node_id;
use crate::node::db::unix_ms;

/// Redis's flag words, in the order it prints them.
fn flags_text(cs: &ClusterState, n: &ClusterNode) -> String {
    let mut words: Vec<&str> = Vec::with_capacity(3);
    if cs.is_myself(&n.id) {
        words.push("myself");
    }
    match n.role {
        Role::Master => words.push("master"),
        Role::Replica => words.push("slave"),
        Role::Unknown => {}
    }
    if n.pfail {
        words.push("fail?");
    }
    if n.fail {
        words.push("fail");
    }
    if n.handshake {
        words.push("handshake");
    }
    if n.noaddr {
        words.push("noaddr");
    }
    if n.nofailover {
        words.push("nofailover");
    }
    if words.is_empty() {
        "noflags".into()
    } else {
        words.join(",")
    }
}

/// A node's config epoch as CLUSTER NODES shows it: a replica shows its
/// master's (Redis's `nodeEpoch`).
fn node_epoch(cs: &ClusterState, n: &ClusterNode) -> u64 {
    match n.master.as_deref().and_then(|m| cs.node(m)) {
        Some(m) if n.is_replica() => m.config_epoch,
        _ => n.config_epoch,
    }
}

/// One line of CLUSTER NODES (without the newline), as Redis's
/// `clusterGenNodeDescription` writes it; this node's own line also lists
/// its open migrations as `[slot->-id]` and `[slot-<-id]`.
pub fn node_line(cs: &ClusterState, n: &ClusterNode) -> String {
    let myself = cs.is_myself(&n.id);
    let mut line = String::with_capacity(128);
    let _ = write!(
        line,
        "{} {}:{}@{} {} {} {} {} {} {}",
        n.id,
        n.ip,
        n.port,
        n.cport,
        flags_text(cs, n),
        n.master.as_deref().unwrap_or("-"),
        n.ping_sent_ms,
        n.pong_received_ms,
        node_epoch(cs, n),
        if n.connected || myself {
            "connected"
        } else {
            "disconnected"
        },
    );
    if n.numslots() > 0 {
        line.push(' ');
        line.push_str(&n.slots().ranges_text());
    }
    if myself {
        let mut open: Vec<(u16, &str, &NodeId)> = cs
            .migrating
            .iter()
            .map(|(s, id)| (*s, "->-", id))
            .chain(
                cs.importing
                    .iter()
                    .filter(|(s, _)| !cs.migrating.contains_key(s))
                    .map(|(s, id)| (*s, "-<-", id)),
            )
            .collect();
        open.sort_by_key(|(s, _, _)| *s);
        for (slot, arrow, id) in open {
            let _ = write!(line, " [{slot}{arrow}{id}]");
        }
    }
    line
}

/// The whole CLUSTER NODES text: this node first, the others by id. The
/// config file leaves out nodes still in handshake.
pub fn nodes_text(cs: &ClusterState, with_handshake: bool) -> String {
    let mut others: Vec<&ClusterNode> = cs
        .others()
        .filter(|n| with_handshake || !n.handshake)
        .collect();
    others.sort_by(|a, b| a.id.cmp(&b.id));
    let mut text = String::with_capacity(128 * (others.len() + 1));
    for n in std::iter::once(cs.me()).chain(others) {
        text.push_str(&node_line(cs, n));
        text.push('\n');
    }
    text
}

/// The content of `nodes-<port>.conf`.
pub fn config_text(cs: &ClusterState) -> String {
    let mut text = nodes_text(cs, false);
    let _ = writeln!(
        text,
        "vars currentEpoch {} lastVoteEpoch {}",
        cs.current_epoch, cs.last_vote_epoch
    );
    text
}

/// One node line of the file, parsed.
#[derive(Debug)]
struct Line {
    id: String,
    ip: String,
    port: u16,
    cport: u16,
    myself: bool,
    role: Role,
    pfail: bool,
    fail: bool,
    noaddr: bool,
    master: Option<String>,
    ping_sent: bool,
    pong_received: bool,
    config_epoch: u64,
    slots: Vec<(u16, u16)>,
    migrating: Vec<(u16, String)>,
    importing: Vec<(u16, String)>,
}

fn bad(line: usize, what: &str) -> String {
    format!("line {line}: {what}")
}

fn parse_slot(text: &str, n: usize) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(s) if usize::from(s) < SLOT_COUNT => Ok(s),
        _ => Err(bad(n, &format!("bad slot '{text}'"))),
    }
}

fn parse_line(n: usize, argv: &[&str]) -> Result<Line, String> {
    let [
        id,
        addr,
        flags,
        master,
        ping,
        pong,
        epoch,
        _link,
        slots @ ..,
    ] = argv
    else {
        return Err(bad(n, "fewer than 8 fields"));
    };
    if !is_node_id(id.as_bytes()) {
        return Err(bad(n, "bad node id"));
    }
    // ip:port@cport[,hostname]; the IP may be IPv6, so split at the last ':'.
    let addr = addr.split(',').next().unwrap_or_default();
    let (hostport, cport) = match addr.split_once('@') {
        Some((hp, c)) => (hp, Some(c)),
        None => (addr, None),
    };
    let (ip, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| bad(n, "bad address"))?;
    let port: u16 = port.parse().map_err(|_| bad(n, "bad port"))?;
    let cport: u16 = match cport {
        Some(c) => c.parse().map_err(|_| bad(n, "bad bus port"))?,
        None => port.wrapping_add(10000),
    };
    let mut line = Line {
        id: id.to_string(),
        ip: ip.to_string(),
        port,
        cport,
        myself: false,
        role: Role::Unknown,
        pfail: false,
        fail: false,
        noaddr: false,
        master: None,
        ping_sent: ping.parse::<i64>().map_err(|_| bad(n, "bad ping time"))? != 0,
        pong_received: pong.parse::<i64>().map_err(|_| bad(n, "bad pong time"))? != 0,
        config_epoch: epoch.parse().map_err(|_| bad(n, "bad config epoch"))?,
        slots: Vec::new(),
        migrating: Vec::new(),
        importing: Vec::new(),
    };
    for flag in flags.split(',') {
        match flag.to_ascii_lowercase().as_str() {
            "myself" => line.myself = true,
            "master" => line.role = Role::Master,
            "slave" => line.role = Role::Replica,
            "fail?" => line.pfail = true,
            "fail" => line.fail = true,
            "noaddr" => line.noaddr = true,
            "handshake" | "noflags" | "nofailover" => {}
            other => return Err(bad(n, &format!("unknown flag '{other}'"))),
        }
    }
    if *master != "-" {
        if !is_node_id(master.as_bytes()) {
            return Err(bad(n, "bad master id"));
        }
        line.master = Some(master.to_string());
    }
    for field in slots {
        if let Some(inner) = field.strip_prefix('[') {
            let inner = inner.strip_suffix(']').unwrap_or(inner);
            if let Some((s, id)) = inner.split_once("->-") {
                line.migrating.push((parse_slot(s, n)?, id.to_string()));
            } else if let Some((s, id)) = inner.split_once("-<-") {
                line.importing.push((parse_slot(s, n)?, id.to_string()));
            } else {
                return Err(bad(n, "bad migration marker"));
            }
            continue;
        }
        let (start, end) = match field.split_once('-') {
            Some((a, b)) => (parse_slot(a, n)?, parse_slot(b, n)?),
            None => {
                let s = parse_slot(field, n)?;
                (s, s)
            }
        };
        if start > end {
            return Err(bad(n, "bad slot range"));
        }
        line.slots.push((start, end));
    }
    Ok(line)
}

/// What `nodes-<port>.conf` holds about this node's own address: the
/// running configuration wins over the file for these.
#[derive(Debug, Clone)]
pub struct MyAddr {
    pub ip: String,
    pub port: u16,
    pub cport: u16,
}

/// Rebuilds the cluster state from the file's text.
///
/// # Errors
/// A description of the first thing that is wrong with the text.
pub fn load(
    text: &str,
    addr: &MyAddr,
    require_full_coverage: bool,
) -> Result<ClusterState, String> {
    let mut lines = Vec::new();
    let (mut current_epoch, mut last_vote_epoch) = (0u64, 0u64);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let argv: Vec<&str> = raw.split_whitespace().collect();
        let Some(first) = argv.first() else { continue };
        if first.eq_ignore_ascii_case("vars") {
            for pair in argv[1..].chunks(2) {
                let [key, value] = pair else {
                    return Err(bad(n, "vars without a value"));
                };
                let value: u64 = value.parse().map_err(|_| bad(n, "bad vars value"))?;
                if key.eq_ignore_ascii_case("currentEpoch") {
                    current_epoch = value;
                } else if key.eq_ignore_ascii_case("lastVoteEpoch") {
                    last_vote_epoch = value;
                }
            }
            continue;
        }
        lines.push(parse_line(n, &argv)?);
    }
    let mut mine = lines.iter().filter(|l| l.myself);
    let Some(me) = mine.next() else {
        return Err("no line for this node (flag 'myself')".into());
    };
    if mine.next().is_some() {
        return Err("more than one line flagged 'myself'".into());
    }
    let now = unix_ms();
    let node_of = |l: &Line| {
        let mut node = ClusterNode::new(l.id.as_str().into(), l.ip.clone(), l.port, l.cport);
        node.role = l.role;
        node.pfail = l.pfail;
        node.fail = l.fail;
        node.fail_time_ms = if l.fail { now } else { 0 };
        node.noaddr = l.noaddr;
        node.config_epoch = l.config_epoch;
        node.ping_sent_ms = if l.ping_sent { now } else { 0 };
        node.pong_received_ms = if l.pong_received { now } else { 0 };
        node
    };
    let mut my_node = node_of(me);
    my_node.ip = addr.ip.clone();
    my_node.port = addr.port;
    my_node.cport = addr.cport;
    my_node.ping_sent_ms = 0;
    if my_node.role == Role::Unknown {
        my_node.role = Role::Master;
    }
    let mut cs = ClusterState::new(my_node, require_full_coverage);
    for l in lines.iter().filter(|l| !l.myself) {
        if cs.node(&l.id).is_some() {
            return Err(format!("node {} listed twice", l.id));
        }
        cs.add_node(node_of(l));
    }
    // Masters named only as some replica's master still get an entry, as
    // in Redis (their own line may be missing from a hand-edited file).
    for l in &lines {
        if let Some(m) = &l.master {
            if cs.node(m).is_none() {
                let mut node = ClusterNode::new(m.as_str().into(), "", 0, 0);
                node.role = Role::Unknown;
                node.noaddr = true;
                cs.add_node(node);
            }
        }
    }
    for l in &lines {
        let id: NodeId = l.id.as_str().into();
        if let Some(master) = &l.master {
            cs.set_master_of(&id, Some(master.as_str().into()));
            if let Some(node) = cs.node_mut(&id) {
                node.role = Role::Replica;
            }
        }
        for &(start, end) in &l.slots {
            for slot in start..=end {
                cs.assign(slot, Some(&id));
            }
        }
        if l.myself {
            for (slot, to) in &l.migrating {
                cs.migrating.insert(*slot, to.as_str().into());
            }
            for (slot, from) in &l.importing {
                cs.importing.insert(*slot, from.as_str().into());
            }
        }
    }
    cs.last_vote_epoch = last_vote_epoch;
    cs.current_epoch = current_epoch;
    cs.current_epoch = cs.max_epoch();
    cs.update_state();
    cs.take_dirty();
    if let Some(master) = cs.my_master().map(|m| Arc::clone(&m.id)) {
        cs.set_my_master(&master);
        cs.take_dirty();
    }
    Ok(cs)
}

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error(
        "the cluster configuration file {0} is already used by a different node; \
         different nodes must use different cluster configuration files"
    )]
    Locked(PathBuf),
    #[error("cannot use the cluster configuration file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("unrecoverable error: corrupted cluster config file {path}: {why}")]
    Corrupt { path: PathBuf, why: String },
}

/// Takes an exclusive `flock` on `file` without waiting: false if another
/// process holds it. The lock goes with the process, even on SIGKILL.
/// (The append-only file's directory is locked the same way.)
#[cfg(unix)]
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Without `flock`, nothing keeps two nodes off one file.
#[cfg(not(unix))]
pub(crate) fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// The open, locked config file of a running node.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// Holds the `flock` for as long as the node runs.
    _lock: File,
    /// Serializes writers and remembers the newest version written, so an
    /// older render never replaces a newer one.
    written: Mutex<u64>,
    /// The last version number handed out.
    versions: AtomicU64,
}

impl ConfigFile {
    /// Locks `path` for this node and reads it: `Ok((file, None))` when it
    /// does not exist or is empty.
    ///
    /// # Errors
    /// [`ConfError::Locked`] if another node holds it, or an I/O error.
    pub fn open(path: &Path) -> Result<(Arc<ConfigFile>, Option<String>), ConfError> {
        let io_err = |source| ConfError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(lock_name))
            .map_err(io_err)?;
        match try_lock(&lock) {
            Ok(true) => {}
            Ok(false) => return Err(ConfError::Locked(path.to_path_buf())),
            Err(e) => return Err(io_err(e)),
        }
        let text = match fs::read(path) {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => Some(String::from_utf8(bytes).map_err(|_| ConfError::Corrupt {
                path: path.to_path_buf(),
                why: "not UTF-8".into(),
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(e)),
        };
        let file = ConfigFile {
            path: path.to_path_buf(),
            _lock: lock,
            written: Mutex::new(0),
            versions: AtomicU64::new(0),
        };
        Ok((Arc::new(file), text))
    }

    /// A number for the next render of the file; take it under the node
    /// lock with the render, so versions follow the order of changes.
    pub fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes version `version` of the file atomically, unless a newer one
    /// was written already. Blocking: call from a blocking thread.
    ///
    /// # Errors
    /// The I/O error; the previous file is left in place.
    pub fn write(&self, version: u64, text: &str) -> io::Result<()> {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *written > version {
            return Ok(());
        }
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        } else {
            *written = version;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> MyAddr {
        MyAddr {
            ip: "127.0.0.1".into(),
            port: 7000,
            cport: 17000,
        }
    }

    const FILE: &str = "\
940bbbd24fd9516e9a9fb15fa7c55038ba81dc76 127.0.0.1:21006@31006 slave 4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 0 1795333528206 1 connected
4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 127.0.0.1:21001@31001 myself,master - 0 1795333528000 1 connected 0-5460 [77->-5ccfa2e8500159a4efd860801d7ffe33bedf75ef] [6000-<-5ccfa2e8500159a4efd860801d7ffe33bedf75ef]
5ccfa2e8500159a4efd860801d7ffe33bedf75ef 127.0.0.1:21002@31002 master - 0 1795333529012 2 disconnected 5461-10922 16383
vars currentEpoch 6 lastVoteEpoch 2
";

    #[test]
    fn a_redis_file_loads() {
        let cs = load(FILE, &addr(), true).unwrap();
        assert_eq!(&*cs.myself, "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf");
        assert_eq!(cs.me().port, 7000, "the running port wins");
        assert_eq!(cs.current_epoch, 6);
        assert_eq!(cs.last_vote_epoch, 2);
        assert_eq!(cs.me().numslots(), 5461);
        let other = cs.node("5ccfa2e8500159a4efd860801d7ffe33bedf75ef").unwrap();
        assert_eq!(other.numslots(), 5463);
        assert_eq!(other.config_epoch, 2);
        let replica = cs.node("940bbbd24fd9516e9a9fb15fa7c55038ba81dc76").unwrap();
        assert!(replica.is_replica());
        assert_eq!(replica.master.as_deref(), Some(&*cs.myself));
        assert!(cs.migrating.contains_key(&77));
        assert!(cs.importing.contains_key(&6000));
        assert_eq!(cs.slots_assigned(), 5461 + 5463);
        assert!(!cs.state_ok, "slots 10923-16382 are not covered");
        assert!(cs.me().migrate_to, "a master with a replica");
        assert!(cs.subscribe_master().borrow().is_none());
    }

    #[test]
    fn a_replica_loaded_knows_whom_to_replicate() {
        let me = "940bbbd24fd9516e9a9fb15fa7c55038ba81dc76";
        let text = FILE.replace(" myself,master ", " master ").replace(
            &format!("{me} 127.0.0.1:21006@31006 slave"),
            &format!("{me} 127.0.0.1:21006@31006 myself,slave"),
        );
        let cs = load(&text, &addr(), true).unwrap();
        assert_eq!(&*cs.myself, me);
        let follows = cs.subscribe_master().borrow().clone().unwrap();
        assert_eq!(&*follows.id, "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf");
        assert_eq!(follows.port, 21001);
    }

    #[test]
    fn saved_text_loads_back_the_same() {
        let cs = load(FILE, &addr(), true).unwrap();
        let text = config_text(&cs);
        let again = load(&text, &addr(), true).unwrap();
        // Ping and pong times are "now" at load; the rest is identical.
        let no_times = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| {
                    let mut f: Vec<&str> = l.split(' ').collect();
                    if f.len() >= 8 {
                        f[4] = "-";
                        f[5] = "-";
                    }
                    f.join(" ")
                })
                .collect()
        };
        assert_eq!(no_times(&config_text(&again)), no_times(&text));
        let mine = text.lines().next().unwrap();
        assert!(mine.starts_with(
            "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 127.0.0.1:7000@17000 myself,master - 0 "
        ));
        assert!(mine.ends_with(
            " 1 connected 0-5460 [77->-5ccfa2e8500159a4efd860801d7ffe33bedf75ef] [6000-<-5ccfa2e8500159a4efd860801d7ffe33bedf75ef]"
        ));
        assert!(text.ends_with("vars currentEpoch 6 lastVoteEpoch 2\n"));
    }

    #[test]
    fn garbled_files_are_refused() {
        let cases = [
            "hello world\n",
            "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 127.0.0.1:1@2 master - 0 0 1 connected\n",
            "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 127.0.0.1:1@2 myself,wizard - 0 0 1 connected\n",
            "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 127.0.0.1:1@2 myself,master - 0 0 1 connected 5-3\n",
            "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf 127.0.0.1:1@2 myself,master - 0 0 1 connected 16384\n",
            "4bc6ad2a2e8c2ddd80c16529b5aba02377fc02cf nowhere myself,master - 0 0 1 connected\n",
            "vars currentEpoch x\n",
        ];
        for text in cases {
            assert!(load(text, &addr(), true).is_err(), "{text}");
        }
    }

    #[test]
    fn the_file_is_written_atomically_and_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes-7000.conf");
        let (file, text) = ConfigFile::open(&path).unwrap();
        assert!(text.is_none());
        assert!(matches!(ConfigFile::open(&path), Err(ConfError::Locked(_))));
        file.write(2, "two\n").unwrap();
        file.write(1, "one\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        drop(file);
        let (_file, text) = ConfigFile::open(&path).unwrap();
        assert_eq!(text.as_deref(), Some("two\n"));
    }
}
