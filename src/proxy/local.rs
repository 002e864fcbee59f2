//! Commands the proxy answers itself, as one plain Redis server would:
//! PING, ECHO, QUIT, SELECT, HELLO, AUTH, INFO, CLIENT (the subcommands about
//! the proxy's own clients are in [`super::client_commands`], PAUSE in
//! [`super::pause`], UNBLOCK in [`super::blocking`]),
//! READONLY/READWRITE, ROLE, CLUSTER KEYSLOT, and the CLUSTER subcommands that
//! present the proxy as a cluster of its own ([`super::emulation`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::cluster::key_slot;
use crate::command::CommandSpec;
use crate::resp::{Frame, Request, encode};

use super::Proxy;
use super::blocking;
use super::client_commands;
use super::clients::ClientHandle;
use super::dispatch::ask_every_master;
use super::emulation::{self, Identity};
use super::pause;

/// What the proxy remembers about one client: its registered description
/// (shared with CLIENT LIST) and what only its own session reads.
pub struct ClientState {
    pub handle: Arc<ClientHandle>,
    pub reply: ReplyMode,
    /// The protocol HELLO chose: 2 or 3.
    pub resp: u8,
}

/// CLIENT REPLY's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// The next command's reply is dropped, then back to `On`.
    Skip,
}

impl ClientState {
    pub fn new(handle: Arc<ClientHandle>) -> ClientState {
        ClientState {
            handle,
            reply: ReplyMode::On,
            resp: 2,
        }
    }

    pub fn id(&self) -> u64 {
        self.handle.id
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// True when replies go out in RESP3.
    pub fn is_resp3(&self) -> bool {
        self.resp == 3
    }

    fn set_resp(&mut self, resp: u8) {
        self.resp = resp;
        self.handle.details().resp = resp;
    }

    /// Back to a new connection's state (RESET).
    pub fn reset(&mut self) {
        self.reply = ReplyMode::On;
        self.set_resp(2);
        let mut details = self.handle.details();
        details.name = None;
        details.no_evict = false;
    }
}

/// A local command's reply.
pub enum LocalReply {
    Now(Bytes),
    /// Reply, then close the connection.
    Quit(Bytes),
    /// The reply needs the cluster (INFO's keyspace).
    Later(Pin<Box<dyn Future<Output = Bytes> + Send>>),
}

pub(super) const OK: &[u8] = b"+OK\r\n";
pub(super) const SYNTAX: &str = "ERR syntax error";

pub(super) fn error(text: &str) -> LocalReply {
    let mut out = BytesMut::new();
    encode::error(&mut out, text);
    LocalReply::Now(out.freeze())
}

pub(super) fn bulk(data: &[u8]) -> LocalReply {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    encode::bulk(&mut out, data);
    LocalReply::Now(out.freeze())
}

pub(super) fn integer(n: i64) -> LocalReply {
    let mut out = BytesMut::with_capacity(24);
    encode::integer(&mut out, n);
    LocalReply::Now(out.freeze())
}

/// Answers a command routed as local. Arity was checked by the table.
pub fn answer(
    proxy: &Arc<Proxy>,
    client: &mut ClientState,
    spec: &CommandSpec,
    req: &Request,
) -> LocalReply {
    let arg = |i| req.arg(i).unwrap_or_default();
    match spec.name {
        "ping" => match req.len() {
            1 => LocalReply::Now(Bytes::from_static(b"+PONG\r\n")),
            2 => bulk(arg(1)),
            _ => error("ERR wrong number of arguments for 'ping' command"),
        },
        "echo" => bulk(arg(1)),
        "quit" => LocalReply::Quit(Bytes::from_static(OK)),
        "readonly" | "readwrite" => LocalReply::Now(Bytes::from_static(OK)),
        // One server: a master with no replicas (and no replication offset
        // of its own to give).
        "role" => LocalReply::Now(Bytes::from_static(b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")),
        "select" => match std::str::from_utf8(arg(1))
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(0) => LocalReply::Now(Bytes::from_static(OK)),
            Some(_) => error("ERR DB index is out of range"),
            None => error("ERR value is not an integer or out of range"),
        },
        "auth" => auth(&req.args().skip(1).collect::<Vec<_>>()),
        "hello" => hello(client, req),
        "cluster|keyslot" => integer(i64::from(key_slot(arg(2)))),
        "cluster|slots" => LocalReply::Now(emulation::slots(&identity(proxy, client))),
        "cluster|shards" => LocalReply::Now(emulation::shards(&identity(proxy, client))),
        "cluster|nodes" => LocalReply::Now(emulation::nodes(&identity(proxy, client))),
        "cluster|myid" => bulk(identity(proxy, client).my_id().as_bytes()),
        "cluster|info" => LocalReply::Now(emulation::info(proxy.cluster.snapshot().is_complete())),
        "cluster|replicas" | "cluster|slaves" => {
            LocalReply::Now(emulation::replicas(&identity(proxy, client), arg(2)))
        }
        "cluster|links" => LocalReply::Now(Bytes::from_static(b"*0\r\n")),
        "client|id" => integer(client.id() as i64),
        "client|getname" => match client.handle.details().name.clone() {
            Some(name) => bulk(&name),
            None => LocalReply::Now(Bytes::from_static(b"$-1\r\n")),
        },
        "client|info" => bulk(format!("{}\n", client.handle.line(Instant::now())).as_bytes()),
        "client|list" => client_commands::list(proxy, req),
        "client|kill" => client_commands::kill(proxy, client, req),
        "client|unblock" => blocking::unblock(proxy, req),
        "client|pause" => pause::client_pause(&proxy.pause, req),
        "client|unpause" => pause::client_unpause(&proxy.pause),
        "client|setinfo" => client_commands::setinfo(client, req),
        "client|no-evict" => match client_commands::on_off(arg(2)) {
            Some(on) => {
                client.handle.details().no_evict = on;
                LocalReply::Now(Bytes::from_static(OK))
            }
            None => error(SYNTAX),
        },
        "client|reply" => client_commands::reply(client, arg(2)),
        "client|setname" => match set_name(client, arg(2)) {
            Ok(()) => LocalReply::Now(Bytes::from_static(OK)),
            Err(e) => error(e),
        },
        "info" => {
            let proxy = proxy.clone();
            let sections: Vec<String> = req
                .args()
                .skip(1)
                .map(|s| String::from_utf8_lossy(s).to_lowercase())
                .collect();
            LocalReply::Later(Box::pin(async move { info(&proxy, &sections).await }))
        }
        other => error(&format!("ERR '{other}' has no local handler in this proxy")),
    }
}

/// The emulated cluster, as this client should address it.
fn identity(proxy: &Proxy, client: &ClientState) -> Identity {
    Identity::new(&proxy.config.advertise, client.handle.local_addr)
}

/// The proxy has no password: it behaves like a server whose default user
/// is `nopass`.
fn auth(args: &[&[u8]]) -> LocalReply {
    match args {
        [_password] => error(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ),
        [user, _password] if *user == b"default" => LocalReply::Now(Bytes::from_static(OK)),
        _ => error("WRONGPASS invalid username-password pair or user is disabled."),
    }
}

pub(super) fn set_name(client: &mut ClientState, name: &[u8]) -> Result<(), &'static str> {
    if name.iter().any(|&c| c <= b' ' || c > b'~') {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    client.handle.details().name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
    Ok(())
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]. The reply is written
/// here as RESP2's flat list; a client now on RESP3 gets it as a map, like
/// every reply (`resp::resp3`).
fn hello(client: &mut ClientState, req: &Request) -> LocalReply {
    let mut i = 1;
    let mut resp = client.resp;
    if let Some(ver) = req.arg(1) {
        match std::str::from_utf8(ver)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(v @ (2 | 3)) => resp = v as u8,
            Some(_) => return error("NOPROTO unsupported protocol version"),
            None => return error("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    while let Some(opt) = req.arg(i) {
        if opt.eq_ignore_ascii_case(b"AUTH") && i + 2 < req.len() {
            let user = req.arg(i + 1).unwrap_or_default();
            let pass = req.arg(i + 2).unwrap_or_default();
            if let LocalReply::Now(reply) = auth(&[user, pass]) {
                if reply.first() == Some(&b'-') {
                    return LocalReply::Now(reply);
                }
            }
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && i + 1 < req.len() {
            if let Err(e) = set_name(client, req.arg(i + 1).unwrap_or_default()) {
                return error(e);
            }
            i += 2;
        } else {
            return error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    let mut out = BytesMut::with_capacity(160);
    encode::array_header(&mut out, 14);
    for (key, value) in [
        ("server", "redis"),
        ("version", crate::proxy::REDIS_VERSION),
    ] {
        encode::bulk(&mut out, key.as_bytes());
        encode::bulk(&mut out, value.as_bytes());
    }
    client.set_resp(resp);
    encode::bulk(&mut out, b"proto");
    encode::integer(&mut out, i64::from(resp));
    encode::bulk(&mut out, b"id");
    encode::integer(&mut out, client.id() as i64);
    for (key, value) in [("mode", "standalone"), ("role", "master")] {
        encode::bulk(&mut out, key.as_bytes());
        encode::bulk(&mut out, value.as_bytes());
    }
    encode::bulk(&mut out, b"modules");
    encode::array_header(&mut out, 0);
    LocalReply::Now(out.freeze())
}

/// INFO: the proxy's own server, clients and stats sections, `cluster_enabled:0`
/// (the proxy presents itself as a plain server), and the keyspace summed
/// over every master.
async fn info(proxy: &Proxy, sections: &[String]) -> Bytes {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "everything" || s == "default");
    let wants = |name: &str| all || sections.iter().any(|s| s == name);
    let stats = &proxy.stats;
    let mut text = String::new();
    if wants("server") {
        let uptime = stats.started.elapsed().as_secs();
        text.push_str(&format!(
            "# Server\r\nredis_version:{}\r\nslotway_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
            super::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            usize::BITS,
            std::process::id(),
            stats.port,
            uptime,
            uptime / 86400,
        ));
    }
    if wants("clients") {
        text.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            stats.connected_clients.load(Ordering::Relaxed),
            proxy.config.limits.max_clients
        ));
    }
    if wants("stats") {
        text.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\n\r\n",
            stats.connections_received.load(Ordering::Relaxed),
            proxy.metrics.total_commands(),
            stats.rejected_connections.load(Ordering::Relaxed),
        ));
    }
    if wants("cluster") {
        text.push_str("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    }
    if wants("keyspace") {
        text.push_str("# Keyspace\r\n");
        match keyspace(proxy).await {
            Ok(Some((keys, expires))) => {
                text.push_str(&format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n"));
            }
            Ok(None) => {}
            Err(reply) => return reply,
        }
        text.push_str("\r\n");
    }
    let text = text.trim_end_matches("\r\n");
    let mut out = BytesMut::with_capacity(text.len() + 16);
    encode::bulk(&mut out, text.as_bytes());
    out.freeze()
}

/// Sums `db0:keys=..,expires=..` over every master's INFO keyspace.
async fn keyspace(proxy: &Proxy) -> Result<Option<(u64, u64)>, Bytes> {
    let request = Request::from_args(&["INFO", "keyspace"]).raw().clone();
    // No master known yet: INFO still answers, with no keyspace line.
    let Ok(replies) = ask_every_master(proxy, request, true).await else {
        return Ok(None);
    };
    let (mut keys, mut expires, mut any) = (0u64, 0u64, false);
    for reply in replies {
        let text = match Frame::parse(&reply) {
            Ok(Some((frame, _))) if frame.as_bytes().is_some() => {
                String::from_utf8_lossy(frame.as_bytes().map(|b| &b[..]).unwrap_or_default())
                    .into_owned()
            }
            _ => return Err(reply),
        };
        for line in text.lines() {
            let Some(fields) = line.strip_prefix("db0:") else {
                continue;
            };
            for field in fields.split(',') {
                match field.split_once('=') {
                    Some(("keys", n)) => keys += n.parse::<u64>().unwrap_or(0),
                    Some(("expires", n)) => expires += n.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
            any = true;
        }
    }
    Ok(any.then_some((keys, expires)))
}
