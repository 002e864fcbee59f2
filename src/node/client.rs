//! One connected client's own state: its id and name, the per-command
//! cluster flags (ASKING, READONLY), and its transaction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::command::CommandSpec;
use crate::resp::Request;

/// Commands that run at once even inside MULTI.
const RUN_INSIDE_MULTI: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];

/// The state of an open MULTI.
#[derive(Debug, Default)]
pub struct Transaction {
    pub queued: Vec<Request>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub aborted: bool,
}

#[derive(Debug)]
pub struct ClientState {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    pub name: Option<Bytes>,
    pub created: Instant,
    /// ASKING was the previous command: an importing slot is served.
    pub asking: bool,
    /// READONLY: a replica serves reads of its master's slots.
    pub readonly: bool,
    pub multi: Option<Transaction>,
    /// Keys under WATCH; `watch_dirty` is set when one of them is written.
    pub watched: Vec<Bytes>,
    pub watch_dirty: Arc<AtomicBool>,
    /// Name of the last command run (CLIENT LIST `cmd=`).
    pub last_command: &'static str,
    /// True while EXEC runs the queued commands (the EXEC handler sets it
    /// and clears it after): a blocking command (BLPOP...) must not block
    /// then, and answers as if its timeout had passed, as Redis does.
    pub in_exec: bool,
    /// True while a blocking command woken by a write of one of its keys
    /// runs again (the connection sets it): a key that now holds another
    /// type leaves it waiting, as Redis only serves a blocked client from
    /// a key of the type it waits for, where a first run answers WRONGTYPE.
    pub block_retry: bool,
}

impl ClientState {
    pub fn new(id: u64, addr: Option<SocketAddr>) -> Self {
        ClientState {
            id,
            addr,
            name: None,
            created: Instant::now(),
            asking: false,
            readonly: false,
            multi: None,
            watched: Vec::new(),
            watch_dirty: Arc::new(AtomicBool::new(false)),
            last_command: "NULL",
            in_exec: false,
            block_retry: false,
        }
    }

    /// Inside MULTI, queues `req` and returns true (the caller answers
    /// `+QUEUED`); outside, or for EXEC/DISCARD/..., returns false.
    pub fn queue_in_multi(&mut self, spec: &'static CommandSpec, req: &Request) -> bool {
        match &mut self.multi {
            Some(tx) if !RUN_INSIDE_MULTI.contains(&spec.name) => {
                tx.queued.push(req.clone());
                true
            }
            _ => false,
        }
    }

    /// A command was refused while a MULTI is open: EXEC will abort.
    pub fn flag_multi_error(&mut self) {
        if let Some(tx) = &mut self.multi {
            tx.aborted = true;
        }
    }

    /// True when a blocking command must answer at once instead of
    /// blocking: inside a transaction.
    pub fn may_not_block(&self) -> bool {
        self.in_exec || self.multi.is_some()
    }

    /// True if a watched key was written since WATCH.
    pub fn watch_broken(&self) -> bool {
        self.watch_dirty.load(Ordering::Acquire)
    }
}
