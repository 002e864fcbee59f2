//! One client connection: read requests, dispatch them all, write the
//! replies back in request order.
//!
//! The session is a single task. Each request becomes a future that yields
//! its reply; the futures sit in a `FuturesOrdered`, so they all run
//! concurrently but finish in request order. Replies are appended to one
//! output buffer and written with as few syscalls as the socket allows.
//!
//! Backpressure never deadlocks a client that writes a long pipeline before
//! reading anything: the in-flight limit counts requests still waiting for a
//! backend, not replies waiting for the client, so the session keeps reading
//! as long as backends answer. Replies the client has not read yet are
//! buffered up to the client output limit; past it the client is
//! disconnected with an error, as Redis does.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::command::{self, CommandSpec};
use crate::metrics::CommandRecorder;
use crate::resp::resp3::{self, Shape};
use crate::resp::{Request, RequestDecoder, encode};

use super::backend::ReplyResult;
use super::blocking;
use super::dispatch::{
    Target, dropped_reply, execute, execute_after, execute_dedicated, is_final, send_to_slot,
};
use super::local::{self, ClientState, LocalReply, ReplyMode};
use super::multikey::execute_split;
use super::pause::may_replicate;
use super::pubsub::{self, Exit};
use super::pubsub_introspect;
use super::router::{Handling, Route, handling, route_with};
use super::scripts;
use super::transaction::{Transaction, TxStep};
use super::wait::{self, Written};
use super::{Proxy, Seat};
use super::{fanout, scan};

/// How long a session keeps command metrics to itself before flushing them.
const METRICS_FLUSH_DELAY: Duration = Duration::from_millis(100);

/// The session's handle on the shared proxy. Requests clone this, not the
/// shared `Arc<Proxy>`, so the reference count they touch lives in memory
/// only this session's thread writes (no cache line bouncing between
/// workers).
type SessionProxy = Arc<Arc<Proxy>>;

/// Serves one client until it disconnects, sends garbage, or quits.
pub async fn serve(proxy: Arc<Proxy>, stream: TcpStream, client: ClientState, seat: Seat) {
    let proxy: SessionProxy = Arc::new(proxy);
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let limits = &proxy.config.limits;
    let max_inflight = limits.max_inflight_per_client.max(1);
    let output_limit = limits.client_output_limit_bytes;
    let mut decoder = RequestDecoder::new(limits.max_bulk_len, limits.max_multibulk_len);
    let mut client = client;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut owed = OwedQueue::default();
    let mut recorder = CommandRecorder::new(&proxy.metrics);
    // Flushes the recorder a while after its first unflushed command, so an
    // idle connection's last commands still reach /metrics.
    let flush_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(flush_timer);
    let mut flush_armed = false;
    // When the bytes in `input` arrived: every request decoded from one read
    // shares it, so the clock is read once per read, not per request.
    let mut arrived = Instant::now();
    // Set once no more requests will be read (EOF, QUIT, protocol error):
    // the session ends when the replies already owed are written.
    let mut closing = false;
    // Session state: transactions.
    let mut tx = Transaction::default();
    // Where this client's writes went (WAIT).
    let mut written = Written::default();
    // A request that must run alone, waiting for the replies before it.
    let mut held: Option<Request> = None;
    // A (un)subscribe that turns the session into a subscriber.
    let mut subscribe: Option<Request> = None;
    // CLIENT LIST shows the `b` flag while a blocking command is owed.
    let mut blocked_noted = false;
    // The last request dispatched in this turn, and whether it blocks.
    let mut last_dispatched: Option<(&'static str, bool)> = None;
    // CLIENT PAUSE holds the request in `held`: completes when the pause
    // ends or changes.
    let mut paused: Option<BoxFuture<'static, ()>> = None;
    loop {
        // Dispatch every complete request in the buffer, up to the limit;
        // nothing while a request that runs alone is in flight, or while
        // CLIENT PAUSE holds the next one.
        while !closing && owed.len() < max_inflight && !owed.has_barrier() && paused.is_none() {
            let next = match held.take() {
                Some(req) => Ok(Some(req)),
                None => decoder.decode(&mut input),
            };
            match next {
                Ok(Some(req)) => {
                    let (spec, route) = route_with(&req, || proxy.cluster.learned());
                    if let Some(wait) = proxy.pause.hold(|| may_replicate(spec, tx.may_replicate()))
                    {
                        held = Some(req);
                        paused = Some(wait);
                        break;
                    }
                    if !owed.is_empty() && is_barrier(&tx, spec, &route) {
                        held = Some(req);
                        break;
                    }
                    if matches!(route, Route::Subscribe) && !tx.in_multi() {
                        subscribe = Some(req);
                        break;
                    }
                    let mut session = Session {
                        client: &mut client,
                        tx: &mut tx,
                        written: &mut written,
                        closing: &mut closing,
                    };
                    let silent = silenced(session.client, spec, &req);
                    // Computed before `req` moves on; HELLO may switch the
                    // protocol, and its own reply is in the new one.
                    let shape = (session.client.is_resp3()
                        || spec.is_some_and(|s| s.name == "hello"))
                    .then(|| Resp3Reply::of(session.tx, spec, &req));
                    let mut entry = dispatch(&proxy, &mut session, req, spec, route, arrived);
                    entry.silent = silent;
                    entry.resp3 = shape.filter(|_| client.is_resp3());
                    last_dispatched = Some((entry.name, entry.blocking));
                    owed.push(entry);
                }
                Ok(None) => break,
                Err(err) => {
                    proxy.metrics.protocol_errors_total.inc();
                    tracing::debug!(client = %client.addr(), %err, "protocol error; closing");
                    owed.push(Entry::ready(
                        "unknown",
                        arrived,
                        Bytes::from(err.to_reply()),
                    ));
                    closing = true;
                }
            }
        }
        // CLIENT LIST's view, once per batch of requests (one lock).
        if let Some((name, blocking)) = last_dispatched.take() {
            note_command(&client, &tx, name, arrived, blocking);
            blocked_noted |= blocking;
        }
        if let Some(first) = subscribe.take() {
            let io = pubsub::ClientIo {
                reader: &mut reader,
                writer: &mut writer,
                input: &mut input,
                output: &mut output,
                decoder: &mut decoder,
            };
            let handle = client.handle.clone();
            let exit = if client.is_resp3() {
                let mut plain = PlainCommands {
                    proxy: &proxy,
                    client: &mut client,
                    tx: &mut tx,
                    written: &mut written,
                };
                pubsub::serve(&proxy, &handle, io, first, Some(&mut plain)).await
            } else {
                pubsub::serve(&proxy, &handle, io, first, None).await
            };
            client.handle.details().subscriptions = Default::default();
            match exit {
                Exit::Resume => {}
                Exit::Reset => {
                    tx.reset();
                    client.reset();
                }
                Exit::Close => closing = true,
                Exit::Abort => break,
            }
            continue;
        }
        if closing && owed.is_empty() && output.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            first = poll_fn(|cx| owed.poll_next(cx, &proxy)), if !owed.is_empty() => {
                // Collect every other reply that is already there, so they
                // leave in one write. (Polling with a no-op waker is fine:
                // the next turn of the loop polls the front with the real one.)
                let now = Instant::now();
                let mut cx = Context::from_waker(Waker::noop());
                let mut done = Some(first);
                while let Some((reply, name, arrived, resp3)) = done {
                    recorder.record(name, reply.first() != Some(&b'-'), now.saturating_duration_since(arrived));
                    match resp3 {
                        None => output.extend_from_slice(&reply),
                        Some(shape) => shape.write(&reply, &mut output),
                    }
                    done = match owed.poll_next(&mut cx, &proxy) {
                        Poll::Ready(next) => Some(next),
                        Poll::Pending => None,
                    };
                }
                if blocked_noted && !owed.is_blocked() {
                    client.handle.details().blocked = false;
                    blocked_noted = false;
                }
                if recorder.pending() > 0 && !flush_armed {
                    flush_timer.as_mut().reset((now + METRICS_FLUSH_DELAY).into());
                    flush_armed = true;
                }
                if output.len() > output_limit {
                    tracing::warn!(client = %client.addr(), bytes = output.len(), "client output limit reached; closing");
                    break;
                }
            }
            written = writer.write(&output), if !output.is_empty() => match written {
                Ok(n) if n > 0 => output.advance(n),
                _ => break,
            },
            // While a request runs alone, reading goes on (a bounded amount)
            // to see the client leave.
            read = reader.read_buf(&mut input), if !closing && owed.len() < max_inflight
                && ((held.is_none() && !owed.has_barrier()) || input.len() < HELD_INPUT_LIMIT) => match read {
                Ok(0) | Err(_) => {
                    closing = true;
                    // A blocked command is cancelled, as Redis does for a
                    // client that leaves: its connection closes with it.
                    if owed.is_blocked() {
                        break;
                    }
                }
                Ok(_) => arrived = Instant::now(),
            },
            () = async { if let Some(wait) = paused.as_mut() { wait.await } }, if paused.is_some() => {
                paused = None;
            }
            () = &mut flush_timer, if flush_armed => {
                recorder.flush();
                flush_armed = false;
            }
        }
    }
    tx.reset();
    // The client's place is free before it sees the close.
    drop(seat);
    let _ = writer.shutdown().await;
}

/// True when CLIENT REPLY says this request's reply is dropped; consumes
/// a SKIP. CLIENT REPLY ON answers even when replies were off, as in Redis.
fn silenced(client: &mut ClientState, spec: Option<&CommandSpec>, req: &Request) -> bool {
    let silent = match client.reply {
        ReplyMode::On => false,
        ReplyMode::Off => true,
        ReplyMode::Skip => {
            client.reply = ReplyMode::On;
            true
        }
    };
    let reply_on = spec.is_some_and(|s| s.name == "client|reply")
        && req.arg(2).is_some_and(|m| m.eq_ignore_ascii_case(b"on"));
    silent && !reply_on
}

/// Records a dispatched command in the client's description (CLIENT LIST).
fn note_command(
    client: &ClientState,
    tx: &Transaction,
    name: &'static str,
    arrived: Instant,
    blocking: bool,
) {
    let mut details = client.handle.details();
    details.last_command = name;
    details.last_active = arrived;
    details.multi = tx.queued().map_or(-1, |n| n as i64);
    details.blocked = blocking;
}

/// Input read ahead while a request that runs alone (a blocking command,
/// EXEC) is in flight.
const HELD_INPUT_LIMIT: usize = 64 * 1024;

/// True when `route` must run alone: after every reply before it, and
/// before any request after it starts.
fn is_barrier(tx: &Transaction, spec: Option<&CommandSpec>, route: &Route) -> bool {
    match route {
        Route::Blocking { .. } => !tx.in_multi(),
        Route::Session { .. } => tx.is_barrier(spec),
        Route::Subscribe | Route::Wait => !tx.in_multi(),
        _ => false,
    }
}

/// Runs the commands a RESP3 subscriber sends besides (un)subscribing,
/// one at a time. Those that need the session to themselves (transactions,
/// blocking commands, WAIT) and HELLO (the protocol stays RESP3 while
/// subscribed) are refused.
struct PlainCommands<'a> {
    proxy: &'a SessionProxy,
    client: &'a mut ClientState,
    tx: &'a mut Transaction,
    written: &'a mut Written,
}

impl pubsub::PlainCommands for PlainCommands<'_> {
    fn run(&mut self, req: Request) -> BoxFuture<'_, Bytes> {
        Box::pin(async move {
            let proxy = self.proxy;
            let (spec, route) = route_with(&req, || proxy.cluster.learned());
            // HELLO too: the subscriber loop speaks RESP3 until it ends.
            if matches!(
                route,
                Route::Blocking { .. } | Route::Session { .. } | Route::Wait
            ) || spec.is_some_and(|s| s.name == "hello")
            {
                let name = String::from_utf8_lossy(req.name()).to_uppercase();
                let mut out = BytesMut::new();
                encode::error(
                    &mut out,
                    &format!(
                        "ERR '{name}' is not served through this proxy while the connection is subscribed"
                    ),
                );
                return out.freeze();
            }
            let shape = Resp3Reply::of(self.tx, spec, &req);
            let mut closing = false;
            let mut session = Session {
                client: self.client,
                tx: self.tx,
                written: self.written,
                closing: &mut closing,
            };
            let mut owed = OwedQueue::default();
            owed.push(dispatch(
                proxy,
                &mut session,
                req,
                spec,
                route,
                Instant::now(),
            ));
            let (reply, ..) = poll_fn(|cx| owed.poll_next(cx, proxy)).await;
            let mut out = BytesMut::with_capacity(reply.len());
            shape.write(&reply, &mut out);
            out.freeze()
        })
    }
}

/// What [`dispatch`] may change about the session.
struct Session<'a> {
    client: &'a mut ClientState,
    tx: &'a mut Transaction,
    written: &'a mut Written,
    /// Set when no more requests will be read.
    closing: &'a mut bool,
}

/// The replies a session owes, in request order.
///
/// Only the front entry is ever polled: replies must leave in order anyway,
/// and nothing behind the front needs polling to make progress. A
/// forwarded request's reply lands in its channel on its own; anything that
/// needs work of its own (a redirect, a split command, INFO) runs as a task.
/// So a completed reply behind the front costs no wakeup at all.
#[derive(Default)]
struct OwedQueue {
    entries: VecDeque<Entry>,
}

/// One reply owed, with what the metrics need.
struct Entry {
    name: &'static str,
    arrived: Instant,
    owed: Owed,
    /// Runs alone: nothing is dispatched behind it until it is answered.
    barrier: bool,
    /// A blocking command: cancelled (its task aborted, which closes its
    /// connection) when the client leaves.
    blocking: bool,
    /// CLIENT REPLY OFF or SKIP: the reply is dropped.
    silent: bool,
    /// For a RESP3 client: how its RESP2 reply becomes RESP3.
    resp3: Option<Resp3Reply>,
}

/// How a reply is written to a RESP3 client.
enum Resp3Reply {
    Shaped(&'static Shape),
    /// EXEC: each queued command's reply with its own shape.
    Exec(Vec<&'static Shape>),
}

impl Resp3Reply {
    fn of(tx: &Transaction, spec: Option<&CommandSpec>, req: &Request) -> Resp3Reply {
        match spec.map(|s| s.name) {
            Some("exec") if tx.in_multi() => Resp3Reply::Exec(tx.reply_shapes()),
            Some(name) => Resp3Reply::Shaped(command::reply_shape(name, req)),
            None => Resp3Reply::Shaped(&Shape::Same),
        }
    }

    fn write(&self, reply: &Bytes, out: &mut BytesMut) {
        match self {
            Resp3Reply::Shaped(shape) => resp3::upgrade(reply, shape, out),
            Resp3Reply::Exec(shapes) => resp3::upgrade_exec(reply, shapes, out),
        }
    }
}

enum Owed {
    Ready(Bytes),
    /// The fast path: a single-slot request sent straight to its master.
    /// Most replies end here; a redirect or a failure moves on to a task.
    Forwarded {
        reply: oneshot::Receiver<ReplyResult>,
        request: Bytes,
        slot: u16,
        readonly: bool,
    },
    Task(JoinHandle<Bytes>),
}

impl Entry {
    fn ready(name: &'static str, arrived: Instant, reply: Bytes) -> Entry {
        Entry {
            name,
            arrived,
            owed: Owed::Ready(reply),
            barrier: false,
            blocking: false,
            silent: false,
            resp3: None,
        }
    }

    fn task(
        name: &'static str,
        arrived: Instant,
        fut: impl Future<Output = Bytes> + Send + 'static,
    ) -> Entry {
        Entry {
            name,
            arrived,
            owed: Owed::Task(tokio::spawn(fut)),
            barrier: false,
            blocking: false,
            silent: false,
            resp3: None,
        }
    }

    /// A task that runs alone (see [`is_barrier`]).
    fn barrier(
        name: &'static str,
        arrived: Instant,
        fut: impl Future<Output = Bytes> + Send + 'static,
    ) -> Entry {
        let mut entry = Entry::task(name, arrived, fut);
        entry.barrier = true;
        entry
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.blocking {
            if let Owed::Task(task) = &self.owed {
                task.abort();
            }
        }
    }
}

impl OwedQueue {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }

    /// True while a request that runs alone is owed (it is then the only
    /// one).
    fn has_barrier(&self) -> bool {
        self.entries.front().is_some_and(|e| e.barrier)
    }

    /// True while a blocking command is owed.
    fn is_blocked(&self) -> bool {
        self.entries.iter().any(|e| e.blocking)
    }

    /// The front reply, with its command name and arrival time, once it is
    /// there.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        proxy: &SessionProxy,
    ) -> Poll<(Bytes, &'static str, Instant, Option<Resp3Reply>)> {
        loop {
            let Some(entry) = self.entries.front_mut() else {
                return Poll::Pending;
            };
            let reply = match &mut entry.owed {
                Owed::Ready(reply) => std::mem::take(reply),
                Owed::Task(task) => match ready!(Pin::new(task).poll(cx)) {
                    Ok(reply) => reply,
                    Err(_) => {
                        Bytes::from_static(b"-ERR internal error while serving this command\r\n")
                    }
                },
                Owed::Forwarded { reply, .. } => match ready!(Pin::new(reply).poll(cx)) {
                    Ok(Ok(reply)) if is_final(&reply) => reply,
                    // A redirect or a failure: hand over to the full
                    // machinery, first attempt included.
                    other => {
                        let Owed::Forwarded {
                            request,
                            slot,
                            readonly,
                            ..
                        } = std::mem::replace(&mut entry.owed, Owed::Ready(Bytes::new()))
                        else {
                            continue;
                        };
                        let proxy = proxy.clone();
                        entry.owed = Owed::Task(tokio::spawn(async move {
                            let first = match other {
                                Ok(result) => result,
                                // The link dropped the request with its connection.
                                Err(_) => dropped_reply(&proxy, &Target::Slot(slot)),
                            };
                            execute_after(
                                &proxy,
                                request,
                                Target::Slot(slot),
                                readonly,
                                Some(first),
                            )
                            .await
                        }));
                        continue;
                    }
                },
            };
            let (name, arrived, resp3) = (entry.name, entry.arrived, entry.resp3.take());
            let reply = if entry.silent { Bytes::new() } else { reply };
            self.entries.pop_front();
            return Poll::Ready((reply, name, arrived, resp3));
        }
    }
}

/// Routes one request and returns what the session owes for it. Replies the
/// proxy knows at once are ready, so they keep their place in line.
fn dispatch(
    proxy: &SessionProxy,
    session: &mut Session<'_>,
    req: Request,
    spec: Option<&'static CommandSpec>,
    route: Route,
    arrived: Instant,
) -> Entry {
    let name = spec.map_or("unknown", |s| s.name);
    let is_session = matches!(route, Route::Session { .. })
        || (matches!(route, Route::Error(_))
            && spec.is_some_and(|s| handling(s) == Handling::Session));
    session.written.note(spec, &route);
    if session.tx.in_multi() || is_session {
        match session.tx.handle(proxy, spec, &route, &req) {
            TxStep::Pass => {}
            TxStep::Reply(reply) => return Entry::ready(name, arrived, reply),
            TxStep::Run(fut) => return Entry::barrier(name, arrived, fut),
        }
    }
    match route {
        Route::Slot { slot, readonly } => {
            let request = req.raw().clone();
            match send_to_slot(proxy, request.clone(), slot) {
                Some(reply) => Entry {
                    name,
                    arrived,
                    owed: Owed::Forwarded {
                        reply,
                        request,
                        slot,
                        readonly,
                    },
                    barrier: false,
                    blocking: false,
                    silent: false,
                    resp3: None,
                },
                None => {
                    let proxy = proxy.clone();
                    Entry::task(name, arrived, async move {
                        execute(&proxy, request, Target::Slot(slot), readonly).await
                    })
                }
            }
        }
        Route::Local => match spec.map(|spec| local::answer(proxy, session.client, spec, &req)) {
            None => Entry::ready(
                name,
                arrived,
                Bytes::from_static(b"-ERR internal routing error\r\n"),
            ),
            Some(LocalReply::Now(reply)) => Entry::ready(name, arrived, reply),
            Some(LocalReply::Quit(reply)) => {
                *session.closing = true;
                Entry::ready(name, arrived, reply)
            }
            Some(LocalReply::Later(fut)) => Entry::task(name, arrived, fut),
        },
        Route::Error(text) => {
            let mut out = BytesMut::with_capacity(text.len() + 3);
            encode::error(&mut out, &text);
            Entry::ready(name, arrived, out.freeze())
        }
        Route::AnyMaster { readonly } => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move {
                execute(&proxy, req.raw().clone(), Target::AnyMaster, readonly).await
            })
        }
        Route::Split {
            merge,
            group,
            first_key,
            readonly,
        } => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move {
                execute_split(&proxy, &req, merge, group, first_key, readonly).await
            })
        }
        Route::AllMasters { how, readonly } => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move {
                fanout::all_masters(&proxy, req.raw().clone(), how, readonly).await
            })
        }
        Route::Scan => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move { scan::scan(&proxy, &req).await })
        }
        Route::RandomMaster => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move {
                fanout::random_key(&proxy, req.raw().clone()).await
            })
        }
        Route::AllNodes => {
            let proxy = proxy.clone();
            let command = spec.map_or_else(
                || "the command".to_string(),
                |s| s.name.replace('|', " ").to_uppercase(),
            );
            Entry::task(name, arrived, async move {
                fanout::all_nodes(&proxy, req.raw().clone(), &command).await
            })
        }
        Route::Blocking { slot, readonly } => {
            let proxy = proxy.clone();
            let client = session.client.handle.clone();
            let wait = blocking::reply_wait(name, &req);
            let mut entry = Entry::barrier(name, arrived, async move {
                let request = req.raw().clone();
                let target = Target::Slot(slot);
                execute_dedicated(&proxy, request, target, readonly, wait, Some(&client)).await
            });
            entry.blocking = true;
            entry
        }
        Route::PubsubIntrospect => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move {
                pubsub_introspect::introspect(&proxy, &req).await
            })
        }
        Route::EvalSha { slot, readonly } => {
            let proxy = proxy.clone();
            let target = slot.map_or(Target::AnyMaster, Target::Slot);
            Entry::task(name, arrived, async move {
                scripts::evalsha(&proxy, &req, target, readonly).await
            })
        }
        Route::ScriptAdmin => {
            let proxy = proxy.clone();
            Entry::task(name, arrived, async move {
                scripts::admin(&proxy, name, &req).await
            })
        }
        Route::Wait => {
            let wait = wait::wait((**proxy).clone(), session.written.clone(), req);
            let mut entry = Entry::barrier(name, arrived, wait);
            entry.blocking = true;
            entry
        }
        // Served by the subscriber loop (the session never dispatches it).
        Route::Subscribe => Entry::ready(
            name,
            arrived,
            Bytes::from_static(b"-ERR internal routing error\r\n"),
        ),
        Route::Session { .. } => {
            // RESET: out of every mode, back to a new connection's state.
            session.tx.reset();
            session.client.reset();
            Entry::ready(name, arrived, Bytes::from_static(b"+RESET\r\n"))
        }
    }
}
