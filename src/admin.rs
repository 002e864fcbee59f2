//! The admin HTTP endpoint: `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process is up) and `GET /readyz` (the proxy can serve).
//!
//! A deliberately tiny HTTP/1.1 server: one request per connection, the
//! request head read up to [`MAX_HEAD_BYTES`] within [`READ_TIMEOUT`], a
//! reply with `Content-Length` and `Connection: close`. Anything it does not
//! understand gets a 4xx reply or a closed connection; nothing a client sends
//! can make it panic or hold a connection open for long.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a client has to send its whole request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the whole reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin connections served at once; further ones wait in the backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// Serves admin requests on `listener` until `shutdown` completes; then
/// stops accepting and drops connections still open.
///
/// `/readyz` answers 200 while `ready` is true and 503 otherwise; whoever
/// owns readiness (the proxy, once it has a usable topology) flips it.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    ready: Arc<AtomicBool>,
    shutdown: impl Future,
) {
    serve_with(listener, registry, ready, shutdown, READ_TIMEOUT).await;
}

/// [`serve`] with the read timeout as a parameter, so tests need not wait.
async fn serve_with(
    listener: TcpListener,
    registry: Registry,
    ready: Arc<AtomicBool>,
    shutdown: impl Future,
    read_timeout: Duration,
) {
    let state = Arc::new(State {
        registry,
        ready,
        read_timeout,
    });
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // closed: cannot happen, we own it
            },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually transient (ECONNABORTED) or resource exhaustion
                // (EMFILE): back off a little instead of spinning.
                tracing::warn!(error = %e, "admin: accept failed");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        while tasks.try_join_next().is_some() {}
        let state = Arc::clone(&state);
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = handle(stream, &state).await {
                tracing::debug!(client.addr = %peer, error = %e, "admin: connection ended");
            }
        });
    }
    tasks.shutdown().await;
}

struct State {
    registry: Registry,
    ready: Arc<AtomicBool>,
    read_timeout: Duration,
}

async fn handle(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let reply = match tokio::time::timeout(state.read_timeout, read_head(&mut stream)).await {
        Err(_elapsed) => Reply::text(408, "request timeout"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Head::Closed)) => return Ok(()),
        Ok(Ok(Head::TooLarge)) => Reply::text(431, "request header fields too large"),
        Ok(Ok(Head::Complete(head))) => respond(&head, state),
    };
    let write = async {
        stream.write_all(&reply.to_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
    // Closing a socket with unread input makes the kernel send a reset,
    // which can destroy the reply before the client reads it. Read what the
    // client still sends (a body, the rest of an oversized head), a little
    // and briefly, before closing.
    let _ = tokio::time::timeout(LINGER_TIMEOUT, drain(&mut stream)).await;
    Ok(())
}

/// Bytes read and discarded after the reply, at most.
const LINGER_BYTES: usize = 64 * 1024;
/// Time spent reading them, at most.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

async fn drain(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let mut total = 0;
    while total < LINGER_BYTES {
        match stream.read(&mut chunk).await? {
            0 => break,
            n => total += n,
        }
    }
    Ok(())
}

enum Head {
    /// The bytes up to the blank line that ends the head.
    Complete(Vec<u8>),
    TooLarge,
    /// The client went away before finishing its head.
    Closed,
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = head_end(&buf, scan_from) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the head ends: after `\r\n\r\n`, or `\n\n` from lenient clients.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    let crlf = tail
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = tail.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(from + end)
}

fn respond(head: &[u8], state: &State) -> Reply {
    let Some((method, path)) = parse_request_line(head) else {
        return Reply::text(400, "bad request");
    };
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return Reply::text(404, "not found");
    }
    if method != "GET" {
        return Reply::text(405, "method not allowed").header("Allow", "GET");
    }
    match path {
        "/healthz" => Reply::text(200, "ok"),
        "/readyz" if state.ready.load(Ordering::Acquire) => Reply::text(200, "ready"),
        "/readyz" => Reply::text(503, "not ready"),
        _ => metrics(&state.registry),
    }
}

/// `METHOD SP request-target SP HTTP/1.x`; returns the method and the path
/// without its query string.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return None;
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    Some((method, path))
}

fn metrics(registry: &Registry) -> Reply {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => Reply {
            status: 200,
            content_type: prometheus::TEXT_FORMAT,
            extra: None,
            body,
        },
        Err(e) => {
            tracing::warn!(error = %e, "admin: cannot encode metrics");
            Reply::text(500, "cannot encode metrics")
        }
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    extra: Option<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.extra = Some((name, value));
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some((name, value)) = self.extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
