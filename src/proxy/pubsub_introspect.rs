//! PUBSUB CHANNELS, NUMSUB, SHARDCHANNELS and SHARDNUMSUB through the
//! proxy: each master knows only its own subscribers, so every master is
//! asked and the answers merged as one server would give them (NUMPAT is a
//! plain sum, routed as such).

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};

use crate::resp::{Frame, Request, encode};

use super::Proxy;
use super::dispatch::ask_every_master;

/// Asks every master and merges: a union of names for the CHANNELS
/// subcommands, per-channel sums for the NUMSUB ones.
pub async fn introspect(proxy: &Proxy, req: &Request) -> Bytes {
    let replies = match ask_every_master(proxy, req.raw().clone(), true).await {
        Ok(replies) => replies,
        Err(reply) => return reply,
    };
    let mut arrays = Vec::with_capacity(replies.len());
    for reply in &replies {
        match Frame::parse(reply) {
            Ok(Some((Frame::Array(items), _))) => arrays.push(items),
            _ => return reply.clone(),
        }
    }
    let sub = req.arg(1).unwrap_or_default();
    if sub.eq_ignore_ascii_case(b"numsub") || sub.eq_ignore_ascii_case(b"shardnumsub") {
        sum_counts(&arrays)
    } else {
        union(&arrays)
    }
}

/// The names in any answer, each once, in the order first seen.
fn union(arrays: &[Vec<Frame>]) -> Bytes {
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for name in arrays.iter().flatten().filter_map(Frame::as_bytes) {
        if seen.insert(name.clone()) {
            names.push(name.clone());
        }
    }
    let mut out = BytesMut::new();
    encode::array_header(&mut out, names.len());
    for name in names {
        encode::bulk(&mut out, &name);
    }
    out.freeze()
}

/// `[channel, count, ...]` answers, the counts summed position by position
/// (every master lists the asked channels in the same order).
fn sum_counts(arrays: &[Vec<Frame>]) -> Bytes {
    let Some(first) = arrays.first() else {
        return Bytes::from_static(b"*0\r\n");
    };
    let mut out = BytesMut::new();
    encode::array_header(&mut out, first.len());
    for (i, item) in first.iter().enumerate() {
        if i % 2 == 0 {
            encode::bulk(&mut out, item.as_bytes().map_or(&b""[..], |b| &b[..]));
        } else {
            let sum = arrays
                .iter()
                .filter_map(|a| match a.get(i) {
                    Some(Frame::Integer(n)) => Some(*n),
                    _ => None,
                })
                .fold(0i64, i64::saturating_add);
            encode::integer(&mut out, sum);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<Frame> {
        match Frame::parse(&Bytes::from(s.to_string())) {
            Ok(Some((Frame::Array(items), _))) => items,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn channels_are_merged_once_each() {
        let a = parse("*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        let b = parse("*2\r\n$1\r\nb\r\n$1\r\nc\r\n");
        assert_eq!(
            union(&[a, b]),
            Bytes::from_static(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
        );
    }

    #[test]
    fn counts_are_summed_per_channel() {
        let a = parse("*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:0\r\n");
        let b = parse("*4\r\n$1\r\na\r\n:2\r\n$1\r\nb\r\n:5\r\n");
        assert_eq!(
            sum_counts(&[a, b]),
            Bytes::from_static(b"*4\r\n$1\r\na\r\n:3\r\n$1\r\nb\r\n:5\r\n")
        );
    }
}
