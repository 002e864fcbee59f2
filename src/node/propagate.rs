//! The write stream: every change to a master's keyspace, as RESP commands
//! that a replica or the append-only file replays to reach the same state.
//!
//! Most writes go out as the client sent them: replayed on the same state
//! they do the same thing. A command whose effect depends on the clock or
//! on chance goes out as its effect instead, as Redis rewrites them:
//! relative TTLs become absolute (`SET k v PXAT t`, `PEXPIREAT k t`), SPOP
//! becomes SREM, a key MIGRATE moved away becomes `DEL`, and a key that
//! expired becomes `DEL` (replicas never expire keys on their own clock).
//! The commands of one EXEC are wrapped in MULTI/EXEC so a replica applies
//! them at once.
//!
//! The stream has an offset (`master_repl_offset`: bytes since the start)
//! and feeds two consumers, each only while it exists: the replication
//! backlog, which replicas read from by offset, and the buffer of the
//! append-only file. With neither, nothing is encoded.

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::db::Keyspace;
use crate::command::CommandSpec;
use crate::resp::{Request, encode};

/// The replication backlog: the last bytes of the stream, so a replica
/// that lost its link for a moment continues where it stopped (partial
/// resync) instead of taking a full copy.
///
/// It is also the replicas' output buffer, as in Redis 7: a replica link
/// sends straight from it, and the backlog keeps the bytes the slowest
/// link has not sent yet (its `floor`), up to a limit past which that
/// link loses its place and is dropped (`client-output-buffer-limit`).
#[derive(Debug)]
pub struct Backlog {
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    start: u64,
    /// Bytes kept at least (`repl-backlog-size`).
    size: usize,
    /// The first byte a replica link still has to send.
    floor: Option<u64>,
    /// The most bytes kept for `floor`.
    max_len: usize,
}

impl Backlog {
    fn new(size: usize, start: u64) -> Self {
        Backlog {
            buf: BytesMut::with_capacity(size.min(1 << 20)),
            start,
            size: size.max(1),
            floor: None,
            max_len: 0,
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= self.size * 2 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let mut keep = self.size;
        if let Some(floor) = self.floor {
            let wanted = usize::try_from(self.end().saturating_sub(floor)).unwrap_or(usize::MAX);
            keep = keep.max(wanted.min(self.max_len));
        }
        let drop = self.buf.len().saturating_sub(keep);
        // Trim in large steps so that appends stay amortised O(1).
        if drop >= self.size {
            let _ = self.buf.split_to(drop);
            self.start += drop as u64;
        }
    }

    /// Stream offset of the byte after the last one held.
    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Stream offset of the first byte held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Bytes held (`repl_backlog_histlen`).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The stream from `offset` to its end, or `None` if the backlog no
    /// longer (or not yet) holds `offset`.
    pub fn read_from(&self, offset: u64) -> Option<Bytes> {
        self.read_chunk(offset, usize::MAX)
    }

    /// At most `max` bytes of the stream from `offset` (none: `offset` is
    /// the end), or `None` if the backlog does not hold `offset`.
    pub fn read_chunk(&self, offset: u64, max: usize) -> Option<Bytes> {
        if offset < self.start || offset > self.end() {
            return None;
        }
        let skip = usize::try_from(offset - self.start).ok()?;
        let rest = self.buf.get(skip..)?;
        Some(Bytes::copy_from_slice(rest.get(..max).unwrap_or(rest)))
    }
}

/// Where the commands of a running EXEC stand in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecWrap {
    /// No EXEC running.
    Off,
    /// EXEC running, nothing written yet: MULTI goes out before the first
    /// write.
    Pending,
    /// MULTI written: EXEC goes out when the EXEC ends.
    Open,
}

/// The write stream of a node (see the module documentation).
#[derive(Debug)]
pub struct Feed {
    /// Offset of the next byte (`master_repl_offset`).
    offset: u64,
    backlog: Option<Backlog>,
    /// Bytes not yet written to the append-only file, while it is on.
    aof: Option<BytesMut>,
    /// What the running command asked to propagate instead of itself.
    instead: Option<Vec<Vec<Bytes>>>,
    exec: ExecWrap,
    /// The offset, for tasks that wait for new bytes (replica senders, the
    /// append-only file writer).
    offset_tx: watch::Sender<u64>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        let (offset_tx, _) = watch::channel(0);
        Feed {
            offset: 0,
            backlog: None,
            aof: None,
            instead: None,
            exec: ExecWrap::Off,
            offset_tx,
        }
    }

    /// True if anything consumes the stream: writes are encoded only then.
    pub fn is_active(&self) -> bool {
        self.backlog.is_some() || self.aof.is_some()
    }

    /// `master_repl_offset`.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Sets the offset (a replica adopting its master's, a new history
    /// after a full sync); the backlog restarts empty there.
    pub fn reset_offset(&mut self, offset: u64) {
        self.offset = offset;
        if let Some(backlog) = &mut self.backlog {
            *backlog = Backlog::new(backlog.size, offset);
        }
        self.offset_tx.send_replace(offset);
    }

    /// Wakes on every new byte: `borrow()` is the offset.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        // The value is kept current only while someone listens (see
        // `append_raw`): bring it up to date first.
        self.offset_tx.send_replace(self.offset);
        self.offset_tx.subscribe()
    }

    pub fn backlog(&self) -> Option<&Backlog> {
        self.backlog.as_ref()
    }

    /// Starts keeping a backlog of `size` bytes (the first replica came),
    /// or resizes it (CONFIG SET repl-backlog-size).
    pub fn enable_backlog(&mut self, size: usize) {
        match &mut self.backlog {
            Some(backlog) => backlog.size = size.max(1),
            None => self.backlog = Some(Backlog::new(size, self.offset)),
        }
    }

    /// Keeps the stream from `floor` on (the first byte the slowest replica
    /// link has not sent), up to `max_len` bytes; `None` when no link
    /// needs anything.
    pub fn retain_for_replicas(&mut self, floor: Option<u64>, max_len: usize) {
        if let Some(backlog) = &mut self.backlog {
            backlog.floor = floor;
            backlog.max_len = max_len;
        }
    }

    pub fn disable_backlog(&mut self) {
        self.backlog = None;
    }

    /// Starts buffering the stream for the append-only file.
    pub fn enable_aof(&mut self) {
        self.aof.get_or_insert_with(BytesMut::new);
    }

    pub fn disable_aof(&mut self) {
        self.aof = None;
    }

    pub fn aof_enabled(&self) -> bool {
        self.aof.is_some()
    }

    /// The bytes for the append-only file since the last call.
    pub fn take_aof(&mut self) -> Option<BytesMut> {
        self.aof.as_mut().map(|buf| buf.split())
    }

    /// Appends bytes already encoded (a replica passing on its master's
    /// stream to its own backlog and append-only file).
    pub fn append_raw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(backlog) = &mut self.backlog {
            backlog.append(bytes);
        }
        if let Some(aof) = &mut self.aof {
            aof.extend_from_slice(bytes);
        }
        self.offset += bytes.len() as u64;
        // Waking listeners costs a lock per write (the watch's notifiers):
        // skip it while nobody listens.
        if self.offset_tx.receiver_count() > 0 {
            self.offset_tx.send_replace(self.offset);
        }
    }

    /// Appends a command for the replicas only, not the append-only file
    /// (a PING, REPLCONF GETACK): it takes its place in the offsets.
    pub fn push_to_replicas(&mut self, argv: &[&[u8]]) {
        let Some(backlog) = &mut self.backlog else {
            return;
        };
        let mut buf = BytesMut::new();
        encode_command(&mut buf, argv);
        backlog.append(&buf);
        self.offset += buf.len() as u64;
        self.offset_tx.send_replace(self.offset);
    }

    /// Appends one command.
    pub fn push(&mut self, argv: &[&[u8]]) {
        if !self.is_active() {
            return;
        }
        let mut buf = BytesMut::new();
        encode_command(&mut buf, argv);
        self.push_encoded(&buf);
    }

    /// Appends one command already encoded (inside EXEC, after MULTI).
    fn push_encoded(&mut self, command: &[u8]) {
        if !self.is_active() {
            return;
        }
        if self.exec == ExecWrap::Pending {
            self.exec = ExecWrap::Open;
            self.append_raw(b"*1\r\n$5\r\nMULTI\r\n");
        }
        self.append_raw(command);
    }

    /// The running command propagates as `commands` instead of itself
    /// (none at all if empty).
    pub fn instead(&mut self, commands: Vec<Vec<Bytes>>) {
        if self.is_active() {
            self.instead = Some(commands);
        }
    }

    /// Forgets an `instead` the running command left (it failed).
    pub fn discard_instead(&mut self) {
        self.instead = None;
    }

    /// An EXEC starts running its queued commands.
    pub fn begin_exec(&mut self) {
        self.exec = ExecWrap::Pending;
    }

    /// The EXEC ended: closes the MULTI block if one was written.
    pub fn end_exec(&mut self) {
        let open = self.exec == ExecWrap::Open;
        self.exec = ExecWrap::Off;
        if open {
            self.push(&[b"EXEC"]);
        }
    }

    /// Propagates a write command that succeeded, in the form that
    /// replays to the same state (see the module documentation).
    pub fn write(&mut self, db: &mut Keyspace, spec: &'static CommandSpec, req: &Request) {
        if !self.is_active() {
            return;
        }
        if let Some(commands) = self.instead.take() {
            for argv in commands {
                let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
                self.push(&argv);
            }
            return;
        }
        match rule(spec.name, req) {
            // A request's raw bytes are already its multibulk encoding
            // (inline requests are stored re-encoded): no copy to build.
            Rule::Verbatim => self.push_encoded(req.raw()),
            Rule::State => self.key_state(db, req, false),
            Rule::Ttl => self.key_state(db, req, true),
        }
    }

    /// The state of the command's key after it ran: `DEL` if gone, else
    /// its TTL (`ttl_only`) or its whole value with an absolute TTL.
    fn key_state(&mut self, db: &mut Keyspace, req: &Request, ttl_only: bool) {
        let Some(key) = req.arg(1) else { return };
        let Some(entry) = db.entry(key) else {
            self.push(&[b"DEL", key]);
            return;
        };
        if ttl_only {
            match entry.expires_at.map(|t| t.to_string()) {
                Some(at) => self.push(&[b"PEXPIREAT", key, at.as_bytes()]),
                None => self.push(&[b"PERSIST", key]),
            }
            return;
        }
        let mut buf = BytesMut::new();
        super::snapshot::write_key(&mut buf, key, entry);
        self.push_encoded(&buf);
    }
}

/// How a write command goes into the stream.
enum Rule {
    /// As the client sent it.
    Verbatim,
    /// As the state of its key afterwards (its result depends on the clock).
    State,
    /// As the TTL of its key afterwards.
    Ttl,
}

fn rule(name: &str, req: &Request) -> Rule {
    match name {
        // SET without options is the common case and already exact.
        "set" if req.len() == 3 => Rule::Verbatim,
        "set" | "setex" | "psetex" | "getex" | "restore" | "restore-asking" => Rule::State,
        "expire" | "pexpire" | "expireat" | "pexpireat" => Rule::Ttl,
        _ => Rule::Verbatim,
    }
}

/// Appends `argv` as a RESP array of bulk strings.
pub fn encode_command(out: &mut BytesMut, argv: &[&[u8]]) {
    encode::array_header(out, argv.len());
    for arg in argv {
        encode::bulk(out, arg);
    }
}

#[cfg(test)]
pub(crate) mod tests;
