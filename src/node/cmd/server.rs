//! Connection and server commands: PING, ECHO, SELECT, QUIT, and the
//! per-connection cluster flags ASKING, READONLY, READWRITE.

use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("ping", ping),
    ("echo", echo),
    ("select", select),
    ("quit", quit),
    ("asking", asking),
    ("readonly", readonly),
    ("readwrite", readwrite),
];

fn ping(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match args.len() {
        1 => ctx.simple("PONG"),
        2 => ctx.bulk(args.get(1)),
        _ => Err(CmdError::fixed(
            "ERR wrong number of arguments for 'ping' command",
        )),
    }
}

fn echo(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ctx.bulk(args.get(1))
}

/// A cluster node has only database 0.
fn select(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let db = args
        .int(1)
        .map_err(|_| CmdError::fixed("ERR value is not an integer or out of range"))?;
    if db != 0 {
        return Err(CmdError::fixed("ERR SELECT is not allowed in cluster mode"));
    }
    ctx.ok()
}

fn quit(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.ok()?;
    Ok(Outcome::Close)
}

fn asking(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.client.asking = true;
    ctx.ok()
}

fn readonly(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.client.readonly = true;
    ctx.ok()
}

fn readwrite(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.client.readonly = false;
    ctx.ok()
}
