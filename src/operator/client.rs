//! A small async RESP client for talking to one cluster node: one command
//! at a time, each bounded by a timeout.
//!
//! It is the operator tool's only way to reach a node, and it is kept general
//! (any command, any reply) so that other control-plane code, such as the
//! launcher of the embedded default cluster, can use it too. It is not for
//! the proxy's hot path, which pipelines many requests per connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), slotway::operator::OpError> {
//! use std::time::Duration;
//! use slotway::operator::NodeClient;
//!
//! let mut node = NodeClient::connect("127.0.0.1:7000", Duration::from_secs(5)).await?;
//! let nodes = node.text(&["CLUSTER", "NODES"]).await?;
//! node.ok(&["CLUSTER", "MEET", "127.0.0.1", "7001"]).await?;
//! # let _ = nodes;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::OpError;
use crate::resp::reply::reply_len;
use crate::resp::{Frame, encode};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// How much of a command's first arguments an error message repeats.
const COMMAND_NAME_ARGS: usize = 2;
/// How much of an unexpected reply an error message shows.
const SHOWN_REPLY_CHARS: usize = 200;

/// A connection to one node. Commands run one at a time, in order.
///
/// After a failure that leaves the connection in an unknown state (a
/// timeout, an I/O error, a closed socket) the connection is dropped, and
/// the next command connects again; a reply that arrives late can therefore
/// never be taken for the answer to a later command. An error *reply*
/// leaves the connection usable.
#[derive(Debug)]
pub struct NodeClient {
    addr: String,
    timeout: Duration,
    conn: Option<Conn>,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl NodeClient {
    /// Connects to `addr` (`host:port`, `[v6]:port`). `timeout` bounds the
    /// connect and, from then on, every command.
    ///
    /// # Errors
    /// [`OpError::Connect`] when the node cannot be reached in time.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<NodeClient, OpError> {
        let mut client = NodeClient {
            addr: addr.to_string(),
            timeout,
            conn: None,
        };
        client.conn = Some(client.open().await?);
        Ok(client)
    }

    /// The address this client was given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address actually connected to (the resolved IP), for telling
    /// other nodes where this one is (`CLUSTER MEET` needs an IP).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn.as_ref()?.stream.peer_addr().ok()
    }

    /// The timeout of each command from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one command and returns its reply. An error reply becomes
    /// [`OpError::Redis`] carrying Redis's text.
    ///
    /// # Errors
    /// [`OpError::Redis`] for an error reply; `Connect`, `Timeout`, `Io`,
    /// `Closed` or `Protocol` when no reply could be had.
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, OpError> {
        match self.call(args).await? {
            Frame::Error(text) => Err(OpError::Redis {
                addr: self.addr.clone(),
                command: command_name(args),
                message: String::from_utf8_lossy(&text).into_owned(),
            }),
            frame => Ok(frame),
        }
    }

    /// [`NodeClient::cmd`] for commands that answer `+OK`.
    ///
    /// # Errors
    /// As [`NodeClient::cmd`], and [`OpError::Unexpected`] for any other
    /// reply.
    pub async fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), OpError> {
        match self.cmd(args).await? {
            Frame::Simple(s) if &s[..] == b"OK" => Ok(()),
            other => Err(self.unexpected(args, &other)),
        }
    }

    /// [`NodeClient::cmd`] for commands that answer with text (`CLUSTER
    /// NODES`, `INFO`).
    ///
    /// # Errors
    /// As [`NodeClient::cmd`], and [`OpError::Unexpected`] for a reply that
    /// is not a string.
    pub async fn text<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<String, OpError> {
        let reply = self.cmd(args).await?;
        match reply.as_bytes() {
            Some(text) => Ok(String::from_utf8_lossy(text).into_owned()),
            None => Err(self.unexpected(args, &reply)),
        }
    }

    /// [`NodeClient::cmd`] for commands that answer with an integer.
    ///
    /// # Errors
    /// As [`NodeClient::cmd`], and [`OpError::Unexpected`] for any other
    /// reply.
    pub async fn int<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<i64, OpError> {
        match self.cmd(args).await? {
            Frame::Integer(n) => Ok(n),
            other => Err(self.unexpected(args, &other)),
        }
    }

    /// An [`OpError::Unexpected`] for `reply` to `args`, for callers that
    /// check a reply's shape themselves.
    pub fn unexpected<A: AsRef<[u8]>>(&self, args: &[A], reply: &Frame) -> OpError {
        let full = format!("{reply:?}");
        let mut shown: String = full.chars().take(SHOWN_REPLY_CHARS).collect();
        if shown.len() < full.len() {
            shown.push_str("...");
        }
        OpError::Unexpected {
            addr: self.addr.clone(),
            command: command_name(args),
            reply: shown,
        }
    }

    /// Sends `args` and reads one reply, error replies included. Any failure
    /// drops the connection.
    async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, OpError> {
        let timeout = self.timeout;
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.open().await?,
        };
        let exchange = exchange(&mut conn, args);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(frame)) => {
                self.conn = Some(conn);
                Ok(frame)
            }
            Ok(Err(failure)) => Err(self.failed(args, failure)),
            Err(_) => Err(OpError::Timeout {
                addr: self.addr.clone(),
                command: command_name(args),
                timeout,
            }),
        }
    }

    async fn open(&self) -> Result<Conn, OpError> {
        let connect = TcpStream::connect(self.addr.as_str());
        let stream = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(OpError::Connect {
                    addr: self.addr.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(OpError::Connect {
                    addr: self.addr.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {:?}", self.timeout),
                    ),
                });
            }
        };
        // Commands are small and answered one by one: send each at once.
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    fn failed<A: AsRef<[u8]>>(&self, args: &[A], failure: Failure) -> OpError {
        let addr = self.addr.clone();
        let command = command_name(args);
        match failure {
            Failure::Io(source) => OpError::Io {
                addr,
                command,
                source,
            },
            Failure::Closed => OpError::Closed { addr, command },
            Failure::Protocol(reason) => OpError::Protocol {
                addr,
                command,
                reason,
            },
        }
    }
}

enum Failure {
    Io(std::io::Error),
    Closed,
    Protocol(String),
}

async fn exchange<A: AsRef<[u8]>>(conn: &mut Conn, args: &[A]) -> Result<Frame, Failure> {
    let mut out = BytesMut::new();
    encode::array_header(&mut out, args.len());
    for arg in args {
        encode::bulk(&mut out, arg.as_ref());
    }
    conn.stream.write_all(&out).await.map_err(Failure::Io)?;
    loop {
        // Parse only once the whole reply is in: reading stays linear in
        // the reply's size.
        if let Some(len) = reply_len(&conn.buf).map_err(|e| Failure::Protocol(e.to_string()))? {
            let data = conn.buf.split_to(len).freeze();
            return match Frame::parse(&data) {
                Ok(Some((frame, _))) => Ok(frame),
                Ok(None) => Err(Failure::Protocol("incomplete reply".to_string())),
                Err(e) => Err(Failure::Protocol(e.to_string())),
            };
        }
        conn.buf.reserve(READ_CHUNK);
        let n = conn
            .stream
            .read_buf(&mut conn.buf)
            .await
            .map_err(Failure::Io)?;
        if n == 0 {
            return Err(Failure::Closed);
        }
    }
}

/// `CLUSTER SETSLOT`, `INFO`, ...: the first arguments, for messages.
fn command_name<A: AsRef<[u8]>>(args: &[A]) -> String {
    let words: Vec<String> = args
        .iter()
        .take(COMMAND_NAME_ARGS)
        .map(|a| String::from_utf8_lossy(a.as_ref()).to_uppercase())
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake node that answers each request with the next canned reply.
    async fn fake_node(replies: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for reply in replies {
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                socket.write_all(reply).await.unwrap();
            }
            // Hold the socket open without answering.
            while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
        });
        addr
    }

    #[tokio::test]
    async fn replies_errors_and_shapes() {
        let addr = fake_node(vec![
            b"+OK\r\n",
            b"-ERR Unknown subcommand 'ADDSLOTSRANGE'\r\n",
            b"$5\r\nhello\r\n",
            b":42\r\n",
            b"*1\r\n$1\r\na\r\n",
        ])
        .await;
        let mut node = NodeClient::connect(&addr, Duration::from_secs(2))
            .await
            .unwrap();
        node.ok(&["PING"]).await.unwrap();
        let err = node
            .cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "1"])
            .await
            .unwrap_err();
        assert_eq!(
            err.redis_message(),
            Some("ERR Unknown subcommand 'ADDSLOTSRANGE'")
        );
        assert!(err.to_string().contains("CLUSTER ADDSLOTSRANGE"), "{err}");
        // The connection is still usable after an error reply.
        assert_eq!(node.text(&["GET", "k"]).await.unwrap(), "hello");
        assert_eq!(node.int(&["DBSIZE"]).await.unwrap(), 42);
        let err = node.ok(&["KEYS", "*"]).await.unwrap_err();
        assert!(matches!(err, OpError::Unexpected { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_node_times_out() {
        let addr = fake_node(vec![]).await;
        let mut node = NodeClient::connect(&addr, Duration::from_millis(100))
            .await
            .unwrap();
        let err = node.cmd(&["PING"]).await.unwrap_err();
        assert!(matches!(err, OpError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = NodeClient::connect(&addr, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, OpError::Connect { .. }), "{err}");
    }
}
