//! Incremental, zero-copy decoding of client requests.
//!
//! A request is either a multibulk array of bulk strings (what every client
//! library sends) or an inline command typed by hand (`PING\r\n`). Both come
//! out as a [`Request`]: the multibulk bytes plus argument offsets. Multibulk
//! requests keep the client's own bytes; inline ones are re-encoded once, so
//! everything downstream forwards `Request::raw` untouched.
//!
//! Limits and error texts follow Redis's `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c). Unlike Redis, the decoder insists on
//! the `\r\n` after each bulk: the proxy forwards raw bytes, and a request
//! that does not end where it claims would desynchronise the backend link.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;

use super::{DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_MULTIBULK_LEN, MAX_INLINE_LEN, ProtocolError};

/// Argument offsets; most commands have at most four arguments, which then
/// need no allocation.
type Args = SmallVec<[Range<usize>; 4]>;

/// One decoded client request.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    raw: Bytes,
    args: Args,
}

impl Request {
    /// Builds a request from its arguments, encoding it as a multibulk array.
    /// Used for inline commands and for requests the proxy makes itself.
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Request {
        let mut raw =
            BytesMut::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
        super::encode::array_header(&mut raw, args.len());
        let mut ranges = Args::with_capacity(args.len());
        for arg in args {
            let arg = arg.as_ref();
            super::encode::bulk_header(&mut raw, arg.len());
            let start = raw.len();
            raw.extend_from_slice(arg);
            ranges.push(start..raw.len());
            raw.extend_from_slice(b"\r\n");
        }
        Request {
            raw: raw.freeze(),
            args: ranges,
        }
    }

    /// The request exactly as it goes on the wire (multibulk form).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// True for a request with no arguments (never produced by the decoder).
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i` (0 is the command name), or `None` past the end.
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        self.args.get(i).and_then(|r| self.raw.get(r.clone()))
    }

    /// Argument `i` as a zero-copy `Bytes` slice.
    pub fn arg_bytes(&self, i: usize) -> Option<Bytes> {
        let r = self.args.get(i)?;
        Some(self.raw.slice(r.clone()))
    }

    /// The command name as sent (any case).
    pub fn name(&self) -> &[u8] {
        self.arg(0).unwrap_or_default()
    }

    /// All arguments in order.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.args
            .iter()
            .map(|r| self.raw.get(r.clone()).unwrap_or_default())
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for arg in self.args() {
            list.entry(&String::from_utf8_lossy(arg));
        }
        list.finish()
    }
}

/// Where the decoder stopped inside a multibulk request that has not fully
/// arrived yet, so the next call resumes instead of rescanning from the start.
#[derive(Debug)]
struct Partial {
    /// Number of arguments announced by the `*<n>` header.
    argc: usize,
    /// Arguments decoded so far.
    args: Args,
    /// Offset of the next unread byte in the buffer.
    pos: usize,
}

/// Decodes requests from a client's input buffer, one call per request.
#[derive(Debug)]
pub struct RequestDecoder {
    max_bulk_len: usize,
    max_multibulk_len: usize,
    partial: Option<Partial>,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_MULTIBULK_LEN)
    }
}

impl RequestDecoder {
    /// A decoder with Redis's `proto-max-bulk-len` and multibulk count limits.
    pub fn new(max_bulk_len: usize, max_multibulk_len: usize) -> Self {
        RequestDecoder {
            max_bulk_len,
            max_multibulk_len,
            partial: None,
        }
    }

    /// Takes the next complete request off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed. Empty requests (`*0\r\n`,
    /// `*-1\r\n`, a blank inline line) are consumed and skipped, as Redis does.
    ///
    /// # Errors
    /// A [`ProtocolError`] when the input can never become a valid request;
    /// the caller replies with it and closes the connection.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            if self.partial.is_none() {
                match buf.first() {
                    None => return Ok(None),
                    Some(b'*') => {}
                    Some(_) => match self.decode_inline(buf)? {
                        Inline::Incomplete => return Ok(None),
                        Inline::Empty => continue,
                        Inline::Request(req) => return Ok(Some(req)),
                    },
                }
            }
            match self.decode_multibulk(buf)? {
                Multibulk::Incomplete => return Ok(None),
                Multibulk::Empty => continue,
                Multibulk::Request(req) => return Ok(Some(req)),
            }
        }
    }

    fn decode_multibulk(&mut self, buf: &mut BytesMut) -> Result<Multibulk, ProtocolError> {
        let mut partial = match self.partial.take() {
            Some(p) => p,
            None => {
                let Some(eol) = find_crlf(buf, 0) else {
                    if buf.len() > MAX_INLINE_LEN {
                        return Err(ProtocolError::TooBigMultibulkCount);
                    }
                    return Ok(Multibulk::Incomplete);
                };
                let count = parse_int(buf.get(1..eol).unwrap_or_default())
                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                if count > i64::from(i32::MAX) || count > self.max_multibulk_len as i64 {
                    return Err(ProtocolError::InvalidMultibulkLength);
                }
                if count <= 0 {
                    buf.advance(eol + 2);
                    return Ok(Multibulk::Empty);
                }
                let argc =
                    usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
                Partial {
                    argc,
                    args: Args::with_capacity(argc.min(1024)),
                    pos: eol + 2,
                }
            }
        };
        while partial.args.len() < partial.argc {
            let pos = partial.pos;
            let Some(eol) = find_crlf(buf, pos) else {
                if buf.len() - pos > MAX_INLINE_LEN {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                self.partial = Some(partial);
                return Ok(Multibulk::Incomplete);
            };
            match buf.get(pos) {
                Some(b'$') => {}
                Some(&other) => return Err(ProtocolError::ExpectedDollar(char::from(other))),
                None => return Err(ProtocolError::InvalidBulkLength),
            }
            let len = parse_int(buf.get(pos + 1..eol).unwrap_or_default())
                .ok_or(ProtocolError::InvalidBulkLength)?;
            let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
            if len > self.max_bulk_len {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let start = eol + 2;
            let end = start + len;
            if buf.len() < end + 2 {
                // Reserve the whole argument at once so a large value is not
                // copied again and again as it grows.
                buf.reserve(end + 2 - buf.len());
                self.partial = Some(partial);
                return Ok(Multibulk::Incomplete);
            }
            if buf.get(end..end + 2) != Some(b"\r\n") {
                return Err(ProtocolError::InvalidBulkLength);
            }
            partial.args.push(start..end);
            partial.pos = end + 2;
        }
        let raw = buf.split_to(partial.pos).freeze();
        Ok(Multibulk::Request(Request {
            raw,
            args: partial.args,
        }))
    }

    fn decode_inline(&mut self, buf: &mut BytesMut) -> Result<Inline, ProtocolError> {
        let Some(nl) = memchr::memchr(b'\n', buf) else {
            if buf.len() > MAX_INLINE_LEN {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Inline::Incomplete);
        };
        let line = buf.split_to(nl + 1);
        let mut line = line.get(..nl).unwrap_or_default();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
        if args.is_empty() {
            return Ok(Inline::Empty);
        }
        Ok(Inline::Request(Request::from_args(&args)))
    }
}

enum Multibulk {
    Incomplete,
    Empty,
    Request(Request),
}

enum Inline {
    Incomplete,
    Empty,
    Request(Request),
}

/// Index of the `\r` of the first `\r\n` at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let cr = at + memchr::memchr(b'\r', buf.get(at..)?)?;
        if buf.get(cr + 1) == Some(&b'\n') {
            return Some(cr);
        }
        at = cr + 1;
    }
}

/// Parses a signed decimal integer the way Redis's `string2ll` does: no
/// spaces, no leading `+`, no leading zeros.
pub(crate) fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if body.is_empty() || body.len() > 19 || (body.len() > 1 && body.first() == Some(&b'0')) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in body {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    if neg {
        if value == 0 {
            return None;
        }
        Some(-value)
    } else {
        Some(value)
    }
}

/// Splits an inline command line like Redis's `sdssplitargs`: words separated
/// by spaces, `"double quotes"` with C escapes (`\n`, `\xff`, ...) and
/// `'single quotes'`. `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let at = |i: usize| line.get(i).copied();
    loop {
        while at(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        if at(i).is_none() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = at(i);
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'x') => {
                        let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
                        if let (Some(h), Some(l)) = (hex(at(i + 2)), hex(at(i + 3))) {
                            current.push((h * 16 + l) as u8);
                            i += 3;
                        } else {
                            current.push(b'\\');
                        }
                    }
                    Some(b'\\') if at(i + 1).is_some() => {
                        i += 1;
                        current.push(match at(i).unwrap_or_default() {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        // A closing quote must be followed by a space or the end.
                        if at(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'\'') => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if at(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

#[cfg(test)]
mod tests;
