//! Pub/Sub through the proxy.
//!
//! A client that subscribes leaves the request/reply loop for
//! [`serve`], which speaks for it to the cluster on dedicated connections
//! ("links"): one to the pub/sub home for its channels and patterns, and
//! one per master owning a slot of its shard channels. Messages are
//! forwarded as the bytes the node sent.
//!
//! Cluster pub/sub is broadcast (every node delivers every message), but a
//! node's PUBLISH counts only its own subscribers. So every subscriber's
//! channels and patterns, and every PUBLISH, go to one master, the home
//! ([`super::topology::Topology::home`]: the owner of slot 0, or while it
//! is down the next master up): PUBLISH then counts this proxy's
//! subscribers as one server counts its own. While the home is down,
//! subscribers and PUBLISH fall back alike to the next master up, and
//! messages keep flowing; once the home is back, or another master became
//! it, the subscribers move there.
//!
//! The proxy keeps the client's subscriptions itself and answers each
//! (un)subscribe with Redis's confirmations and counts, once the nodes
//! concerned confirmed, so a message published after the client saw its
//! confirmation is delivered. The subscriptions outlive any one link:
//! when a link dies, when a node says a shard channel's slot left it (an
//! unasked `sunsubscribe`, or a `MOVED`), or when the slot map shows a
//! shard channel's slot elsewhere, the proxy subscribes again on the new
//! owner, and the client sees nothing but the messages.
//!
//! A RESP3 client gets confirmations and messages as push frames, and may
//! send any other command while subscribed, as Redis allows it: the
//! session runs it ([`PlainCommands`]) and its reply goes out in line.
//!
//! A subscriber that does not read is disconnected once the messages
//! waiting for it pass `limits.pubsub_output_limit_bytes` (Redis's
//! `client-output-buffer-limit pubsub`), so it never grows the proxy's
//! memory without bound.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::key_slot;
use crate::cluster::redirect::{self, ClusterError};
use crate::resp::resp3::{self, Shape};
use crate::resp::{Frame, Request, RequestDecoder, encode};

use super::Proxy;
use super::backend::BackendError;
use super::clients::{ClientHandle, Subscriptions};
use super::dedicated::DedicatedReader;
use super::dispatch::with_host;
use super::refresh::RefreshReason;
use super::router::{Route, route};

/// Frames read ahead from all links before the loop takes them.
const EVENT_QUEUE: usize = 1024;
/// Frames handled in one go before the loop writes to the client again.
const EVENTS_PER_TURN: usize = 256;
/// Client input read ahead while a command waits for its confirmations.
const INPUT_LIMIT: usize = 64 * 1024;
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How the subscriber loop ended.
pub enum Exit {
    /// No subscription left: back to the request/reply loop.
    Resume,
    /// RESET: no subscription left, and the rest of the session's state
    /// goes too.
    Reset,
    /// QUIT: write what is owed, then close.
    Close,
    /// Close now (the client left, or fell too far behind).
    Abort,
}

/// The client connection, lent to [`serve`] by the session.
pub struct ClientIo<'a> {
    pub reader: &'a mut OwnedReadHalf,
    pub writer: &'a mut OwnedWriteHalf,
    pub input: &'a mut BytesMut,
    pub output: &'a mut BytesMut,
    pub decoder: &'a mut RequestDecoder,
}

/// Runs a command that is not about subscriptions, for a RESP3 client in
/// subscribed mode; the reply is RESP3 already.
pub trait PlainCommands: Send {
    fn run(&mut self, req: Request) -> BoxFuture<'_, Bytes>;
}

/// Serves a client in subscribed mode, starting with `first` (a
/// (un)subscribe command), until it holds no subscription or leaves.
/// `resp3` is given for a RESP3 client: how it runs other commands.
pub async fn serve<'p>(
    proxy: &'p Arc<Proxy>,
    client: &'p ClientHandle,
    io: ClientIo<'_>,
    first: Request,
    resp3: Option<&'p mut (dyn PlainCommands + 'p)>,
) -> Exit {
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let mut sub = Subscriber {
        proxy,
        client_id: client.id,
        client,
        channels: Ordered::default(),
        patterns: Ordered::default(),
        shard: Ordered::default(),
        links: HashMap::new(),
        global: None,
        global_lost: false,
        next_link: 0,
        events_tx,
        pending: None,
        retry: None,
        retry_delay: RETRY_MIN,
        resp3,
    };
    sub.run(io, events, first).await
}

/// One subscriber's state.
struct Subscriber<'p> {
    proxy: &'p Arc<Proxy>,
    client_id: u64,
    /// Where CLIENT LIST reads the subscription counts.
    client: &'p ClientHandle,
    channels: Ordered<()>,
    patterns: Ordered<()>,
    /// Shard channels, each with its slot and the link it is subscribed on
    /// (`None` while it waits for one).
    shard: Ordered<Placement>,
    links: HashMap<LinkId, Link>,
    /// The link carrying channels and patterns.
    global: Option<LinkId>,
    /// Channels and patterns wait for a new global link.
    global_lost: bool,
    next_link: LinkId,
    events_tx: mpsc::Sender<(LinkId, Result<Bytes, BackendError>)>,
    /// The client command waiting for confirmations.
    pending: Option<Pending>,
    /// When to try placing what waits for a link.
    retry: Option<Instant>,
    retry_delay: Duration,
    /// A RESP3 client: pushes, and other commands run through this.
    resp3: Option<&'p mut (dyn PlainCommands + 'p)>,
}

type LinkId = u64;

#[derive(Debug, Clone, Copy)]
struct Placement {
    slot: u16,
    link: Option<LinkId>,
}

/// A dedicated connection the subscriber talks to a node on. Its frames
/// arrive through the subscriber's event queue.
struct Link {
    addr: Arc<str>,
    writer: OwnedWriteHalf,
    reader: JoinHandle<()>,
    /// Confirmations expected, in order.
    acks: VecDeque<Ack>,
    /// While confirmations are owed: when the node must have sent the next
    /// one. A node that misses it is taken for frozen (stopped, sockets
    /// open) and the link is dropped, so its subscriptions move on as for
    /// a dead node instead of waiting on it forever.
    answer_by: Option<Instant>,
    shard: bool,
}

impl Link {
    /// Restarts the wait for the next confirmation (none owed: no wait).
    fn progressed(&mut self, timeout: Duration) {
        self.answer_by = (!self.acks.is_empty()).then(|| Instant::now() + timeout);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The confirmations one (un)subscribe sent to a node will bring.
struct Ack {
    kind: Kind,
    channels: VecDeque<Bytes>,
    /// Part of the client command waiting in [`Subscriber::pending`].
    for_client: bool,
}

/// The client's replies to one command, held until the nodes confirmed.
struct Pending {
    reply: BytesMut,
    /// The reply is in the client's protocol already (RESP2 confirmations
    /// become pushes for a RESP3 client when they are written).
    written_as_is: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subscribe,
    Psubscribe,
    Ssubscribe,
    Unsubscribe,
    Punsubscribe,
    Sunsubscribe,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Psubscribe => "psubscribe",
            Kind::Ssubscribe => "ssubscribe",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Punsubscribe => "punsubscribe",
            Kind::Sunsubscribe => "sunsubscribe",
        }
    }

    fn from_name(name: &[u8]) -> Option<Kind> {
        [
            Kind::Subscribe,
            Kind::Psubscribe,
            Kind::Ssubscribe,
            Kind::Unsubscribe,
            Kind::Punsubscribe,
            Kind::Sunsubscribe,
        ]
        .into_iter()
        .find(|k| k.name().as_bytes().eq_ignore_ascii_case(name))
    }

    fn command(self) -> &'static str {
        match self {
            Kind::Subscribe => "SUBSCRIBE",
            Kind::Psubscribe => "PSUBSCRIBE",
            Kind::Ssubscribe => "SSUBSCRIBE",
            Kind::Unsubscribe => "UNSUBSCRIBE",
            Kind::Punsubscribe => "PUNSUBSCRIBE",
            Kind::Sunsubscribe => "SUNSUBSCRIBE",
        }
    }
}

/// True for a pushed message (as opposed to a confirmation), judged by its
/// first bytes so the hot path parses nothing.
fn is_message(frame: &[u8]) -> bool {
    frame.starts_with(b"*3\r\n$7\r\nmessage\r\n")
        || frame.starts_with(b"*4\r\n$8\r\npmessage\r\n")
        || frame.starts_with(b"*3\r\n$8\r\nsmessage\r\n")
}

/// One confirmation, as Redis writes it in RESP2.
fn confirmation(out: &mut BytesMut, kind: Kind, channel: Option<&[u8]>, count: usize) {
    encode::array_header(out, 3);
    encode::bulk(out, kind.name().as_bytes());
    match channel {
        Some(channel) => encode::bulk(out, channel),
        None => encode::null_bulk(out),
    }
    encode::integer(out, count as i64);
}

impl Subscriber<'_> {
    /// Channels and patterns (what SUBSCRIBE's confirmations count).
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    fn subscriptions(&self) -> usize {
        self.count() + self.shard.len()
    }

    /// Shows the subscription counts (and the command that set them) in
    /// CLIENT LIST.
    fn publish_counts(&self, command: &[u8]) {
        let mut details = self.client.details();
        details.subscriptions = Subscriptions {
            channels: self.channels.len(),
            patterns: self.patterns.len(),
            shard: self.shard.len(),
        };
        if let Some(kind) = Kind::from_name(command) {
            details.last_command = kind.name();
        }
        details.last_active = std::time::Instant::now();
    }

    async fn run(
        &mut self,
        io: ClientIo<'_>,
        mut events: mpsc::Receiver<(LinkId, Result<Bytes, BackendError>)>,
        first: Request,
    ) -> Exit {
        let ClientIo {
            reader,
            writer,
            input,
            output,
            decoder,
        } = io;
        let limit = self.proxy.config.limits.pubsub_output_limit_bytes;
        let mut versions = self.proxy.cluster.subscribe();
        versions.mark_unchanged();
        let mut next = Some(first);
        loop {
            // Client commands, one at a time: the next waits until the
            // previous one's confirmations are out.
            while self.pending.is_none() {
                let req = match next.take() {
                    Some(req) => req,
                    None => match decoder.decode(input) {
                        Ok(Some(req)) => req,
                        Ok(None) => break,
                        Err(err) => {
                            output.extend_from_slice(err.to_reply().as_bytes());
                            return Exit::Close;
                        }
                    },
                };
                let exit = self.command(&req, output).await;
                self.publish_counts(req.name());
                if let Some(exit) = exit {
                    return exit;
                }
                self.flush_pending(output);
                if self.subscriptions() == 0 && self.pending.is_none() {
                    return Exit::Resume;
                }
            }
            let retry = self.retry;
            let answer_by = self.next_answer_by();
            tokio::select! {
                biased;
                // Writing first: a flood of messages cannot starve it.
                written = writer.write(output), if !output.is_empty() => match written {
                    Ok(n) if n > 0 => output.advance(n),
                    _ => return Exit::Abort,
                },
                event = events.recv() => {
                    let mut event = event;
                    for _ in 0..EVENTS_PER_TURN {
                        let Some((id, frame)) = event else { break };
                        self.event(id, frame, output);
                        // Confirmations go out before the messages after them.
                        if self.pending.is_some() {
                            self.flush_pending(output);
                        }
                        event = events.try_recv().ok();
                    }
                }
                read = reader.read_buf(input), if input.len() < INPUT_LIMIT => match read {
                    // The client left: nothing more to say to it.
                    Ok(0) | Err(_) => return Exit::Abort,
                    Ok(_) => {}
                },
                changed = versions.changed() => {
                    if changed.is_ok() {
                        self.follow_topology();
                        self.place(false).await;
                    }
                }
                () = tokio::time::sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                    self.retry = None;
                    self.place(false).await;
                }
                () = tokio::time::sleep_until(answer_by.unwrap_or_else(Instant::now)), if answer_by.is_some() => {
                    self.drop_frozen();
                }
            }
            self.flush_pending(output);
            if self.pending.is_none() && self.subscriptions() == 0 {
                return Exit::Resume;
            }
            if output.len() > limit {
                tracing::warn!(
                    client = self.client_id,
                    bytes = output.len(),
                    "subscriber over limits.pubsub_output_limit_bytes; closing"
                );
                return Exit::Abort;
            }
        }
    }

    /// Handles one client command. `Some` ends the loop.
    async fn command(&mut self, req: &Request, output: &mut BytesMut) -> Option<Exit> {
        let (spec, route) = route(req);
        let name = spec.map_or("", |s| s.name);
        let mut reply = BytesMut::new();
        let args: Vec<Bytes> = (1..req.len()).filter_map(|i| req.arg_bytes(i)).collect();
        match (name, &route) {
            (_, Route::Error(text)) => encode::error(&mut reply, text),
            ("subscribe", _) => self.subscribe(Kind::Subscribe, &args, &mut reply).await,
            ("psubscribe", _) => self.subscribe(Kind::Psubscribe, &args, &mut reply).await,
            ("unsubscribe", _) => self.unsubscribe(Kind::Unsubscribe, &args, &mut reply).await,
            ("punsubscribe", _) => {
                self.unsubscribe(Kind::Punsubscribe, &args, &mut reply)
                    .await;
            }
            ("ssubscribe", _) => self.ssubscribe(&args, &mut reply).await,
            ("sunsubscribe", _) => self.sunsubscribe(&args, &mut reply).await,
            // RESP3 has pushes for messages, so PING answers as usual.
            ("ping", _) if self.resp3.is_some() => match args.first() {
                Some(text) => encode::bulk(&mut reply, text),
                None => reply.extend_from_slice(b"+PONG\r\n"),
            },
            ("ping", _) => {
                encode::array_header(&mut reply, 2);
                encode::bulk(&mut reply, b"pong");
                encode::bulk(&mut reply, args.first().map_or(&b""[..], |a| &a[..]));
            }
            ("quit", _) => {
                output.extend_from_slice(b"+OK\r\n");
                return Some(Exit::Close);
            }
            ("reset", _) => {
                self.links.clear();
                output.extend_from_slice(b"+RESET\r\n");
                return Some(Exit::Reset);
            }
            _ => match self.resp3.as_mut() {
                Some(plain) => {
                    let done = plain.run(req.clone()).await;
                    self.pending = Some(Pending {
                        reply: BytesMut::from(&done[..]),
                        written_as_is: true,
                    });
                    return None;
                }
                None => encode::error(
                    &mut reply,
                    &format!(
                        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                    ),
                ),
            },
        }
        self.pending = Some(Pending {
            reply,
            written_as_is: false,
        });
        None
    }

    /// Writes the client command's confirmations once no node owes one
    /// (confirmed, refused, or its link lost: the proxy holds the
    /// subscription meanwhile).
    fn flush_pending(&mut self, output: &mut BytesMut) {
        let owed = self
            .links
            .values()
            .any(|l| l.acks.iter().any(|a| a.for_client));
        if !owed {
            if let Some(pending) = self.pending.take() {
                if self.resp3.is_some() && !pending.written_as_is {
                    resp3::upgrade_each(&pending.reply.freeze(), &Shape::Push, output);
                } else {
                    output.extend_from_slice(&pending.reply);
                }
            }
        }
    }

    fn set_of(&mut self, kind: Kind) -> &mut Ordered<()> {
        match kind {
            Kind::Psubscribe | Kind::Punsubscribe => &mut self.patterns,
            _ => &mut self.channels,
        }
    }

    /// SUBSCRIBE and PSUBSCRIBE.
    async fn subscribe(&mut self, kind: Kind, args: &[Bytes], reply: &mut BytesMut) {
        let mut added = Vec::new();
        for arg in args {
            if self.set_of(kind).insert(arg.clone(), ()) {
                added.push(arg.clone());
            }
            confirmation(reply, kind, Some(arg), self.count());
        }
        if added.is_empty() || self.global_lost {
            return;
        }
        if self.global.is_none() {
            // A new link gets every channel and pattern from `place`.
            self.global_lost = true;
            self.place(true).await;
            return;
        }
        if let Some(id) = self.global {
            self.send(id, kind, added, true).await;
        }
    }

    /// UNSUBSCRIBE and PUNSUBSCRIBE.
    async fn unsubscribe(&mut self, kind: Kind, args: &[Bytes], reply: &mut BytesMut) {
        let targets: Vec<Bytes> = if args.is_empty() {
            self.set_of(kind).keys()
        } else {
            args.to_vec()
        };
        if targets.is_empty() {
            confirmation(reply, kind, None, self.count());
        }
        let mut removed = Vec::new();
        for target in targets {
            if self.set_of(kind).remove(&target).is_some() {
                removed.push(target.clone());
            }
            confirmation(reply, kind, Some(&target), self.count());
        }
        if let (Some(id), false) = (self.global, removed.is_empty()) {
            self.send(id, kind, removed, true).await;
        }
        if self.count() == 0 {
            // Nothing left for the global link to carry.
            self.global_lost = false;
            if let Some(id) = self.global.take() {
                self.close_when_confirmed(id);
            }
        }
    }

    async fn ssubscribe(&mut self, args: &[Bytes], reply: &mut BytesMut) {
        let mut added = Vec::new();
        for arg in args {
            let slot = key_slot(arg);
            if self
                .shard
                .insert(arg.clone(), Placement { slot, link: None })
            {
                added.push(arg.clone());
            }
            confirmation(reply, Kind::Ssubscribe, Some(arg), self.shard.len());
        }
        if !added.is_empty() {
            self.place_shard(added, true).await;
        }
    }

    async fn sunsubscribe(&mut self, args: &[Bytes], reply: &mut BytesMut) {
        let targets: Vec<Bytes> = if args.is_empty() {
            self.shard.keys()
        } else {
            args.to_vec()
        };
        if targets.is_empty() {
            confirmation(reply, Kind::Sunsubscribe, None, self.shard.len());
        }
        let mut by_link: BTreeMap<LinkId, Vec<Bytes>> = BTreeMap::new();
        for target in targets {
            if let Some(Placement {
                link: Some(link), ..
            }) = self.shard.remove(&target)
            {
                by_link.entry(link).or_default().push(target.clone());
            }
            confirmation(reply, Kind::Sunsubscribe, Some(&target), self.shard.len());
        }
        for (id, channels) in by_link {
            self.send(id, Kind::Sunsubscribe, channels, true).await;
            if !self.shard.values().any(|p| p.link == Some(id)) {
                self.close_when_confirmed(id);
            }
        }
    }

    /// Sends an (un)subscribe for `channels` on link `id`, expecting one
    /// confirmation per channel. A link that fails to take it is dropped
    /// (its subscriptions are placed again).
    async fn send(&mut self, id: LinkId, kind: Kind, channels: Vec<Bytes>, for_client: bool) {
        let timeout = self.request_timeout();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let mut args: Vec<&[u8]> = vec![kind.command().as_bytes()];
        args.extend(channels.iter().map(|c| &c[..]));
        let request = Request::from_args(&args);
        if link.acks.is_empty() {
            link.answer_by = Some(Instant::now() + timeout);
        }
        link.acks.push_back(Ack {
            kind,
            channels: channels.into(),
            for_client,
        });
        if link.writer.write_all(request.raw()).await.is_err() {
            self.link_lost(id);
        }
    }

    /// Stops using link `id` for new subscriptions; it closes once its
    /// pending confirmations are in (at once if none are).
    fn close_when_confirmed(&mut self, id: LinkId) {
        if self.links.get(&id).is_some_and(|l| l.acks.is_empty()) {
            self.links.remove(&id);
        }
    }

    /// A new link to `addr`, or `None` if the node refuses.
    async fn open_link(&mut self, addr: &str, shard: bool) -> Option<LinkId> {
        let node = self.proxy.cluster.node(addr);
        let conn = match node.dedicated().acquire().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(client = self.client_id, ?err, "no subscriber link");
                return None;
            }
        };
        let id = self.next_link;
        self.next_link += 1;
        let addr = conn.addr().clone();
        let (reader, writer) = conn.into_split();
        let reader = tokio::spawn(read_frames(id, reader, self.events_tx.clone()));
        self.links.insert(
            id,
            Link {
                addr,
                writer,
                reader,
                acks: VecDeque::new(),
                answer_by: None,
                shard,
            },
        );
        Some(id)
    }

    /// The link to the master at `addr` for shard channels, opened if
    /// needed.
    async fn shard_link(&mut self, addr: &str) -> Option<LinkId> {
        let existing = self
            .links
            .iter()
            .find(|(_, l)| l.shard && &*l.addr == addr)
            .map(|(id, _)| *id);
        match existing {
            Some(id) => Some(id),
            None => self.open_link(addr, true).await,
        }
    }

    /// Subscribes `channels` (shard channels the client holds, waiting for a
    /// link) on their slots' masters. Those without a reachable owner wait
    /// for the next try.
    async fn place_shard(&mut self, channels: Vec<Bytes>, for_client: bool) {
        let topology = self.proxy.cluster.snapshot();
        let mut by_owner: BTreeMap<String, Vec<Bytes>> = BTreeMap::new();
        for channel in channels {
            let Some(placement) = self.shard.get(&channel) else {
                continue;
            };
            match topology.master(placement.slot) {
                Some(owner) => by_owner
                    .entry(owner.addr().to_string())
                    .or_default()
                    .push(channel),
                None => self.schedule_retry(),
            }
        }
        drop(topology);
        for (addr, channels) in by_owner {
            let Some(id) = self.shard_link(&addr).await else {
                self.proxy.cluster.request_refresh(RefreshReason::NodeDown);
                self.schedule_retry();
                continue;
            };
            for channel in &channels {
                if let Some(p) = self.shard.get_mut(channel) {
                    p.link = Some(id);
                }
            }
            self.send(id, Kind::Ssubscribe, channels, for_client).await;
        }
    }

    /// Places whatever waits for a link: channels and patterns after their
    /// link died, shard channels without one. `for_client` when the client
    /// command waits for the confirmations.
    async fn place(&mut self, for_client: bool) {
        if self.global_lost && self.count() > 0 {
            match self.pick_global().await {
                Some(id) => {
                    self.global_lost = false;
                    self.global = Some(id);
                    self.subscribe_all(id, for_client).await;
                }
                None => {
                    self.proxy.cluster.request_refresh(RefreshReason::NodeDown);
                    self.schedule_retry();
                }
            }
        }
        // A client command waiting for confirmations waits for those of a
        // move too: once it has them, what is published reaches it.
        let at_home = self.rehome(for_client || self.pending.is_some()).await;
        let waiting: Vec<Bytes> = self
            .shard
            .iter()
            .filter(|(_, p)| p.link.is_none())
            .map(|(c, _)| c.clone())
            .collect();
        if !waiting.is_empty() {
            self.place_shard(waiting, for_client).await;
        }
        if !self.global_lost && at_home && self.shard.values().all(|p| p.link.is_some()) {
            self.retry_delay = RETRY_MIN;
        }
    }

    /// A link for channels and patterns: to the pub/sub home, or (should it
    /// refuse) to the next master up.
    async fn pick_global(&mut self) -> Option<LinkId> {
        let candidates: Vec<String> = {
            let topology = self.proxy.cluster.snapshot();
            let home = topology
                .home()
                .filter(|h| h.is_ready())
                .map(|h| h.addr().to_string());
            let others = topology
                .masters()
                .iter()
                .filter(|m| m.is_ready() && Some(m.addr()) != home.as_deref())
                .map(|m| m.addr().to_string());
            home.clone().into_iter().chain(others).collect()
        };
        for addr in candidates {
            if let Some(id) = self.open_link(&addr, false).await {
                return Some(id);
            }
        }
        None
    }

    /// Moves the channels and patterns to the pub/sub home when their link
    /// is elsewhere (taken while the home was down, or before another
    /// master became the home): subscribed on a link to the home, then the
    /// old link closed (the node drops what it carried). True when they are
    /// at home (or there is none to go to); false while they wait for it,
    /// with a retry set.
    async fn rehome(&mut self, for_client: bool) -> bool {
        let Some(id) = self.global else {
            return true;
        };
        let here = self.links.get(&id).map(|l| l.addr.clone());
        let home = {
            let topology = self.proxy.cluster.snapshot();
            topology
                .home()
                .map(|h| (h.addr().to_string(), h.is_ready()))
        };
        let addr = match home {
            None => return true,
            Some((addr, _)) if here.as_deref() == Some(addr.as_str()) => return true,
            // The home is not up (yet): look again later.
            Some((_, false)) => {
                self.schedule_retry();
                return false;
            }
            Some((addr, true)) => addr,
        };
        let Some(new) = self.open_link(&addr, false).await else {
            self.schedule_retry();
            return false;
        };
        tracing::debug!(client = self.client_id, home = %addr, "subscriber moves to the pub/sub home");
        self.global = Some(new);
        self.links.remove(&id);
        self.subscribe_all(new, for_client).await;
        true
    }

    /// Subscribes every channel and pattern the client holds on link `id`.
    async fn subscribe_all(&mut self, id: LinkId, for_client: bool) {
        let channels = self.channels.keys();
        let patterns = self.patterns.keys();
        if !channels.is_empty() {
            self.send(id, Kind::Subscribe, channels, for_client).await;
        }
        if !patterns.is_empty() {
            self.send(id, Kind::Psubscribe, patterns, for_client).await;
        }
    }

    fn schedule_retry(&mut self) {
        if self.retry.is_none() {
            self.retry = Some(Instant::now() + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
        }
    }

    /// Shard channels whose slot the map now shows on another master wait
    /// for a link to it. (Redis also tells its subscribers with an unasked
    /// `sunsubscribe`; a node that does not is caught here.)
    fn follow_topology(&mut self) {
        let topology = self.proxy.cluster.snapshot();
        let links = &self.links;
        let mut emptied = Vec::new();
        for (_, placement) in self.shard.iter_mut() {
            let Some(id) = placement.link else { continue };
            let here = links.get(&id).map(|l| l.addr.clone());
            let owner = topology.master(placement.slot).map(|n| n.addr());
            if here.as_deref() != owner {
                placement.link = None;
                emptied.push(id);
            }
        }
        drop(topology);
        for id in emptied {
            if !self.shard.values().any(|p| p.link == Some(id)) {
                self.close_when_confirmed(id);
            }
        }
    }

    /// A frame (or the end) from link `id`.
    fn event(&mut self, id: LinkId, frame: Result<Bytes, BackendError>, output: &mut BytesMut) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(_) => {
                self.link_lost(id);
                return;
            }
        };
        if is_message(&frame) {
            if self.resp3.is_some() {
                resp3::upgrade(&frame, &Shape::Push, output);
            } else {
                output.extend_from_slice(&frame);
            }
            return;
        }
        if frame.first() == Some(&b'-') {
            self.refused(id, &frame);
            return;
        }
        let Ok(Some((Frame::Array(items), _))) = Frame::parse(&frame) else {
            return;
        };
        let (Some(kind), Some(channel)) = (
            items
                .first()
                .and_then(Frame::as_bytes)
                .and_then(|k| Kind::from_name(k)),
            items.get(1),
        ) else {
            return;
        };
        let channel = channel.as_bytes().cloned();
        self.confirmed(id, kind, channel);
    }

    /// A confirmation from link `id`: the next one expected, or (for
    /// `sunsubscribe`) the node dropping a shard channel whose slot left it.
    fn confirmed(&mut self, id: LinkId, kind: Kind, channel: Option<Bytes>) {
        let timeout = self.request_timeout();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let expected = link.acks.front_mut().is_some_and(|ack| {
            ack.kind == kind && ack.channels.front().map(|c| &c[..]) == channel.as_deref()
        });
        if expected {
            let Some(ack) = link.acks.front_mut() else {
                return;
            };
            ack.channels.pop_front();
            if ack.channels.is_empty() {
                link.acks.pop_front();
            }
            link.progressed(timeout);
            if link.acks.is_empty() && !self.in_use(id) {
                self.links.remove(&id);
            }
            return;
        }
        if kind == Kind::Sunsubscribe {
            if let Some(channel) = channel {
                if let Some(p) = self.shard.get_mut(&channel) {
                    if p.link == Some(id) {
                        p.link = None;
                        self.proxy.cluster.request_refresh(RefreshReason::Moved);
                        self.schedule_retry();
                    }
                }
            }
        }
    }

    /// True while link `id` carries subscriptions.
    fn in_use(&self, id: LinkId) -> bool {
        self.global == Some(id) || self.shard.values().any(|p| p.link == Some(id))
    }

    /// A node refused the (un)subscribe at the front of link `id`: a shard
    /// channel's slot moved (`MOVED`), or the cluster is busy. Its channels
    /// wait for another try.
    fn refused(&mut self, id: LinkId, error: &[u8]) {
        let timeout = self.request_timeout();
        let Some(ack) = self.links.get_mut(&id).and_then(|l| {
            let ack = l.acks.pop_front();
            l.progressed(timeout);
            ack
        }) else {
            return;
        };
        let addr = self.links.get(&id).map(|l| l.addr.clone());
        match redirect::parse(error) {
            Some(ClusterError::Moved { slot, addr: to }) => {
                let sender = addr.as_deref().unwrap_or("");
                self.proxy
                    .cluster
                    .apply_moved(slot, &with_host(&to, sender));
            }
            _ => tracing::debug!(
                client = self.client_id,
                error = %String::from_utf8_lossy(error).trim_end(),
                "a node refused a subscription; trying again"
            ),
        }
        if ack.kind == Kind::Ssubscribe {
            for channel in &ack.channels {
                if let Some(p) = self.shard.get_mut(channel) {
                    if p.link == Some(id) {
                        p.link = None;
                    }
                }
            }
        } else if matches!(ack.kind, Kind::Subscribe | Kind::Psubscribe) {
            self.drop_global(id);
        }
        self.schedule_retry();
    }

    /// Link `id` is gone: its subscriptions wait for a new one, and the
    /// confirmations it owed the client are given up on (the proxy holds the
    /// subscriptions meanwhile).
    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.proxy.config.backend.request_timeout_ms)
    }

    /// When the next link must have answered, if any owes a confirmation.
    fn next_answer_by(&self) -> Option<Instant> {
        self.links.values().filter_map(|l| l.answer_by).min()
    }

    /// Drops the links whose node stopped answering (see
    /// [`Link::answer_by`]).
    fn drop_frozen(&mut self) {
        let now = Instant::now();
        let frozen: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.answer_by.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in frozen {
            tracing::warn!(
                client = self.client_id,
                addr = %self.links.get(&id).map_or("", |l| &l.addr[..]),
                "a node did not confirm a subscription within backend.request_timeout_ms; dropping its link"
            );
            self.link_lost(id);
        }
    }

    fn link_lost(&mut self, id: LinkId) {
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        tracing::debug!(client = self.client_id, addr = %link.addr, "subscriber link lost");
        if self.global == Some(id) {
            self.global = None;
            self.global_lost = self.count() > 0;
        }
        for (_, p) in self.shard.iter_mut() {
            if p.link == Some(id) {
                p.link = None;
            }
        }
        self.proxy.cluster.request_refresh(RefreshReason::NodeDown);
        self.schedule_retry();
    }

    fn drop_global(&mut self, id: LinkId) {
        if self.global == Some(id) {
            self.global = None;
            self.links.remove(&id);
            self.global_lost = self.count() > 0;
        }
    }
}

/// Reads frames off a link into the subscriber's queue until it fails.
async fn read_frames(
    id: LinkId,
    mut reader: DedicatedReader,
    events: mpsc::Sender<(LinkId, Result<Bytes, BackendError>)>,
) {
    loop {
        let frame = reader.read_frame().await;
        let failed = frame.is_err();
        if events.send((id, frame)).await.is_err() || failed {
            return;
        }
    }
}

/// A map that remembers insertion order (unsubscribing from everything
/// confirms in subscription order).
struct Ordered<V> {
    next: u64,
    order: BTreeMap<u64, Bytes>,
    index: HashMap<Bytes, (u64, V)>,
}

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered {
            next: 0,
            order: BTreeMap::new(),
            index: HashMap::new(),
        }
    }
}

impl<V> Ordered<V> {
    fn len(&self) -> usize {
        self.index.len()
    }

    /// Inserts `key` unless present; true if it was new.
    fn insert(&mut self, key: Bytes, value: V) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.order.insert(self.next, key.clone());
        self.index.insert(key, (self.next, value));
        self.next += 1;
        true
    }

    fn remove(&mut self, key: &[u8]) -> Option<V> {
        let (seq, value) = self.index.remove(key)?;
        self.order.remove(&seq);
        Some(value)
    }

    fn get(&self, key: &[u8]) -> Option<&V> {
        self.index.get(key).map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.index.get_mut(key).map(|(_, v)| v)
    }

    fn keys(&self) -> Vec<Bytes> {
        self.order.values().cloned().collect()
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.index.values().map(|(_, v)| v)
    }

    fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.index.iter().map(|(k, (_, v))| (k, v))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&Bytes, &mut V)> {
        self.index.iter_mut().map(|(k, (_, v))| (k, v))
    }
}
