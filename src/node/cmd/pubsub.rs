//! Pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH
//! and PUBSUB, with Redis's RESP2 replies.
//!
//! PUBLISH delivers to this node's subscribers and hands the message to the
//! cluster bus for every other node (SPUBLISH: for the nodes of the
//! channel's slot); its reply counts local receivers only, as in Redis
//! Cluster.

use bytes::Bytes;

use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome};
use crate::cluster::key_slot;
use crate::node::bus::Outbound;
use crate::node::pubsub::Kind;
use crate::resp::encode;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("subscribe", subscribe),
    ("unsubscribe", unsubscribe),
    ("psubscribe", psubscribe),
    ("punsubscribe", punsubscribe),
    ("ssubscribe", ssubscribe),
    ("sunsubscribe", sunsubscribe),
    ("publish", publish),
    ("spublish", spublish),
    ("pubsub|channels", channels),
    ("pubsub|shardchannels", shardchannels),
    ("pubsub|numsub", numsub),
    ("pubsub|shardnumsub", shardnumsub),
    ("pubsub|numpat", numpat),
];

/// The count a (un)subscribe confirmation carries: channels and patterns
/// together, or shard channels alone.
fn reply_count(ctx: &Ctx<'_>, kind: Kind) -> usize {
    let (id, ps) = (ctx.client.id, &ctx.node.pubsub);
    match kind {
        Kind::Shard => ps.count_of(id, Kind::Shard),
        _ => ps.count_of(id, Kind::Channel) + ps.count_of(id, Kind::Pattern),
    }
}

/// `*3 <word> <channel or nil> :<count>`
fn confirm(ctx: &mut Ctx<'_>, word: &[u8], channel: Option<&[u8]>, kind: Kind) {
    let count = reply_count(ctx, kind);
    ctx.array_header(3);
    encode::bulk(ctx.out, word);
    match channel {
        Some(channel) => encode::bulk(ctx.out, channel),
        None => encode::null_bulk(ctx.out),
    }
    encode::integer(ctx.out, count as i64);
}

fn sub(ctx: &mut Ctx<'_>, args: &Args<'_>, kind: Kind, word: &[u8]) -> CmdResult {
    let handle = std::sync::Arc::clone(&ctx.client.handle);
    for i in 1..args.len() {
        ctx.node.pubsub.subscribe(&handle, kind, args.bytes(i));
        confirm(ctx, word, Some(args.get(i)), kind);
    }
    ctx.client.subscriptions = ctx.node.pubsub.total_of(ctx.client.id);
    Ok(Outcome::Done)
}

fn unsub(ctx: &mut Ctx<'_>, args: &Args<'_>, kind: Kind, word: &[u8]) -> CmdResult {
    let id = ctx.client.id;
    let channels: Vec<Bytes> = if args.len() > 1 {
        (1..args.len()).map(|i| args.bytes(i)).collect()
    } else {
        ctx.node.pubsub.subscriptions_of(id, kind)
    };
    if channels.is_empty() {
        confirm(ctx, word, None, kind);
    }
    for channel in channels {
        ctx.node.pubsub.unsubscribe(id, kind, &channel);
        confirm(ctx, word, Some(&channel), kind);
    }
    ctx.client.subscriptions = ctx.node.pubsub.total_of(id);
    Ok(Outcome::Done)
}

fn subscribe(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    sub(ctx, args, Kind::Channel, b"subscribe")
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    unsub(ctx, args, Kind::Channel, b"unsubscribe")
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    sub(ctx, args, Kind::Pattern, b"psubscribe")
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    unsub(ctx, args, Kind::Pattern, b"punsubscribe")
}

fn ssubscribe(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    sub(ctx, args, Kind::Shard, b"ssubscribe")
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    unsub(ctx, args, Kind::Shard, b"sunsubscribe")
}

fn publish(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let receivers = ctx
        .node
        .pubsub
        .publish_local(args.get(1), args.get(2), false);
    ctx.shared.bus.send(Outbound::Publish {
        channel: args.bytes(1),
        message: args.bytes(2),
        shard: None,
    });
    ctx.int(receivers as i64)
}

fn spublish(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let receivers = ctx
        .node
        .pubsub
        .publish_local(args.get(1), args.get(2), true);
    ctx.shared.bus.send(Outbound::Publish {
        channel: args.bytes(1),
        message: args.bytes(2),
        shard: Some(key_slot(args.get(1))),
    });
    ctx.int(receivers as i64)
}

/// PUBSUB CHANNELS / SHARDCHANNELS [pattern]
fn active(ctx: &mut Ctx<'_>, args: &Args<'_>, kind: Kind) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::new(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            args.lossy(1)
        )));
    }
    let pattern = (args.len() == 3).then(|| args.get(2));
    let channels = ctx.node.pubsub.active(kind, pattern);
    ctx.bulk_array(channels.iter().map(|c| &c[..]))
}

fn channels(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    active(ctx, args, Kind::Channel)
}

fn shardchannels(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    active(ctx, args, Kind::Shard)
}

/// PUBSUB NUMSUB / SHARDNUMSUB [channel ...]: channel, count pairs.
fn counts(ctx: &mut Ctx<'_>, args: &Args<'_>, kind: Kind) -> CmdResult {
    ctx.array_header((args.len() - 2) * 2);
    for channel in args.rest(2) {
        let n = ctx.node.pubsub.subscriber_count(kind, channel);
        encode::bulk(ctx.out, channel);
        encode::integer(ctx.out, n as i64);
    }
    Ok(Outcome::Done)
}

fn numsub(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    counts(ctx, args, Kind::Channel)
}

fn shardnumsub(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    counts(ctx, args, Kind::Shard)
}

fn numpat(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let n = ctx.node.pubsub.pattern_count();
    ctx.int(n as i64)
}

#[cfg(test)]
mod tests {
    use crate::cluster::key_slot;
    use crate::node::bus::Outbound;
    use crate::node::client::ClientState;
    use crate::node::cmd::tx::harness::{node, run};

    #[test]
    fn publish_hands_the_message_to_the_bus() {
        let (shared, mut outbox) = node();
        let mut c = ClientState::new(1, None);
        assert_eq!(run(&shared, &mut c, 0, &["PUBLISH", "ch", "hi"]), ":0\r\n");
        match outbox.try_recv() {
            Ok(Outbound::Publish {
                channel,
                message,
                shard,
            }) => {
                assert_eq!(
                    (&channel[..], &message[..], shard),
                    (&b"ch"[..], &b"hi"[..], None)
                );
            }
            other => panic!("{other:?}"),
        }
        run(&shared, &mut c, 0, &["SPUBLISH", "{s}ch", "x"]);
        match outbox.try_recv() {
            Ok(Outbound::Publish { shard, .. }) => assert_eq!(shard, Some(key_slot(b"s"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_in_confirmations_follow_redis() {
        let (shared, _outbox) = node();
        let mut c = ClientState::new(1, None);
        run(&shared, &mut c, 0, &["SUBSCRIBE", "a"]);
        assert_eq!(
            run(&shared, &mut c, 0, &["PSUBSCRIBE", "p*"]),
            "*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n"
        );
        // Shard channels count on their own.
        assert_eq!(
            run(&shared, &mut c, 0, &["SSUBSCRIBE", "s"]),
            "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n"
        );
        assert_eq!(c.subscriptions, 3);
        run(&shared, &mut c, 0, &["UNSUBSCRIBE"]);
        run(&shared, &mut c, 0, &["PUNSUBSCRIBE"]);
        assert!(c.in_pubsub_mode());
        run(&shared, &mut c, 0, &["SUNSUBSCRIBE", "s"]);
        assert!(!c.in_pubsub_mode());
    }
}
