//! String commands.

use super::{Args, CmdError, CmdResult, Ctx, Handler};
use crate::node::db::Value;

pub const COMMANDS: &[(&str, Handler)] = &[("get", get), ("set", set), ("incr", incr)];

fn get(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match ctx.node.db.get(args.get(1)) {
        Some(value) => {
            let value = value.as_str()?.clone();
            ctx.node.stats.keyspace_hits += 1;
            ctx.bulk(&value)
        }
        None => {
            ctx.node.stats.keyspace_misses += 1;
            ctx.nil()
        }
    }
}

/// SET key value (options to come).
fn set(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() != 3 {
        return Err(CmdError::SYNTAX);
    }
    ctx.node.db.insert(args.bytes(1), Value::Str(args.bytes(2)));
    ctx.ok()
}

fn incr(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.bytes(1);
    let value = ctx
        .node
        .db
        .get_or_insert_with(&key, || Value::Str(bytes::Bytes::from_static(b"0")));
    let current = super::parse_i64(value.as_str()?)?;
    let next = current.checked_add(1).ok_or(CmdError::OVERFLOW)?;
    *value = Value::Str(bytes::Bytes::from(next.to_string()));
    ctx.int(next)
}
