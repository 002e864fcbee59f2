//! Applying a write stream: a master's replication stream on a replica, an
//! append-only file at start. The commands run as Redis runs its master
//! client: no cluster redirection, no reply, never blocking, and with
//! expiry off (the stream carries its own `DEL`s). A MULTI ... EXEC block
//! is applied only once complete, in one go, so no reader of the node sees
//! half a transaction.

use std::sync::Arc;

use bytes::BytesMut;

use super::client::ClientState;
use super::cmd;
use super::db::unix_ms;
use super::state::{NodeState, Shared};
use crate::resp::{ProtocolError, Request, RequestDecoder};

/// Applies a stream of commands, remembering a MULTI block cut short.
pub struct Replayer {
    client: ClientState,
    decoder: RequestDecoder,
    /// Commands of a MULTI block whose EXEC has not arrived yet, and their
    /// size in bytes (counted as applied once the EXEC arrives).
    open_tx: Option<(Vec<Request>, usize)>,
    /// Replies are discarded; kept to reuse the allocation.
    out: BytesMut,
    /// Refuse inline commands (see [`Replayer::multibulk_only`]).
    multibulk_only: bool,
}

impl Replayer {
    /// A replayer whose commands show as client `id` (CLIENT LIST).
    pub fn new(id: u64) -> Self {
        let mut client = ClientState::new(id, None);
        client.replaying = true;
        Replayer {
            client,
            decoder: RequestDecoder::default(),
            open_tx: None,
            out: BytesMut::new(),
            multibulk_only: false,
        }
    }

    /// Every command must be a RESP array: an append-only file never holds
    /// an inline command, so other bytes where a command starts mean the
    /// file is damaged, not a command to run.
    #[must_use]
    pub fn multibulk_only(mut self) -> Self {
        self.multibulk_only = true;
        self
    }

    /// Applies every complete command at the front of `buf` and removes it
    /// from `buf`; returns the bytes applied. Bytes of a partial command, or
    /// of a MULTI block still open, are kept for the next call (a partial
    /// command stays in `buf`; an open block is held here and counted when
    /// its EXEC comes).
    ///
    /// # Errors
    /// A [`ProtocolError`] if the stream is not valid RESP: it cannot be
    /// trusted any further.
    pub fn apply(
        &mut self,
        node: &mut NodeState,
        shared: &Arc<Shared>,
        buf: &mut BytesMut,
    ) -> Result<usize, ProtocolError> {
        let mut applied = 0;
        let now = unix_ms();
        loop {
            // The decoder consumes nothing of a command until it is whole,
            // so `buf` always starts where a command starts.
            match buf.first() {
                Some(&b) if self.multibulk_only && b != b'*' => {
                    return Err(ProtocolError::ExpectedMultibulk(char::from(b)));
                }
                _ => {}
            }
            let before = buf.len();
            let Some(req) = self.decoder.decode(buf)? else {
                return Ok(applied);
            };
            let size = before - buf.len();
            let name = req.name();
            if name.eq_ignore_ascii_case(b"multi") {
                self.open_tx = Some((Vec::new(), size));
                continue;
            }
            if let Some((queued, bytes)) = &mut self.open_tx {
                *bytes += size;
                if !name.eq_ignore_ascii_case(b"exec") {
                    queued.push(req);
                    continue;
                }
                let (queued, bytes) = self.open_tx.take().unwrap_or_default();
                for req in &queued {
                    self.run(node, shared, req, now);
                }
                applied += bytes;
                continue;
            }
            self.run(node, shared, &req, now);
            applied += size;
        }
    }

    /// True if a MULTI block is waiting for its EXEC (an append-only file
    /// that ends here was cut in the middle of a transaction).
    pub fn in_transaction(&self) -> bool {
        self.open_tx.is_some()
    }

    fn run(&mut self, node: &mut NodeState, shared: &Arc<Shared>, req: &Request, now: i64) {
        let expiry = node.db.expiry_enabled();
        node.db.set_expiry_enabled(false);
        self.out.clear();
        let _ = cmd::execute(node, &mut self.client, shared, &mut self.out, req, now);
        node.db.set_expiry_enabled(expiry);
        if self.out.first() == Some(&b'-') {
            // The same command succeeded where it was first run; an error
            // here means the states differ. Worth a warning, not a stop.
            tracing::warn!(
                command = %String::from_utf8_lossy(req.name()),
                reply = %String::from_utf8_lossy(&self.out).trim_end(),
                "a replayed write failed"
            );
        }
    }
}

#[cfg(test)]
mod tests;
