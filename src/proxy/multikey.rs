//! Multi-key commands across slots: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH.
//!
//! The request is split into one sub-request per slot (each key travels with
//! its `group` arguments, e.g. MSET's value), the parts run concurrently, and
//! the replies are merged as one server would have answered. Only commands
//! whose meaning survives the split are listed in the router; every other
//! multi-slot command gets CROSSSLOT.

use bytes::{Bytes, BytesMut};

use crate::cluster::key_slot;
use crate::resp::reply::reply_len;
use crate::resp::{Request, encode};

use super::Proxy;
use super::dispatch::{Target, dropped_reply, execute_after, is_final, send_to_slot};
use super::router::Merge;

/// One sub-request: its slot, the request itself (encoded, ready to send),
/// and for each key the index of that key among the request's keys (to put
/// MGET's values back in order).
pub struct Part {
    pub slot: u16,
    pub request: Bytes,
    pub key_indices: Vec<usize>,
}

/// Splits `req` per slot. Keys start at `first_key` and come in groups of
/// `group` arguments (a key and what travels with it, e.g. MSET's value).
///
/// Two passes: the first finds each key's part, the second encodes every
/// part into a buffer of its exact size (no growing vectors, no
/// intermediate argument lists).
pub fn split(req: &Request, first_key: usize, group: usize) -> Vec<Part> {
    let group = group.max(1);
    let groups = req.len().saturating_sub(first_key).div_ceil(group);
    let mut parts: Vec<Part> = Vec::new();
    for key_index in 0..groups {
        let key = req.arg(first_key + key_index * group).unwrap_or_default();
        let slot = key_slot(key);
        match parts.iter_mut().find(|p| p.slot == slot) {
            Some(part) => part.key_indices.push(key_index),
            None => parts.push(Part {
                slot,
                request: Bytes::new(),
                key_indices: vec![key_index],
            }),
        }
    }
    for part in &mut parts {
        let group_args = |k: &usize| {
            let start = first_key + k * group;
            (start..start + group).filter_map(|p| req.arg(p))
        };
        let args =
            || std::iter::once(req.name()).chain(part.key_indices.iter().flat_map(group_args));
        let count = args().count();
        // A bulk header is at most 1 + 20 digits + CRLF; its CRLF after.
        let size = 24 + args().map(|a| a.len() + 25).sum::<usize>();
        let mut out = BytesMut::with_capacity(size);
        encode::array_header(&mut out, count);
        for arg in args() {
            encode::bulk(&mut out, arg);
        }
        part.request = out.freeze();
    }
    parts
}

/// Runs a split command and merges the parts' replies. Every part is sent
/// at once on the fast path; a part whose reply needs handling (a redirect,
/// a failure) then goes through the full machinery on its own.
pub async fn execute_split(
    proxy: &Proxy,
    req: &Request,
    how: Merge,
    group: usize,
    first_key: usize,
    readonly: bool,
) -> Bytes {
    let parts = split(req, first_key, group);
    let sent: Vec<(Bytes, Option<_>)> = parts
        .iter()
        .map(|part| {
            let reply = send_to_slot(proxy, part.request.clone(), part.slot);
            (part.request.clone(), reply)
        })
        .collect();
    let mut replies = Vec::with_capacity(parts.len());
    for (part, (raw, reply)) in parts.iter().zip(sent) {
        let target = Target::Slot(part.slot);
        let first = match reply {
            Some(reply) => match reply.await {
                Ok(Ok(reply)) if is_final(&reply) => {
                    replies.push(reply);
                    continue;
                }
                Ok(result) => Some(result),
                Err(_) => Some(dropped_reply(proxy, &target)),
            },
            None => None,
        };
        replies.push(execute_after(proxy, raw, target, readonly, first).await);
    }
    merge(how, &parts, &replies)
}

/// Merges the parts' replies (in part order) into the reply one server
/// would have sent. An error in any part is the answer (the first one).
pub fn merge(how: Merge, parts: &[Part], replies: &[Bytes]) -> Bytes {
    if let Some(err) = replies.iter().find(|r| r.first() == Some(&b'-')) {
        return err.clone();
    }
    match how {
        Merge::Ok => Bytes::from_static(b"+OK\r\n"),
        Merge::Sum => {
            let mut sum: i64 = 0;
            for reply in replies {
                match parse_integer(reply) {
                    Some(n) => sum = sum.saturating_add(n),
                    None => return unexpected(reply),
                }
            }
            let mut out = BytesMut::with_capacity(24);
            encode::integer(&mut out, sum);
            out.freeze()
        }
        Merge::Values => {
            let total_keys: usize = parts.iter().map(|p| p.key_indices.len()).sum();
            let mut values: Vec<Bytes> = vec![Bytes::new(); total_keys];
            for (part, reply) in parts.iter().zip(replies) {
                let Some(elements) = array_elements(reply) else {
                    return unexpected(reply);
                };
                if elements.len() != part.key_indices.len() {
                    return unexpected(reply);
                }
                for (&i, value) in part.key_indices.iter().zip(elements) {
                    if let Some(v) = values.get_mut(i) {
                        *v = value;
                    }
                }
            }
            let mut out =
                BytesMut::with_capacity(16 + values.iter().map(Bytes::len).sum::<usize>());
            encode::array_header(&mut out, values.len());
            for v in &values {
                out.extend_from_slice(v);
            }
            out.freeze()
        }
    }
}

/// The value of an integer reply (`:42\r\n`).
pub(super) fn parse_integer(reply: &[u8]) -> Option<i64> {
    let digits = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The raw elements of an array reply, zero-copy.
pub(super) fn array_elements(reply: &Bytes) -> Option<Vec<Bytes>> {
    let header_end = reply.windows(2).position(|w| w == b"\r\n")?;
    let count: usize = std::str::from_utf8(reply.get(1..header_end)?)
        .ok()?
        .parse()
        .ok()?;
    if reply.first() != Some(&b'*') {
        return None;
    }
    let mut pos = header_end + 2;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = reply_len(reply.get(pos..)?).ok()??;
        out.push(reply.slice(pos..pos + len));
        pos += len;
    }
    Some(out)
}

fn unexpected(reply: &[u8]) -> Bytes {
    Bytes::from(format!(
        "-ERR unexpected reply from a master while merging a multi-key command: {}\r\n",
        String::from_utf8_lossy(reply.get(..reply.len().min(64)).unwrap_or_default()).trim_end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_groups_and_order() {
        let req = Request::from_args(&["MSET", "a", "1", "b", "2", "{a}x", "3"]);
        let parts = split(&req, 1, 2);
        assert_eq!(parts.len(), 2);
        let encoded = |args: &[&str]| Request::from_args(args).raw().clone();
        assert_eq!(parts[0].request, encoded(&["MSET", "a", "1", "{a}x", "3"]));
        assert_eq!(parts[0].key_indices, vec![0, 2]);
        assert_eq!(parts[1].request, encoded(&["MSET", "b", "2"]));
        assert_eq!(parts[1].key_indices, vec![1]);
    }

    #[test]
    fn merge_puts_values_back_in_order() {
        let req = Request::from_args(&["MGET", "a", "b", "{a}x"]);
        let parts = split(&req, 1, 1);
        let replies = [
            Bytes::from_static(b"*2\r\n$1\r\n1\r\n$1\r\n3\r\n"),
            Bytes::from_static(b"*1\r\n$-1\r\n"),
        ];
        assert_eq!(
            &merge(Merge::Values, &parts, &replies)[..],
            b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n"
        );
        let sums = [Bytes::from_static(b":2\r\n"), Bytes::from_static(b":1\r\n")];
        assert_eq!(&merge(Merge::Sum, &parts, &sums)[..], b":3\r\n");
        let err = [
            Bytes::from_static(b":2\r\n"),
            Bytes::from_static(b"-ERR x\r\n"),
        ];
        assert_eq!(&merge(Merge::Sum, &parts, &err)[..], b"-ERR x\r\n");
    }

    #[test]
    fn array_elements_are_sliced_raw() {
        let reply = Bytes::from_static(b"*3\r\n$1\r\na\r\n$-1\r\n$0\r\n\r\n");
        let els = array_elements(&reply).unwrap();
        assert_eq!(
            els,
            vec![
                Bytes::from_static(b"$1\r\na\r\n"),
                Bytes::from_static(b"$-1\r\n"),
                Bytes::from_static(b"$0\r\n\r\n")
            ]
        );
        assert_eq!(parse_integer(b":42\r\n"), Some(42));
    }
}
