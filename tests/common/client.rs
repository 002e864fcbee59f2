//! A small synchronous RESP client for tests, with timeouts on every read
//! and write so that no test can hang on a server that stops answering.
//!
//! Replies are parsed by this module's own RESP2 parser rather than the
//! crate's, so the tests do not share a bug with the code under test.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Read and write timeout of a new client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Nesting the parser accepts before it calls a reply malformed.
const MAX_DEPTH: usize = 64;

/// One RESP2 reply.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text` (the whole line, code included: `MOVED 3999 127.0.0.1:6381`)
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` (`None` for `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*n` (`None` for `*-1`)
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A bulk string reply holding `value`.
    pub fn bulk(value: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Some(value.as_ref().to_vec()))
    }

    /// `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Simple(s) if s == "OK")
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// A nil bulk or nil array.
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Bulk(None) | Reply::Array(None))
    }

    /// The error line, for an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes of a non-nil bulk string.
    pub fn as_bulk(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }

    /// A simple string, or a bulk string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Simple(s) => Some(s),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The elements of a non-nil array.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// # Panics
    /// Unless the reply is `+OK`.
    #[track_caller]
    pub fn expect_ok(&self) {
        assert!(self.is_ok(), "expected +OK, got {self:?}");
    }

    /// # Panics
    /// Unless the reply is an integer.
    #[track_caller]
    pub fn expect_int(&self) -> i64 {
        self.as_int()
            .unwrap_or_else(|| panic!("expected an integer, got {self:?}"))
    }

    /// # Panics
    /// Unless the reply is a simple string or a UTF-8 bulk string.
    #[track_caller]
    pub fn expect_str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("expected a string, got {self:?}"))
    }

    /// # Panics
    /// Unless the reply is a non-nil array.
    #[track_caller]
    pub fn expect_array(&self) -> &[Reply] {
        self.as_array()
            .unwrap_or_else(|| panic!("expected an array, got {self:?}"))
    }

    /// # Panics
    /// Unless the reply is an error; returns its line.
    #[track_caller]
    pub fn expect_error(&self) -> &str {
        self.as_error()
            .unwrap_or_else(|| panic!("expected an error, got {self:?}"))
    }

    /// The reply in RESP2 wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Reply::Error(e) => out.extend_from_slice(format!("-{e}\r\n").as_bytes()),
            Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(Some(items)) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode_into(out);
                }
            }
        }
    }

    /// Parses one reply from the front of `buf`: `Ok(None)` when more bytes
    /// are needed, else the reply and the number of bytes it took.
    ///
    /// # Errors
    /// When the bytes are not RESP2.
    pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
        let mut pos = 0;
        match parse_at(buf, &mut pos, 0)? {
            Some(reply) => Ok(Some((reply, pos))),
            None => Ok(None),
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "+{s}"),
            Reply::Error(e) => write!(f, "-{e}"),
            Reply::Int(n) => write!(f, ":{n}"),
            Reply::Bulk(None) | Reply::Array(None) => write!(f, "(nil)"),
            Reply::Bulk(Some(b)) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Reply::Array(Some(items)) => f.debug_list().entries(items).finish(),
        }
    }
}

/// The line starting at `*pos` without its CRLF; `None` if incomplete.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a str>, String> {
    let rest = buf.get(*pos..).unwrap_or_default();
    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&rest[..end]).map_err(|e| format!("non-UTF-8 line: {e}"))?;
    *pos += end + 2;
    Ok(Some(text))
}

fn parse_len(text: &str) -> Result<i64, String> {
    text.parse().map_err(|_| format!("bad length {text:?}"))
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("reply nested deeper than {MAX_DEPTH}"));
    }
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    let start = *pos;
    *pos += 1;
    let Some(text) = line(buf, pos)? else {
        *pos = start;
        return Ok(None);
    };
    let reply = match kind {
        b'+' => Reply::Simple(text.to_string()),
        b'-' => Reply::Error(text.to_string()),
        b':' => Reply::Int(text.parse().map_err(|_| format!("bad integer {text:?}"))?),
        b'$' => match parse_len(text)? {
            -1 => Reply::Bulk(None),
            n if n < 0 => return Err(format!("bad bulk length {n}")),
            n => {
                let n = usize::try_from(n).map_err(|e| e.to_string())?;
                let end = pos.checked_add(n).and_then(|e| e.checked_add(2));
                let Some(body) = end.and_then(|end| buf.get(*pos..end)) else {
                    *pos = start;
                    return Ok(None);
                };
                if &body[n..] != b"\r\n" {
                    return Err("bulk string not followed by CRLF".to_string());
                }
                *pos += n + 2;
                Reply::Bulk(Some(body[..n].to_vec()))
            }
        },
        b'*' => match parse_len(text)? {
            -1 => Reply::Array(None),
            n if n < 0 => return Err(format!("bad array length {n}")),
            n => {
                let mut items = Vec::new();
                for _ in 0..n {
                    match parse_at(buf, pos, depth + 1)? {
                        Some(item) => items.push(item),
                        None => {
                            *pos = start;
                            return Ok(None);
                        }
                    }
                }
                Reply::Array(Some(items))
            }
        },
        other => return Err(format!("unexpected reply type byte {:?}", other as char)),
    };
    Ok(Some(reply))
}

/// The length of the RESP2/RESP3 value starting at `pos`, counted from
/// `pos`; `None` while incomplete. Written apart from the proxy's own
/// parser, so a test does not judge the proxy with its own code.
fn resp3_len(buf: &[u8], pos: usize) -> Result<Option<usize>, String> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let header = std::str::from_utf8(&buf[pos + 1..pos + eol]).map_err(|e| e.to_string())?;
    let after = pos + eol + 2;
    let count = || {
        header
            .parse::<i64>()
            .map_err(|_| format!("bad length {header:?}"))
    };
    let elements = |n: i64| -> Result<Option<usize>, String> {
        let mut at = after;
        for _ in 0..n.max(0) {
            match resp3_len(buf, at)? {
                Some(len) => at += len,
                None => return Ok(None),
            }
        }
        Ok(Some(at - pos))
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after - pos)),
        b'$' | b'!' | b'=' => match count()? {
            -1 => Ok(Some(after - pos)),
            n => {
                let end = after + usize::try_from(n).map_err(|e| e.to_string())? + 2;
                Ok((buf.len() >= end).then_some(end - pos))
            }
        },
        b'*' | b'~' | b'>' => elements(count()?),
        b'%' => elements(count()? * 2),
        other => Err(format!("unexpected type byte {:?}", other as char)),
    }
}

/// `args` as a RESP multibulk request.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A blocking RESP connection with a deadline on every read and write.
pub struct TestClient {
    stream: TcpStream,
    addr: String,
    /// Bytes read but not yet parsed into a reply.
    buf: Vec<u8>,
    timeout: Duration,
}

impl TestClient {
    /// Connects to `addr` (`host:port`).
    ///
    /// # Panics
    /// When the connection fails.
    #[track_caller]
    pub fn connect(addr: &str) -> TestClient {
        TestClient::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// # Errors
    /// When `addr` does not resolve or the connection fails in time.
    pub fn try_connect(addr: &str) -> io::Result<TestClient> {
        let sock: SocketAddr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "no address"))?;
        let stream = TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(TestClient {
            stream,
            addr: addr.to_string(),
            buf: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Changes the read and write timeout (the default is 10 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
        let _ = self.stream.set_write_timeout(Some(self.timeout));
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and reads its reply.
    ///
    /// # Panics
    /// On an I/O error, a timeout, or a malformed reply (an error *reply* is
    /// returned, not a panic).
    #[track_caller]
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        self.cmd_bytes(args)
    }

    /// [`TestClient::cmd`] with binary arguments.
    #[track_caller]
    pub fn cmd_bytes<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let addr = self.addr.clone();
        self.try_cmd(args).unwrap_or_else(|e| {
            let shown: Vec<_> = args
                .iter()
                .take(8)
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect();
            panic!("{shown:?} to {addr}: {e}")
        })
    }

    /// # Errors
    /// On an I/O error, a timeout, or a malformed reply.
    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.stream.write_all(&encode_command(args))?;
        self.try_read_reply()
    }

    /// Sends every command, then reads one reply per command, in order. A
    /// second thread writes while this one reads, so a long pipeline cannot
    /// deadlock on full socket buffers.
    ///
    /// # Panics
    /// On an I/O error or timeout.
    #[track_caller]
    pub fn pipeline<C: AsRef<[A]>, A: AsRef<[u8]>>(&mut self, cmds: &[C]) -> Vec<Reply> {
        let mut bytes = Vec::new();
        for cmd in cmds {
            bytes.extend_from_slice(&encode_command(cmd.as_ref()));
        }
        let mut writer = self.stream.try_clone().expect("clone the test socket");
        let (written, replies) = std::thread::scope(|scope| {
            let handle = scope.spawn(move || writer.write_all(&bytes));
            let replies: io::Result<Vec<Reply>> =
                (0..cmds.len()).map(|_| self.try_read_reply()).collect();
            (handle.join(), replies)
        });
        let addr = &self.addr;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("pipeline of {} to {addr}: write: {e}", cmds.len()),
            Err(_) => panic!("pipeline writer thread panicked"),
        }
        replies.unwrap_or_else(|e| panic!("pipeline of {} to {addr}: read: {e}", cmds.len()))
    }

    /// Writes `bytes` as they are.
    ///
    /// # Panics
    /// When the write fails or times out.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let addr = self.addr.clone();
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    }

    /// # Errors
    /// When the write fails or times out.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads the next reply.
    ///
    /// # Panics
    /// On an I/O error, a timeout, end of stream, or a malformed reply.
    #[track_caller]
    pub fn read_reply(&mut self) -> Reply {
        let addr = self.addr.clone();
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("read from {addr}: {e}"))
    }

    /// # Errors
    /// `TimedOut` when no whole reply arrives within the timeout,
    /// `UnexpectedEof` when the server closes first, `InvalidData` for bytes
    /// that are not RESP2.
    pub fn try_read_reply(&mut self) -> io::Result<Reply> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match Reply::parse(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(why) => {
                    let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]);
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!("{why}; buffered: {shown:?}"),
                    ));
                }
            }
            if self.fill(deadline)? == 0 {
                let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]);
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("connection closed; buffered: {shown:?}"),
                ));
            }
        }
    }

    /// Sends one command and returns its reply's raw bytes, whatever the
    /// protocol (RESP3 included: the bytes are compared, not parsed).
    #[track_caller]
    pub fn cmd_raw(&mut self, args: &[&str]) -> Vec<u8> {
        self.send_raw(&encode_command(args));
        self.read_raw_reply()
    }

    /// The raw bytes of the next complete RESP2 or RESP3 reply.
    ///
    /// # Panics
    /// On an I/O error, a timeout, or bytes that are not RESP.
    #[track_caller]
    pub fn read_raw_reply(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match resp3_len(&self.buf, 0) {
                Ok(Some(len)) => return self.buf.drain(..len).collect(),
                Ok(None) => {}
                Err(why) => panic!(
                    "{}: {why}: {:?}",
                    self.addr,
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            match self.fill(deadline) {
                Ok(n) if n > 0 => {}
                other => panic!(
                    "{}: no whole reply ({other:?}); buffered: {:?}",
                    self.addr,
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Everything the server sends until it closes the connection (a reset
    /// counts as a close), including bytes already buffered.
    ///
    /// # Panics
    /// When the server keeps the connection open past the timeout.
    #[track_caller]
    pub fn read_raw_until_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_reset(&e) => break,
                Err(e) => panic!(
                    "{} did not close the connection: {e}; got so far: {:?}",
                    self.addr,
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Whatever bytes arrive within `wait` (and those already buffered); ends
    /// early at end of stream.
    ///
    /// # Panics
    /// On an I/O error other than a timeout or reset.
    #[track_caller]
    pub fn read_raw_for(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        loop {
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut || is_reset(&e) => break,
                Err(e) => panic!("read from {}: {e}", self.addr),
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Reads once into the buffer, waiting no later than `deadline`; returns
    /// the number of bytes read (0 at end of stream).
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(ErrorKind::TimedOut, "timed out"));
        }
        self.stream.set_read_timeout(Some(deadline - now))?;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(
                io::Error::new(ErrorKind::TimedOut, "timed out waiting for the server"),
            ),
            Err(e) if e.kind() == ErrorKind::Interrupted => self.fill(deadline),
            Err(e) => Err(e),
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}
