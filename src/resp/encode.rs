//! Writing RESP: the few shapes the proxy produces itself.

use bytes::{BufMut, BytesMut};

fn put_decimal(out: &mut BytesMut, n: i64) {
    let mut buf = itoa_buf();
    out.put_slice(format_i64(&mut buf, n));
}

type ItoaBuf = [u8; 20];

fn itoa_buf() -> ItoaBuf {
    [0; 20]
}

/// Formats `n` into `buf` without allocating and returns the digits.
fn format_i64(buf: &mut ItoaBuf, n: i64) -> &[u8] {
    let mut pos = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        pos -= 1;
        if let Some(slot) = buf.get_mut(pos) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        pos -= 1;
        if let Some(slot) = buf.get_mut(pos) {
            *slot = b'-';
        }
    }
    buf.get(pos..).unwrap_or_default()
}

/// `<kind><n>\r\n`: the header of an aggregate or a blob of any RESP
/// type (`*`, `$`, and RESP3's `%`, `~`, `>`, `=`).
pub fn header(out: &mut BytesMut, kind: u8, n: usize) {
    out.put_u8(kind);
    put_decimal(out, n as i64);
    out.put_slice(b"\r\n");
}

/// `*<n>\r\n`
pub fn array_header(out: &mut BytesMut, n: usize) {
    header(out, b'*', n);
}

/// `$<n>\r\n`
pub fn bulk_header(out: &mut BytesMut, n: usize) {
    header(out, b'$', n);
}

/// `$<len>\r\n<data>\r\n`
pub fn bulk(out: &mut BytesMut, data: &[u8]) {
    bulk_header(out, data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `$-1\r\n`
pub fn null_bulk(out: &mut BytesMut) {
    out.put_slice(b"$-1\r\n");
}

/// `:<n>\r\n`
pub fn integer(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    put_decimal(out, n);
    out.put_slice(b"\r\n");
}

/// `+<text>\r\n`; `text` must not contain CR or LF.
pub fn simple(out: &mut BytesMut, text: &str) {
    out.put_u8(b'+');
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
}

/// `-<text>\r\n`; line breaks in `text` become spaces, as Redis does, so an
/// error can never break the framing.
pub fn error(out: &mut BytesMut, text: &str) {
    out.put_u8(b'-');
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_format_like_redis() {
        for n in [0i64, 7, -7, 10, 12345, i64::MAX, i64::MIN] {
            let mut out = BytesMut::new();
            integer(&mut out, n);
            assert_eq!(out, format!(":{n}\r\n").as_bytes());
        }
    }

    #[test]
    fn errors_cannot_break_framing() {
        let mut out = BytesMut::new();
        error(&mut out, "ERR a\r\nb");
        assert_eq!(&out[..], b"-ERR a  b\r\n");
    }
}
