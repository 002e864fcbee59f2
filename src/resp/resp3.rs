//! RESP3 replies made from RESP2 ones.
//!
//! The proxy talks RESP2 to every backend, on links shared by all clients.
//! A client that said `HELLO 3` gets its replies in RESP3 all the same: the
//! RESP2 reply is rewritten with the [`Shape`] Redis gives that command in
//! RESP3 (a map for HGETALL, a set for SMEMBERS, doubles for ZSCORE...).
//! Nulls become `_` whatever the shape. Which command has which shape is
//! the command table's business (`command::reply_shape`).

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::reply_len;
use super::{Frame, encode};

/// How a RESP2 reply maps onto its RESP3 form. A shape that does not fit
/// the reply it meets (an error, a null, an integer where an array was
/// expected) leaves it as it is.
#[derive(Debug)]
pub enum Shape {
    /// The same types as in RESP2 (nulls aside).
    Same,
    /// A flat array of key/value pairs becomes a map.
    Map,
    /// A map whose values under the named keys have shapes of their own.
    MapWith(&'static [(&'static str, Shape)]),
    /// A map whose every value has this shape.
    MapOf(&'static Shape),
    /// An array of `[key, value]` arrays becomes a map (XREAD).
    MapFromPairs,
    /// An array becomes a set.
    Set,
    /// An array becomes a set whose every element has this shape.
    SetOf(&'static Shape),
    /// A bulk string holding a number becomes a double.
    Double,
    /// An array whose every element has this shape.
    ArrayOf(&'static Shape),
    /// A flat array `[a1, b1, a2, b2...]` becomes `[[a1, b1], [a2, b2]...]`,
    /// each `b` with this shape (ZRANGE ... WITHSCORES).
    Pairs(&'static Shape),
    /// An array whose i-th element has the i-th shape.
    Tuple(&'static [Shape]),
    /// An array whose last element has this shape (GEOSEARCH WITHCOORD).
    Last(&'static Shape),
    /// A bulk string becomes a verbatim text string (INFO, CLIENT LIST).
    Verbatim,
    /// An array becomes an out-of-band push (pub/sub messages).
    Push,
}

/// Appends `reply` (one complete RESP2 reply) to `out` in RESP3, as
/// `shape` says.
pub fn upgrade(reply: &Bytes, shape: &Shape, out: &mut BytesMut) {
    if fast_path(reply, shape, out).is_some() {
        return;
    }
    match Frame::parse(reply) {
        Ok(Some((frame, _))) => write_frame(&convert(frame, shape), out),
        // Not one parseable reply: it leaves as it came.
        _ => out.extend_from_slice(reply),
    }
}

/// Appends a transaction's EXEC reply, each queued command's reply with
/// its own shape.
pub fn upgrade_exec(reply: &Bytes, shapes: &[&'static Shape], out: &mut BytesMut) {
    match Frame::parse(reply) {
        Ok(Some((Frame::Array(items), _))) => {
            let items = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, shapes.get(i).copied().unwrap_or(&Shape::Same)))
                .collect();
            write_frame(&Frame::Array(items), out);
        }
        _ => upgrade(reply, &Shape::Same, out),
    }
}

/// Appends every complete reply in `replies` (one or more, back to back)
/// with the same shape: pub/sub confirmations and messages.
pub fn upgrade_each(replies: &Bytes, shape: &Shape, out: &mut BytesMut) {
    let mut rest = replies.clone();
    while !rest.is_empty() {
        match reply_len(&rest) {
            Ok(Some(len)) => {
                upgrade(&rest.split_to(len), shape, out);
            }
            _ => {
                out.extend_from_slice(&rest);
                return;
            }
        }
    }
}

/// The replies that need no parsing: those with no nested value, and
/// arrays whose shape is [`Shape::Same`] or [`Shape::Push`] (only the type
/// byte changes) and that hold no null. `None`
/// when the reply must be parsed.
fn fast_path(reply: &Bytes, shape: &Shape, out: &mut BytesMut) -> Option<()> {
    match reply.first()? {
        b'+' | b'-' | b':' => out.extend_from_slice(reply),
        b'$' if reply.starts_with(b"$-1\r\n") => out.extend_from_slice(b"_\r\n"),
        b'*' if reply.starts_with(b"*-1\r\n") => out.extend_from_slice(b"_\r\n"),
        b'$' => match shape {
            Shape::Double | Shape::Verbatim => return None,
            _ => out.extend_from_slice(reply),
        },
        b'*' if matches!(shape, Shape::Same) && !has_null(reply) => out.extend_from_slice(reply),
        // A pub/sub message: the same elements under a push header.
        b'*' if matches!(shape, Shape::Push) && !has_null(reply) => {
            out.extend_from_slice(b">");
            out.extend_from_slice(&reply[1..]);
        }
        _ => return None,
    }
    Some(())
}

/// True when a null might be inside (a false positive, from the same bytes
/// inside a bulk string, only costs a parse).
fn has_null(reply: &[u8]) -> bool {
    reply.windows(5).any(|w| w == b"$-1\r\n" || w == b"*-1\r\n")
}

fn convert(frame: Frame, shape: &Shape) -> Frame {
    match (shape, frame) {
        (Shape::Same, frame) => frame,
        (Shape::Map, Frame::Array(items)) if items.len() % 2 == 0 => Frame::Map(pairs(items)),
        (Shape::MapWith(fields), Frame::Array(items)) if items.len() % 2 == 0 => Frame::Map(
            pairs(items)
                .into_iter()
                .map(|(k, v)| {
                    let shape = field_shape(fields, &k);
                    (k, convert(v, shape))
                })
                .collect(),
        ),
        (Shape::MapOf(inner), Frame::Array(items)) if items.len() % 2 == 0 => Frame::Map(
            pairs(items)
                .into_iter()
                .map(|(k, v)| (k, convert(v, inner)))
                .collect(),
        ),
        (Shape::MapFromPairs, Frame::Array(items))
            if items
                .iter()
                .all(|i| matches!(i, Frame::Array(p) if p.len() == 2)) =>
        {
            Frame::Map(
                items
                    .into_iter()
                    .filter_map(|item| match item {
                        Frame::Array(p) => {
                            let mut p = p.into_iter();
                            Some((p.next()?, p.next()?))
                        }
                        _ => None,
                    })
                    .collect(),
            )
        }
        (Shape::Set, Frame::Array(items)) => Frame::Set(items),
        (Shape::SetOf(inner), Frame::Array(items)) => {
            Frame::Set(items.into_iter().map(|i| convert(i, inner)).collect())
        }
        (Shape::Double, Frame::Bulk(text)) => Frame::Double(text),
        (Shape::ArrayOf(inner), Frame::Array(items)) => {
            Frame::Array(items.into_iter().map(|i| convert(i, inner)).collect())
        }
        (Shape::Pairs(second), Frame::Array(items)) if items.len() % 2 == 0 => Frame::Array(
            pairs(items)
                .into_iter()
                .map(|(a, b)| Frame::Array(vec![a, convert(b, second)]))
                .collect(),
        ),
        (Shape::Tuple(shapes), Frame::Array(items)) => Frame::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, shapes.get(i).unwrap_or(&Shape::Same)))
                .collect(),
        ),
        (Shape::Last(last), Frame::Array(mut items)) => {
            if let Some(item) = items.pop() {
                items.push(convert(item, last));
            }
            Frame::Array(items)
        }
        (Shape::Verbatim, Frame::Bulk(text)) => Frame::Verbatim(Bytes::from_static(b"txt"), text),
        (Shape::Push, Frame::Array(items)) => Frame::Push(items),
        (_, frame) => frame,
    }
}

fn pairs(items: Vec<Frame>) -> Vec<(Frame, Frame)> {
    let mut flat = items.into_iter();
    let mut out = Vec::with_capacity(flat.len() / 2);
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        out.push((k, v));
    }
    out
}

fn field_shape(fields: &'static [(&'static str, Shape)], key: &Frame) -> &'static Shape {
    let Some(name) = key.as_bytes() else {
        return &Shape::Same;
    };
    fields
        .iter()
        .find(|(field, _)| field.as_bytes().eq_ignore_ascii_case(name))
        .map_or(&Shape::Same, |(_, shape)| shape)
}

/// Writes `frame` in RESP3.
pub fn write_frame(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Simple(text) => line(out, b'+', text),
        Frame::Error(text) => line(out, b'-', text),
        Frame::Integer(n) => encode::integer(out, *n),
        Frame::Bulk(data) => encode::bulk(out, data),
        Frame::Null => out.put_slice(b"_\r\n"),
        Frame::Double(text) => line(out, b',', text),
        Frame::Boolean(b) => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::BigNumber(text) => line(out, b'(', text),
        Frame::Verbatim(format, text) => {
            encode::header(out, b'=', format.len() + 1 + text.len());
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Array(items) => aggregate(out, b'*', items),
        Frame::Set(items) => aggregate(out, b'~', items),
        Frame::Push(items) => aggregate(out, b'>', items),
        Frame::Map(pairs) => {
            encode::header(out, b'%', pairs.len());
            for (k, v) in pairs {
                write_frame(k, out);
                write_frame(v, out);
            }
        }
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, kind: u8, items: &[Frame]) {
    encode::header(out, kind, items.len());
    for item in items {
        write_frame(item, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(reply: &str, shape: &Shape) -> String {
        let mut out = BytesMut::new();
        upgrade(&Bytes::copy_from_slice(reply.as_bytes()), shape, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn nulls_become_resp3_nulls_at_any_depth() {
        assert_eq!(up("$-1\r\n", &Shape::Same), "_\r\n");
        assert_eq!(up("*-1\r\n", &Shape::Map), "_\r\n");
        assert_eq!(
            up("*2\r\n$1\r\na\r\n$-1\r\n", &Shape::Same),
            "*2\r\n$1\r\na\r\n_\r\n"
        );
        // No null: the bytes are copied as they are.
        assert_eq!(up("*1\r\n$1\r\na\r\n", &Shape::Same), "*1\r\n$1\r\na\r\n");
    }

    #[test]
    fn maps_sets_doubles_and_pairs() {
        assert_eq!(
            up(
                "*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n",
                &Shape::Map
            ),
            "%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n"
        );
        assert_eq!(up("*1\r\n$1\r\na\r\n", &Shape::Set), "~1\r\n$1\r\na\r\n");
        assert_eq!(up("$3\r\n1.5\r\n", &Shape::Double), ",1.5\r\n");
        assert_eq!(
            up(
                "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\ninf\r\n",
                &Shape::Pairs(&Shape::Double)
            ),
            "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,inf\r\n"
        );
        assert_eq!(
            up("*1\r\n*2\r\n$1\r\ns\r\n*0\r\n", &Shape::MapFromPairs),
            "%1\r\n$1\r\ns\r\n*0\r\n"
        );
        assert_eq!(up("$2\r\nhi\r\n", &Shape::Verbatim), "=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn nested_field_shapes_apply_by_key() {
        static SHAPE: Shape = Shape::MapWith(&[("flags", Shape::Set)]);
        assert_eq!(
            up(
                "*4\r\n$5\r\nflags\r\n*1\r\n$1\r\nx\r\n$4\r\nname\r\n*0\r\n",
                &SHAPE
            ),
            "%2\r\n$5\r\nflags\r\n~1\r\n$1\r\nx\r\n$4\r\nname\r\n*0\r\n"
        );
    }

    #[test]
    fn a_shape_that_does_not_fit_leaves_the_reply_alone() {
        assert_eq!(up("-ERR x\r\n", &Shape::Map), "-ERR x\r\n");
        assert_eq!(up(":3\r\n", &Shape::Double), ":3\r\n");
        // An odd number of elements is no map.
        assert_eq!(up("*1\r\n$1\r\na\r\n", &Shape::Map), "*1\r\n$1\r\na\r\n");
    }

    #[test]
    fn each_reply_of_a_batch_is_upgraded() {
        let mut out = BytesMut::new();
        upgrade_each(
            &Bytes::from_static(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"),
            &Shape::Push,
            &mut out,
        );
        assert_eq!(
            &out[..],
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        );
    }
}
