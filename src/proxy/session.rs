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
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{Request, RequestDecoder, encode};

use super::Proxy;
use super::dispatch::{Target, execute};
use super::local::{self, ClientState, LocalReply};
use super::multikey::execute_split;
use super::router::{Route, route};

type ReplyFuture = Pin<Box<dyn Future<Output = Bytes> + Send>>;

/// Serves one client until it disconnects, sends garbage, or quits.
pub async fn serve(proxy: Arc<Proxy>, stream: TcpStream, client: ClientState) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let limits = &proxy.config.limits;
    let max_inflight = limits.max_inflight_per_client.max(1);
    let output_limit = limits.client_output_limit_bytes;
    let mut decoder = RequestDecoder::new(limits.max_bulk_len, limits.max_multibulk_len);
    let mut client = client;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut pending: FuturesOrdered<ReplyFuture> = FuturesOrdered::new();
    // Set once no more requests will be read (EOF, QUIT, protocol error):
    // the session ends when the replies already owed are written.
    let mut closing = false;
    loop {
        // Dispatch every complete request in the buffer, up to the limit.
        while !closing && pending.len() < max_inflight {
            match decoder.decode(&mut input) {
                Ok(Some(req)) => {
                    pending.push_back(dispatch(&proxy, &mut client, req, &mut closing));
                }
                Ok(None) => break,
                Err(err) => {
                    proxy.metrics.protocol_errors_total.inc();
                    tracing::debug!(client = %client.addr, %err, "protocol error; closing");
                    pending.push_back(Box::pin(std::future::ready(Bytes::from(err.to_reply()))));
                    closing = true;
                }
            }
        }
        if closing && pending.is_empty() && output.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(reply) = pending.next(), if !pending.is_empty() => {
                output.extend_from_slice(&reply);
                // Collect every other reply that is already there, so they
                // leave in one write.
                while let Some(Some(reply)) = pending.next().now_or_never() {
                    output.extend_from_slice(&reply);
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
                Ok(_) => {}
            },
        }
    }
    let _ = writer.shutdown().await;
}

/// Routes one request and returns the future of its reply. Replies the
/// proxy knows at once are ready futures, so they keep their place in line.
fn dispatch(
    proxy: &Arc<Proxy>,
    client: &mut ClientState,
    req: Request,
    closing: &mut bool,
) -> ReplyFuture {
    let started = Instant::now();
    let (spec, route) = route(&req);
    proxy
        .stats
        .commands_processed
        .fetch_add(1, Ordering::Relaxed);
    let name = spec.map_or("unknown", |s| s.name);
    let reply = match route {
        Route::Local => match spec.map(|spec| local::answer(proxy, client, spec, &req)) {
            None => Bytes::from_static(b"-ERR internal routing error\r\n"),
            Some(LocalReply::Now(reply)) => reply,
            Some(LocalReply::Quit(reply)) => {
                *closing = true;
                reply
            }
            Some(LocalReply::Later(fut)) => {
                let proxy = proxy.clone();
                return Box::pin(async move {
                    let reply = fut.await;
                    proxy.metrics.record_command(
                        name,
                        reply.first() != Some(&b'-'),
                        started.elapsed(),
                    );
                    reply
                });
            }
        },
        Route::Error(text) => {
            let mut out = BytesMut::with_capacity(text.len() + 3);
            encode::error(&mut out, &text);
            out.freeze()
        }
        remote => {
            let proxy = proxy.clone();
            return Box::pin(async move {
                let reply = forward(&proxy, remote, req).await;
                proxy
                    .metrics
                    .record_command(name, reply.first() != Some(&b'-'), started.elapsed());
                reply
            });
        }
    };
    proxy
        .metrics
        .record_command(name, reply.first() != Some(&b'-'), started.elapsed());
    Box::pin(std::future::ready(reply))
}

/// Sends a request that needs the cluster and returns the client's reply.
async fn forward(proxy: &Proxy, route: Route, req: Request) -> Bytes {
    match route {
        Route::Slot { slot, readonly } => {
            execute(proxy, req.raw().clone(), Target::Slot(slot), readonly).await
        }
        Route::AnyMaster { readonly } => {
            execute(proxy, req.raw().clone(), Target::AnyMaster, readonly).await
        }
        Route::Split {
            merge,
            group,
            first_key,
            readonly,
        } => execute_split(proxy, &req, merge, group, first_key, readonly).await,
        Route::AllMastersSum => local::sum_over_masters(proxy, req.raw().clone()).await,
        Route::Local | Route::Error(_) => Bytes::from_static(b"-ERR internal routing error\r\n"),
    }
}
