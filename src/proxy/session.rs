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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::resp::{Request, RequestDecoder, encode};

use super::Proxy;
use super::backend::ReplyResult;
use super::dispatch::{Target, dropped_reply, execute, execute_after, is_final, send_to_slot};
use super::local::{self, ClientState, LocalReply};
use super::multikey::execute_split;
use super::router::{Route, route};

/// The session's handle on the shared proxy. Requests clone this, not the
/// shared `Arc<Proxy>`, so the reference count they touch lives in memory
/// only this session's thread writes (no cache line bouncing between
/// workers).
type SessionProxy = Arc<Arc<Proxy>>;

/// Serves one client until it disconnects, sends garbage, or quits.
pub async fn serve(proxy: Arc<Proxy>, stream: TcpStream, client: ClientState) {
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
    let mut pending: FuturesOrdered<Owed> = FuturesOrdered::new();
    // When the bytes in `input` arrived: every request decoded from one read
    // shares it, so the clock is read once per read, not per request.
    let mut arrived = Instant::now();
    // Set once no more requests will be read (EOF, QUIT, protocol error):
    // the session ends when the replies already owed are written.
    let mut closing = false;
    loop {
        // Dispatch every complete request in the buffer, up to the limit.
        while !closing && pending.len() < max_inflight {
            match decoder.decode(&mut input) {
                Ok(Some(req)) => {
                    pending.push_back(dispatch(&proxy, &mut client, req, arrived, &mut closing));
                }
                Ok(None) => break,
                Err(err) => {
                    proxy.metrics.protocol_errors_total.inc();
                    tracing::debug!(client = %client.addr, %err, "protocol error; closing");
                    pending.push_back(Owed::ready("unknown", arrived, Bytes::from(err.to_reply())));
                    closing = true;
                }
            }
        }
        if closing && pending.is_empty() && output.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(first) = pending.next(), if !pending.is_empty() => {
                // Collect every other reply that is already there, so they
                // leave in one write.
                let now = Instant::now();
                let mut done = Some(first);
                while let Some((reply, name, started)) = done {
                    proxy.metrics.record_command(name, reply.first() != Some(&b'-'), now.saturating_duration_since(started));
                    output.extend_from_slice(&reply);
                    done = pending.next().now_or_never().flatten();
                }
                if output.len() > output_limit {
                    tracing::warn!(client = %client.addr, bytes = output.len(), "client output limit reached; closing");
                    break;
                }
            }
            written = writer.write(&output), if !output.is_empty() => match written {
                Ok(n) if n > 0 => output.advance(n),
                _ => break,
            },
            read = reader.read_buf(&mut input), if !closing && pending.len() < max_inflight => match read {
                Ok(0) | Err(_) => closing = true,
                Ok(_) => arrived = Instant::now(),
            },
        }
    }
    let _ = writer.shutdown().await;
}

/// A reply the session owes the client. Resolves to the reply, the command
/// name and when the request arrived (for metrics).
struct Owed {
    name: &'static str,
    arrived: Instant,
    state: OwedState,
}

enum OwedState {
    Ready(Option<Bytes>),
    /// The fast path: a single-slot request sent straight to its master.
    /// Most replies end here; redirects and failures move on to `Slow`.
    Forwarded {
        reply: oneshot::Receiver<ReplyResult>,
        proxy: SessionProxy,
        request: Bytes,
        slot: u16,
        readonly: bool,
    },
    Slow(Pin<Box<dyn Future<Output = Bytes> + Send>>),
}

impl Owed {
    fn ready(name: &'static str, arrived: Instant, reply: Bytes) -> Owed {
        Owed {
            name,
            arrived,
            state: OwedState::Ready(Some(reply)),
        }
    }

    fn slow(
        name: &'static str,
        arrived: Instant,
        fut: impl Future<Output = Bytes> + Send + 'static,
    ) -> Owed {
        Owed {
            name,
            arrived,
            state: OwedState::Slow(Box::pin(fut)),
        }
    }
}

impl Future for Owed {
    type Output = (Bytes, &'static str, Instant);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let reply = match &mut this.state {
                OwedState::Ready(reply) => reply.take().unwrap_or_default(),
                OwedState::Slow(fut) => ready!(fut.as_mut().poll(cx)),
                OwedState::Forwarded { reply, .. } => {
                    let first = match ready!(Pin::new(reply).poll(cx)) {
                        Ok(Ok(reply)) if is_final(&reply) => {
                            return Poll::Ready((reply, this.name, this.arrived));
                        }
                        Ok(result) => Some(result),
                        // The link dropped the request with its connection.
                        Err(_) => None,
                    };
                    // A redirect or a failure: hand over to the full
                    // machinery, first attempt included.
                    let OwedState::Forwarded {
                        proxy,
                        request,
                        slot,
                        readonly,
                        ..
                    } = std::mem::replace(&mut this.state, OwedState::Ready(None))
                    else {
                        continue;
                    };
                    this.state = OwedState::Slow(Box::pin(async move {
                        let first =
                            first.unwrap_or_else(|| dropped_reply(&proxy, &Target::Slot(slot)));
                        execute_after(&proxy, request, Target::Slot(slot), readonly, Some(first))
                            .await
                    }));
                    continue;
                }
            };
            return Poll::Ready((reply, this.name, this.arrived));
        }
    }
}

/// Routes one request and returns what the session owes for it. Replies the
/// proxy knows at once are ready, so they keep their place in line.
fn dispatch(
    proxy: &SessionProxy,
    client: &mut ClientState,
    req: Request,
    arrived: Instant,
    closing: &mut bool,
) -> Owed {
    let (spec, route) = route(&req);
    proxy
        .stats
        .commands_processed
        .fetch_add(1, Ordering::Relaxed);
    let name = spec.map_or("unknown", |s| s.name);
    match route {
        Route::Slot { slot, readonly } => {
            let request = req.raw().clone();
            match send_to_slot(proxy, request.clone(), slot) {
                Some(reply) => Owed {
                    name,
                    arrived,
                    state: OwedState::Forwarded {
                        reply,
                        proxy: proxy.clone(),
                        request,
                        slot,
                        readonly,
                    },
                },
                None => {
                    let proxy = proxy.clone();
                    Owed::slow(name, arrived, async move {
                        execute(&proxy, request, Target::Slot(slot), readonly).await
                    })
                }
            }
        }
        Route::Local => match spec.map(|spec| local::answer(proxy, client, spec, &req)) {
            None => Owed::ready(
                name,
                arrived,
                Bytes::from_static(b"-ERR internal routing error\r\n"),
            ),
            Some(LocalReply::Now(reply)) => Owed::ready(name, arrived, reply),
            Some(LocalReply::Quit(reply)) => {
                *closing = true;
                Owed::ready(name, arrived, reply)
            }
            Some(LocalReply::Later(fut)) => Owed {
                name,
                arrived,
                state: OwedState::Slow(fut),
            },
        },
        Route::Error(text) => {
            let mut out = BytesMut::with_capacity(text.len() + 3);
            encode::error(&mut out, &text);
            Owed::ready(name, arrived, out.freeze())
        }
        Route::AnyMaster { readonly } => {
            let proxy = proxy.clone();
            Owed::slow(name, arrived, async move {
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
            Owed::slow(name, arrived, async move {
                execute_split(&proxy, &req, merge, group, first_key, readonly).await
            })
        }
        Route::AllMastersSum => {
            let proxy = proxy.clone();
            Owed::slow(name, arrived, async move {
                local::sum_over_masters(&proxy, req.raw().clone()).await
            })
        }
    }
}
