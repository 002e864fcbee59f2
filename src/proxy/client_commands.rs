//! CLIENT LIST, KILL, SETINFO, REPLY, NO-EVICT: about the proxy's own
//! clients, with Redis 7's arguments and error texts.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::resp::Request;

use super::Proxy;
use super::clients::ClientHandle;
use super::local::{ClientState, LocalReply, OK, ReplyMode, SYNTAX, bulk, error, integer};

/// The client types CLIENT LIST and CLIENT KILL filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Pubsub,
    /// Replication links: the proxy has none of its own.
    Replication,
}

fn client_type(name: &[u8]) -> Result<ClientType, LocalReply> {
    let lower = name.to_ascii_lowercase();
    match &lower[..] {
        b"normal" => Ok(ClientType::Normal),
        b"pubsub" => Ok(ClientType::Pubsub),
        b"master" | b"slave" | b"replica" => Ok(ClientType::Replication),
        _ => Err(error(&format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        ))),
    }
}

fn is_type(client: &ClientHandle, wanted: ClientType) -> bool {
    match wanted {
        ClientType::Normal => !client.is_pubsub(),
        ClientType::Pubsub => client.is_pubsub(),
        ClientType::Replication => false,
    }
}

/// `Some(true)` for ON, `Some(false)` for OFF, any case.
pub fn on_off(arg: &[u8]) -> Option<bool> {
    if arg.eq_ignore_ascii_case(b"on") {
        Some(true)
    } else if arg.eq_ignore_ascii_case(b"off") {
        Some(false)
    } else {
        None
    }
}

/// CLIENT LIST [TYPE type | ID id [id ...]].
pub fn list(proxy: &Arc<Proxy>, req: &Request) -> LocalReply {
    let arg = |i| req.arg(i).unwrap_or_default();
    let clients = proxy.clients.all();
    let chosen: Vec<&Arc<ClientHandle>> = if req.len() == 4 && arg(2).eq_ignore_ascii_case(b"type")
    {
        let wanted = match client_type(arg(3)) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        clients.iter().filter(|c| is_type(c, wanted)).collect()
    } else if req.len() > 3 && arg(2).eq_ignore_ascii_case(b"id") {
        let mut ids = Vec::new();
        for i in 3..req.len() {
            match parse_i64(arg(i)) {
                Some(id) => ids.push(id),
                None => return error("ERR Invalid client ID"),
            }
        }
        // In the order asked, as Redis lists them.
        ids.iter()
            .filter_map(|&id| clients.iter().find(|c| c.id as i64 == id))
            .collect()
    } else if req.len() != 2 {
        return error(SYNTAX);
    } else {
        clients.iter().collect()
    };
    let now = Instant::now();
    let mut text = String::new();
    for client in chosen {
        text.push_str(&client.line(now));
        text.push('\n');
    }
    bulk(text.as_bytes())
}

/// What CLIENT KILL's filters ask for; every given filter must match.
#[derive(Default)]
struct KillFilter<'a> {
    id: Option<u64>,
    kind: Option<ClientType>,
    addr: Option<&'a [u8]>,
    laddr: Option<&'a [u8]>,
    skip_me: bool,
}

impl KillFilter<'_> {
    fn matches(&self, client: &ClientHandle, me: u64) -> bool {
        self.id.is_none_or(|id| client.id == id)
            && self.kind.is_none_or(|t| is_type(client, t))
            && self
                .addr
                .is_none_or(|a| client.addr.to_string().as_bytes() == a)
            && self
                .laddr
                .is_none_or(|a| client.local_addr.to_string().as_bytes() == a)
            && !(self.skip_me && client.id == me)
    }
}

/// `CLIENT KILL addr:port`, or `CLIENT KILL <filter value> ...`: kills the
/// matching clients on every worker thread. The caller, when it is one of
/// them, gets its reply first, then its connection closes.
pub fn kill(proxy: &Arc<Proxy>, client: &ClientState, req: &Request) -> LocalReply {
    let arg = |i| req.arg(i).unwrap_or_default();
    let old_form = req.len() == 3;
    let mut filter = KillFilter {
        skip_me: !old_form,
        ..KillFilter::default()
    };
    if old_form {
        filter.addr = Some(arg(2));
    } else {
        let mut i = 2;
        while i < req.len() {
            let (option, value) = (arg(i), req.arg(i + 1));
            let Some(value) = value else {
                return error(SYNTAX);
            };
            let option = option.to_ascii_lowercase();
            match &option[..] {
                b"id" => match parse_i64(value) {
                    Some(id) if id > 0 => filter.id = Some(id as u64),
                    _ => return error("ERR client-id should be greater than 0"),
                },
                b"type" => match client_type(value) {
                    Ok(t) => filter.kind = Some(t),
                    Err(reply) => return reply,
                },
                b"addr" => filter.addr = Some(value),
                b"laddr" => filter.laddr = Some(value),
                // The proxy's only user is `default` (it has no ACLs).
                b"user" if value == b"default" => {}
                b"user" => {
                    return error(&format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(value)
                    ));
                }
                b"skipme" => match value.to_ascii_lowercase().as_slice() {
                    b"yes" => filter.skip_me = true,
                    b"no" => filter.skip_me = false,
                    _ => return error(SYNTAX),
                },
                _ => return error(SYNTAX),
            }
            i += 2;
        }
    }
    let me = client.id();
    let mut killed = 0;
    let mut kill_me = false;
    for other in proxy.clients.all() {
        if filter.matches(&other, me) {
            killed += 1;
            if other.id == me {
                kill_me = true;
            } else {
                proxy.clients.kill(other.id);
            }
        }
    }
    let reply = match (old_form, killed) {
        (true, 0) => return error("ERR No such client"),
        (true, _) => Bytes::from_static(OK),
        (false, n) => match integer(n) {
            LocalReply::Now(reply) => reply,
            other => return other,
        },
    };
    if kill_me {
        LocalReply::Quit(reply)
    } else {
        LocalReply::Now(reply)
    }
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value.
pub fn setinfo(client: &ClientState, req: &Request) -> LocalReply {
    let attr = req.arg(2).unwrap_or_default();
    let value = req.arg(3).unwrap_or_default();
    let lib_name = attr.eq_ignore_ascii_case(b"lib-name");
    if !lib_name && !attr.eq_ignore_ascii_case(b"lib-ver") {
        return error(&format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attr)
        ));
    }
    if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return error(&format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(attr)
        ));
    }
    let value = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
    let mut details = client.handle.details();
    if lib_name {
        details.lib_name = value;
    } else {
        details.lib_ver = value;
    }
    LocalReply::Now(Bytes::from_static(OK))
}

/// CLIENT REPLY ON|OFF|SKIP. Only ON answers; the session drops the
/// replies OFF and SKIP silence (see `ReplyMode`).
pub fn reply(client: &mut ClientState, mode: &[u8]) -> LocalReply {
    if mode.eq_ignore_ascii_case(b"on") {
        client.reply = ReplyMode::On;
        LocalReply::Now(Bytes::from_static(OK))
    } else if mode.eq_ignore_ascii_case(b"off") {
        client.reply = ReplyMode::Off;
        LocalReply::Now(Bytes::new())
    } else if mode.eq_ignore_ascii_case(b"skip") {
        if client.reply != ReplyMode::Off {
            client.reply = ReplyMode::Skip;
        }
        LocalReply::Now(Bytes::new())
    } else {
        error(SYNTAX)
    }
}

/// Redis's reply to a CLIENT subcommand with too many arguments.
pub fn too_many_arguments(req: &Request) -> LocalReply {
    error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
        String::from_utf8_lossy(req.arg(1).unwrap_or_default())
    ))
}

fn parse_i64(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}
