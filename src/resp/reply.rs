//! Finding where a backend reply ends, without building it.
//!
//! Replies flow back to clients as raw bytes, so the backend link only needs
//! each reply's length. The scanner is iterative (a counter of elements still
//! owed per nesting level), so a hostile or broken server cannot overflow the
//! stack, and it understands every RESP2 and RESP3 type.

use smallvec::SmallVec;

use super::request::parse_int;
use thiserror::Error;

/// Deepest nesting accepted in a reply. Real replies nest a handful of levels
/// (COMMAND DOCS is the deepest at about seven).
pub const MAX_REPLY_DEPTH: usize = 128;

/// A backend sent bytes that are not RESP. The link is closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    #[error("unknown reply type byte {0:#04x}")]
    UnknownType(u8),
    #[error("invalid length in reply")]
    InvalidLength,
    #[error("reply nested deeper than {MAX_REPLY_DEPTH} levels")]
    TooDeep,
    #[error("bulk reply not terminated by CRLF")]
    Unterminated,
}

/// How a reply's header line is followed.
enum Shape {
    /// The header line is the whole reply.
    Line,
    /// A blob of this many bytes plus CRLF follows.
    Blob(usize),
    /// This many nested replies follow.
    Aggregate(usize),
}

/// Returns the length in bytes of the first complete reply in `buf`, or
/// `None` if it has not fully arrived.
///
/// # Errors
/// [`ReplyError`] when `buf` does not start with a valid reply.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    // owed[d] = replies still expected at depth d (depth 0 expects one).
    // Most replies are flat or shallow: the stack lives inline until a
    // reply nests deeper than a few levels.
    let mut owed: SmallVec<[usize; 8]> = SmallVec::new();
    owed.push(1);
    let mut depth = 0usize;
    let mut pos = 0usize;
    loop {
        let Some((shape, next)) = header(buf, pos)? else {
            return Ok(None);
        };
        pos = next;
        match shape {
            Shape::Line => {}
            Shape::Blob(len) => {
                let end = pos.checked_add(len).ok_or(ReplyError::InvalidLength)?;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if buf.get(end..end + 2) != Some(b"\r\n") {
                    return Err(ReplyError::Unterminated);
                }
                pos = end + 2;
            }
            Shape::Aggregate(n) if n > 0 => {
                depth += 1;
                if depth > MAX_REPLY_DEPTH {
                    return Err(ReplyError::TooDeep);
                }
                owed.truncate(depth);
                owed.push(n);
                continue;
            }
            Shape::Aggregate(_) => {}
        }
        // One reply at the current depth is complete; close finished levels.
        loop {
            let slot = owed.get_mut(depth).ok_or(ReplyError::TooDeep)?;
            *slot -= 1;
            if *slot > 0 {
                break;
            }
            if depth == 0 {
                return Ok(Some(pos));
            }
            depth -= 1;
        }
    }
}

/// Parses the header line at `pos`: its shape and the offset after its CRLF.
fn header(buf: &[u8], pos: usize) -> Result<Option<(Shape, usize)>, ReplyError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(rest) = buf.get(pos + 1..) else {
        return Ok(None);
    };
    let Some(eol) = memchr_cr_lf(rest) else {
        return Ok(None);
    };
    let line = rest.get(..eol).unwrap_or_default();
    let next = pos + 1 + eol + 2;
    let length = || -> Result<Option<usize>, ReplyError> {
        match parse_int(line) {
            Some(-1) => Ok(None),
            Some(n) if n >= 0 => Ok(Some(n as usize)),
            _ => Err(ReplyError::InvalidLength),
        }
    };
    let shape = match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Shape::Line,
        b'$' | b'!' | b'=' => match length()? {
            Some(n) => Shape::Blob(n),
            None => Shape::Line,
        },
        b'*' | b'~' | b'>' => match length()? {
            Some(n) => Shape::Aggregate(n),
            None => Shape::Line,
        },
        // A map or attribute of n pairs holds 2n replies; an attribute is
        // followed by the reply it annotates, hence one more.
        b'%' => Shape::Aggregate(length()?.ok_or(ReplyError::InvalidLength)? * 2),
        b'|' => Shape::Aggregate(length()?.ok_or(ReplyError::InvalidLength)? * 2 + 1),
        other => return Err(ReplyError::UnknownType(other)),
    };
    Ok(Some((shape, next)))
}

fn memchr_cr_lf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let cr = memchr::memchr(b'\r', buf.get(from..)?)? + from;
        match buf.get(cr + 1) {
            Some(b'\n') => return Some(cr),
            Some(_) => from = cr + 1,
            None => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(reply: &[u8]) {
        assert_eq!(reply_len(reply), Ok(Some(reply.len())), "{reply:?}");
        for cut in 0..reply.len() {
            assert_eq!(reply_len(&reply[..cut]), Ok(None), "cut {cut} of {reply:?}");
        }
        let mut two = reply.to_vec();
        two.extend_from_slice(b"+OK\r\n");
        assert_eq!(reply_len(&two), Ok(Some(reply.len())));
    }

    #[test]
    fn resp2_replies() {
        complete(b"+OK\r\n");
        complete(b"-ERR unknown command 'x'\r\n");
        complete(b":-42\r\n");
        complete(b"$5\r\nhello\r\n");
        complete(b"$0\r\n\r\n");
        complete(b"$-1\r\n");
        complete(b"*-1\r\n");
        complete(b"*0\r\n");
        complete(b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n");
        complete(b"$4\r\na\r\nb\r\n");
    }

    #[test]
    fn resp3_replies() {
        complete(b"_\r\n");
        complete(b",3.14\r\n");
        complete(b"#t\r\n");
        complete(b"(3492890328409238509324850943850943825024385\r\n");
        complete(b"!21\r\nSYNTAX invalid syntax\r\n");
        complete(b"=15\r\ntxt:Some string\r\n");
        complete(b"%2\r\n+first\r\n:1\r\n+second\r\n*1\r\n:2\r\n");
        complete(b"~2\r\n+a\r\n+b\r\n");
        complete(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n");
        complete(b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1\r\n*1\r\n:1\r\n");
        complete(b"%0\r\n");
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert_eq!(reply_len(b"?x\r\n"), Err(ReplyError::UnknownType(b'?')));
        assert_eq!(reply_len(b"$abc\r\n"), Err(ReplyError::InvalidLength));
        assert_eq!(reply_len(b"$1\r\nabc\r\n"), Err(ReplyError::Unterminated));
        let deep = b"*1\r\n".repeat(MAX_REPLY_DEPTH + 1);
        assert_eq!(reply_len(&deep), Err(ReplyError::TooDeep));
    }
}
