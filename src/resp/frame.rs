//! A parsed reply, for the few replies the proxy must look inside:
//! CLUSTER NODES during a topology refresh, and the parts of a split
//! multi-key command that it merges.

use bytes::Bytes;

use super::reply::{MAX_REPLY_DEPTH, ReplyError, reply_len};
use super::request::parse_int;

/// One RESP2 or RESP3 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(Bytes),
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    /// RESP2 `$-1` / `*-1` and RESP3 `_`.
    Null,
    Array(Vec<Frame>),
    /// RESP3 double, kept as its text.
    Double(Bytes),
    Boolean(bool),
    /// RESP3 big number, kept as its text.
    BigNumber(Bytes),
    /// RESP3 verbatim string: format (e.g. `txt`) and text.
    Verbatim(Bytes, Bytes),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Push(Vec<Frame>),
}

impl Frame {
    /// Parses the first complete reply in `buf`; `None` if it is incomplete.
    ///
    /// # Errors
    /// [`ReplyError`] for bytes that are not RESP. RESP3 attributes are
    /// skipped, as clients do, and the annotated reply is returned.
    pub fn parse(buf: &Bytes) -> Result<Option<(Frame, usize)>, ReplyError> {
        let Some(len) = reply_len(buf)? else {
            return Ok(None);
        };
        let mut pos = 0;
        let frame = parse_at(buf, &mut pos, 0)?;
        debug_assert_eq!(pos, len);
        Ok(Some((frame, len)))
    }

    /// The bytes of a bulk, simple string or verbatim string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Bulk(b) | Frame::Simple(b) | Frame::Verbatim(_, b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Frame]> {
        match self {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }
}

fn line(buf: &Bytes, pos: &mut usize) -> Result<Bytes, ReplyError> {
    let start = *pos + 1;
    let rest = buf.get(start..).ok_or(ReplyError::InvalidLength)?;
    let eol = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(ReplyError::InvalidLength)?;
    *pos = start + eol + 2;
    Ok(buf.slice(start..start + eol))
}

fn length(text: &[u8]) -> Result<Option<usize>, ReplyError> {
    match parse_int(text) {
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        _ => Err(ReplyError::InvalidLength),
    }
}

fn blob(buf: &Bytes, pos: &mut usize, len: usize) -> Result<Bytes, ReplyError> {
    let end = *pos + len;
    if buf.get(end..end + 2) != Some(b"\r\n") {
        return Err(ReplyError::Unterminated);
    }
    let data = buf.slice(*pos..end);
    *pos = end + 2;
    Ok(data)
}

fn elements(
    buf: &Bytes,
    pos: &mut usize,
    n: usize,
    depth: usize,
) -> Result<Vec<Frame>, ReplyError> {
    let mut items = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        items.push(parse_at(buf, pos, depth + 1)?);
    }
    Ok(items)
}

fn parse_at(buf: &Bytes, pos: &mut usize, depth: usize) -> Result<Frame, ReplyError> {
    if depth > MAX_REPLY_DEPTH {
        return Err(ReplyError::TooDeep);
    }
    let kind = *buf.get(*pos).ok_or(ReplyError::InvalidLength)?;
    let text = line(buf, pos)?;
    Ok(match kind {
        b'+' => Frame::Simple(text),
        b'-' => Frame::Error(text),
        b':' => Frame::Integer(parse_int(&text).ok_or(ReplyError::InvalidLength)?),
        b'_' => Frame::Null,
        b',' => Frame::Double(text),
        b'#' => Frame::Boolean(&text[..] == b"t"),
        b'(' => Frame::BigNumber(text),
        b'$' => match length(&text)? {
            Some(n) => Frame::Bulk(blob(buf, pos, n)?),
            None => Frame::Null,
        },
        b'!' => Frame::Error(blob(
            buf,
            pos,
            length(&text)?.ok_or(ReplyError::InvalidLength)?,
        )?),
        b'=' => {
            let data = blob(buf, pos, length(&text)?.ok_or(ReplyError::InvalidLength)?)?;
            if data.get(3) == Some(&b':') {
                Frame::Verbatim(data.slice(..3), data.slice(4..))
            } else {
                Frame::Verbatim(Bytes::new(), data)
            }
        }
        b'*' => match length(&text)? {
            Some(n) => Frame::Array(elements(buf, pos, n, depth)?),
            None => Frame::Null,
        },
        b'~' => Frame::Set(elements(buf, pos, length(&text)?.unwrap_or(0), depth)?),
        b'>' => Frame::Push(elements(buf, pos, length(&text)?.unwrap_or(0), depth)?),
        b'%' => {
            let n = length(&text)?.unwrap_or(0);
            let mut flat = elements(buf, pos, n * 2, depth)?.into_iter();
            let mut pairs = Vec::with_capacity(n);
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
        b'|' => {
            let n = length(&text)?.unwrap_or(0);
            elements(buf, pos, n * 2, depth)?;
            parse_at(buf, pos, depth)?
        }
        other => return Err(ReplyError::UnknownType(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Frame {
        let buf = Bytes::copy_from_slice(s);
        let (frame, len) = Frame::parse(&buf).unwrap().unwrap();
        assert_eq!(len, s.len());
        frame
    }

    #[test]
    fn parses_nested_replies() {
        assert_eq!(
            parse(b"*3\r\n$1\r\na\r\n$-1\r\n:5\r\n"),
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"a")),
                Frame::Null,
                Frame::Integer(5)
            ])
        );
        assert_eq!(
            parse(b"%1\r\n+k\r\n#f\r\n"),
            Frame::Map(vec![(
                Frame::Simple(Bytes::from_static(b"k")),
                Frame::Boolean(false)
            )])
        );
        assert_eq!(parse(b"|1\r\n+a\r\n+b\r\n:1\r\n"), Frame::Integer(1));
        assert_eq!(
            parse(b"=8\r\ntxt:abcd\r\n"),
            Frame::Verbatim(Bytes::from_static(b"txt"), Bytes::from_static(b"abcd"))
        );
    }

    #[test]
    fn incomplete_is_none() {
        assert_eq!(Frame::parse(&Bytes::from_static(b"*2\r\n:1\r\n")), Ok(None));
    }
}
