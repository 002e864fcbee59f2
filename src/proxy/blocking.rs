//! Blocking commands (BLPOP, BZPOPMIN, XREAD BLOCK ...) on their dedicated
//! connections: how long each may legitimately wait for its reply, and
//! CLIENT UNBLOCK for the proxy's clients.
//!
//! A blocking command's reply may take its own timeout; past that plus the
//! request timeout, the node counts as failing (a frozen master), and the
//! client gets an error instead of waiting forever. A timeout of 0 waits
//! forever: then a frozen node cannot be told from an empty list.
//!
//! CLIENT UNBLOCK is passed on to the node that holds the client's command
//! blocked, naming the dedicated connection by its `CLIENT ID` there. The
//! node decides: a command that already took its element answers with it
//! (CLIENT UNBLOCK gets `:0`), so an unblocked client never loses data.
//! Cancelling on the proxy's side could not promise that.

use std::sync::Arc;
use std::time::Duration;

use crate::resp::Request;
use crate::resp::request::parse_int;

use super::Proxy;
use super::backend::Node;
use super::client_commands::too_many_arguments;
use super::clients::ClientHandle;
use super::dedicated::{DedicatedConn, ReplyWait};
use super::dispatch::{Target, execute};
use super::local::{LocalReply, error, integer};
use super::router::block_option;

/// How long the reply to blocking command `name` may take, by its own
/// timeout argument. A timeout the proxy cannot read waits forever: the
/// node answers a malformed one at once, and a valid one the proxy
/// misreads must not fail early.
pub fn reply_wait(name: &str, req: &Request) -> ReplyWait {
    match name {
        "blpop" | "brpop" | "brpoplpush" | "blmove" | "bzpopmin" | "bzpopmax" => {
            seconds(req.arg(req.len().saturating_sub(1)))
        }
        "blmpop" | "bzmpop" => seconds(req.arg(1)),
        "xread" | "xreadgroup" => milliseconds(block_option(req)),
        _ => ReplyWait::Prompt,
    }
}

/// A timeout in seconds, as BLPOP reads it (a double; 0 is forever).
fn seconds(arg: Option<&[u8]>) -> ReplyWait {
    let Some(secs) = arg
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|s| s.parse::<f64>().ok())
    else {
        return ReplyWait::Forever;
    };
    if secs.is_nan() || secs < 0.0 {
        // Refused by the node at once.
        return ReplyWait::Prompt;
    }
    if secs == 0.0 {
        return ReplyWait::Forever;
    }
    Duration::try_from_secs_f64(secs).map_or(ReplyWait::Forever, ReplyWait::Blocking)
}

/// A timeout in milliseconds, as XREAD's BLOCK reads it (0 is forever);
/// without one, XREAD answers at once.
fn milliseconds(arg: Option<&[u8]>) -> ReplyWait {
    let Some(arg) = arg else {
        return ReplyWait::Prompt;
    };
    match std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        None | Some(0) => ReplyWait::Forever,
        Some(ms) if ms < 0 => ReplyWait::Prompt,
        Some(ms) => ReplyWait::Blocking(Duration::from_millis(ms.unsigned_abs())),
    }
}

/// Where a client's blocking command waits: the node, and the dedicated
/// connection's client id there.
///
/// A CLIENT UNBLOCK marks it before it leaves for the node, and the command
/// reads the mark when it ends, both under the client's lock. A connection
/// so marked is closed rather than pooled: the CLIENT UNBLOCK naming it may
/// still be on its way, and must not reach another client's command
/// blocked on the same connection. Unmarked when the command ended, the
/// CLIENT UNBLOCK finds nothing and answers `:0` without sending anything.
#[derive(Clone)]
pub struct BlockedOn {
    node: Arc<Node>,
    backend_id: i64,
    unblocking: bool,
}

/// Forgets the client's [`BlockedOn`] when the command ends
/// ([`BlockedGuard::finish`]) or is cancelled.
pub struct BlockedGuard<'a> {
    client: &'a ClientHandle,
}

impl BlockedOn {
    /// Notes that `client` waits on `conn` to `node`, until the guard is
    /// dropped. `None` when the node did not tell the connection's id.
    pub fn register<'a>(
        client: &'a ClientHandle,
        node: &Arc<Node>,
        conn: &DedicatedConn,
    ) -> Option<BlockedGuard<'a>> {
        let backend_id = conn.backend_id()?;
        *client.blocked_on() = Some(BlockedOn {
            node: node.clone(),
            backend_id,
            unblocking: false,
        });
        Some(BlockedGuard { client })
    }
}

impl BlockedGuard<'_> {
    /// Ends the wait. True when a CLIENT UNBLOCK was sent for it: then the
    /// connection must not be reused.
    pub fn finish(self) -> bool {
        self.client
            .blocked_on()
            .take()
            .is_some_and(|b| b.unblocking)
    }
}

impl Drop for BlockedGuard<'_> {
    fn drop(&mut self) {
        self.client.blocked_on().take();
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR], with Redis's checks in Redis's order.
/// Only a client blocked in a blocking command can be unblocked; one held
/// by the proxy (WAIT, CLIENT PAUSE) gets `:0`.
pub fn unblock(proxy: &Arc<Proxy>, req: &Request) -> LocalReply {
    let arg = |i| req.arg(i).unwrap_or_default();
    if req.len() > 4 {
        return too_many_arguments(req);
    }
    let mode = match req.arg(3) {
        None => "TIMEOUT",
        Some(m) if m.eq_ignore_ascii_case(b"timeout") => "TIMEOUT",
        Some(m) if m.eq_ignore_ascii_case(b"error") => "ERROR",
        Some(_) => return error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let Some(id) = parse_int(arg(2)) else {
        return error("ERR value is not an integer or out of range");
    };
    let blocked = u64::try_from(id)
        .ok()
        .and_then(|id| proxy.clients.get(id))
        .and_then(|client| {
            let mut blocked = client.blocked_on();
            let b = blocked.as_mut()?;
            b.unblocking = true;
            Some(b.clone())
        });
    let Some(BlockedOn {
        node, backend_id, ..
    }) = blocked
    else {
        return integer(0);
    };
    let request = Request::from_args(&["CLIENT", "UNBLOCK", &backend_id.to_string(), mode])
        .raw()
        .clone();
    let proxy = proxy.clone();
    LocalReply::Later(Box::pin(async move {
        execute(&proxy, request, Target::Node(node), false).await
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(args: &[&str]) -> ReplyWait {
        let req = Request::from_args(args);
        reply_wait(&args[0].to_lowercase(), &req)
    }

    #[test]
    fn blocking_commands_wait_their_own_timeout() {
        let secs = |s: f64| ReplyWait::Blocking(Duration::from_secs_f64(s));
        assert_eq!(wait(&["BLPOP", "a", "b", "1.5"]), secs(1.5));
        assert_eq!(wait(&["BRPOP", "a", "0"]), ReplyWait::Forever);
        assert_eq!(wait(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "2"]), secs(2.0));
        assert_eq!(wait(&["BZPOPMIN", "z", "0.25"]), secs(0.25));
        assert_eq!(wait(&["BLMPOP", "3", "1", "l", "LEFT"]), secs(3.0));
        assert_eq!(wait(&["BZMPOP", "0", "1", "z", "MIN"]), ReplyWait::Forever);
        assert_eq!(
            wait(&["XREAD", "COUNT", "1", "BLOCK", "250", "STREAMS", "s", "$"]),
            ReplyWait::Blocking(Duration::from_millis(250))
        );
        assert_eq!(
            wait(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">"
            ]),
            ReplyWait::Forever
        );
        // No BLOCK: answered at once.
        assert_eq!(wait(&["XREAD", "STREAMS", "s", "0"]), ReplyWait::Prompt);
    }

    #[test]
    fn timeouts_the_node_refuses_or_the_proxy_cannot_read() {
        // Negative: the node answers an error at once.
        assert_eq!(wait(&["BLPOP", "a", "-1"]), ReplyWait::Prompt);
        assert_eq!(
            wait(&["XREAD", "BLOCK", "-5", "STREAMS", "s", "$"]),
            ReplyWait::Prompt
        );
        // Unreadable (hex floats strtold takes), or too large: never fail early.
        assert_eq!(wait(&["BLPOP", "a", "0x10"]), ReplyWait::Forever);
        assert_eq!(wait(&["BLPOP", "a", "1e300"]), ReplyWait::Forever);
        assert_eq!(wait(&["BLPOP", "a", "inf"]), ReplyWait::Forever);
    }
}
