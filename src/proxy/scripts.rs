//! Scripts and functions through the proxy.
//!
//! EVAL, EVAL_RO, FCALL and FCALL_RO are routed by their keys like any
//! command. EVALSHA and EVALSHA_RO come here: a master that does not know
//! the script (`NOSCRIPT`: a replica promoted since the script was loaded, a
//! node restarted or added) is given it from the proxy's cache, filled by
//! every SCRIPT LOAD that passed through any session, and the call is sent
//! again, once.
//!
//! The administration commands act on every master, so that the cluster
//! looks like one server: SCRIPT LOAD and FLUSH, FUNCTION LOAD, DELETE,
//! FLUSH and RESTORE are sent to all of them (the first error, else the
//! first reply, is the answer); SCRIPT EXISTS answers 1 for a script every
//! master has; SCRIPT KILL and FUNCTION KILL succeed if some master was
//! running a script. FUNCTION LIST, DUMP and STATS are answered by one.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

use crate::resp::{Frame, Request, encode};

use super::Proxy;
use super::dispatch::{Target, ask_every_master, execute, pick};

/// Script bodies kept; past it the cache starts over (the nodes still have
/// the scripts; only the healing of a NOSCRIPT needs the body).
const MAX_CACHED_SCRIPTS: usize = 10_000;

/// Script bodies by SHA1 (lower-case hex, as SCRIPT LOAD returns it).
#[derive(Default)]
pub struct ScriptCache {
    bodies: Mutex<HashMap<Bytes, Bytes>>,
}

impl ScriptCache {
    fn bodies(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Bytes>> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, sha: Bytes, body: Bytes) {
        let mut bodies = self.bodies();
        if bodies.len() >= MAX_CACHED_SCRIPTS && !bodies.contains_key(&sha) {
            bodies.clear();
        }
        bodies.insert(sha, body);
    }

    fn get(&self, sha: &[u8]) -> Option<Bytes> {
        self.bodies().get(&sha.to_ascii_lowercase()[..]).cloned()
    }

    fn clear(&self) {
        self.bodies().clear();
    }
}

/// EVALSHA or EVALSHA_RO to `target`; a NOSCRIPT for a script the proxy
/// knows loads it on the master that said so, and the call goes again.
pub async fn evalsha(proxy: &Proxy, req: &Request, target: Target, readonly: bool) -> Bytes {
    let reply = execute(proxy, req.raw().clone(), target.clone(), readonly).await;
    if !reply.starts_with(b"-NOSCRIPT") {
        return reply;
    }
    let Some(body) = req.arg(1).and_then(|sha| proxy.scripts.get(sha)) else {
        return reply;
    };
    let Some(node) = pick(proxy, &target) else {
        return reply;
    };
    let load = Request::from_args(&[&b"SCRIPT"[..], b"LOAD", &body]);
    let loaded = execute(proxy, load.raw().clone(), Target::Node(node), false).await;
    if loaded.first() == Some(&b'-') {
        return reply;
    }
    tracing::debug!("script reloaded on a master that lost it");
    execute(proxy, req.raw().clone(), target, readonly).await
}

/// SCRIPT and FUNCTION subcommands that concern every master.
pub async fn admin(proxy: &Proxy, name: &str, req: &Request) -> Bytes {
    let replies = match ask_every_master(proxy, req.raw().clone(), false).await {
        Ok(replies) => replies,
        Err(reply) => return reply,
    };
    match name {
        "script|exists" => all_exist(&replies),
        "script|kill" | "function|kill" => any_ok(replies),
        _ => {
            let reply = first_error_else_first(replies);
            if reply.first() != Some(&b'-') {
                match name {
                    "script|load" => {
                        if let (Ok(Some((Frame::Bulk(sha), _))), Some(body)) =
                            (Frame::parse(&reply), req.arg_bytes(2))
                        {
                            proxy.scripts.insert(sha, body);
                        }
                    }
                    "script|flush" => proxy.scripts.clear(),
                    _ => {}
                }
            }
            reply
        }
    }
}

/// The first error among the masters' replies, else the first reply.
fn first_error_else_first(replies: Vec<Bytes>) -> Bytes {
    let first_error = replies.iter().find(|r| r.first() == Some(&b'-')).cloned();
    first_error
        .or_else(|| replies.into_iter().next())
        .unwrap_or_else(|| Bytes::from_static(b"-CLUSTERDOWN The cluster is down\r\n"))
}

/// `+OK` if some master stopped a script; else the first master's error
/// (`NOTBUSY`).
fn any_ok(replies: Vec<Bytes>) -> Bytes {
    if replies.iter().any(|r| r.starts_with(b"+OK")) {
        return Bytes::from_static(b"+OK\r\n");
    }
    first_error_else_first(replies)
}

/// SCRIPT EXISTS: 1 for a script every master has.
fn all_exist(replies: &[Bytes]) -> Bytes {
    let mut flags: Option<Vec<bool>> = None;
    for reply in replies {
        let Ok(Some((Frame::Array(items), _))) = Frame::parse(reply) else {
            return reply.clone();
        };
        let these = items.iter().map(|i| *i == Frame::Integer(1));
        flags = Some(match flags {
            None => these.collect(),
            Some(prev) => prev.iter().zip(these).map(|(a, b)| *a && b).collect(),
        });
    }
    let flags = flags.unwrap_or_default();
    let mut out = BytesMut::new();
    encode::array_header(&mut out, flags.len());
    for flag in flags {
        encode::integer(&mut out, i64::from(flag));
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_script_exists_only_where_every_master_has_it() {
        let replies = [b("*2\r\n:1\r\n:1\r\n"), b("*2\r\n:1\r\n:0\r\n")];
        assert_eq!(all_exist(&replies), b("*2\r\n:1\r\n:0\r\n"));
        assert_eq!(all_exist(&[b("-ERR x\r\n")]), b("-ERR x\r\n"));
    }

    #[test]
    fn merges() {
        assert_eq!(
            first_error_else_first(vec![b("$1\r\na\r\n"), b("-ERR no\r\n")]),
            b("-ERR no\r\n")
        );
        assert_eq!(first_error_else_first(vec![b("+OK\r\n")]), b("+OK\r\n"));
        assert_eq!(
            any_ok(vec![b("-NOTBUSY x\r\n"), b("+OK\r\n")]),
            b("+OK\r\n")
        );
        assert_eq!(any_ok(vec![b("-NOTBUSY x\r\n")]), b("-NOTBUSY x\r\n"));
    }

    #[test]
    fn the_cache_is_keyed_by_lower_case_sha() {
        let cache = ScriptCache::default();
        cache.insert(b("abc"), b("return 1"));
        assert_eq!(cache.get(b"ABC"), Some(b("return 1")));
        cache.clear();
        assert_eq!(cache.get(b"abc"), None);
    }
}
