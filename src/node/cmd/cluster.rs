//! CLUSTER subcommands.

use super::{Args, CmdError, CmdResult, Ctx, Handler};
use crate::cluster::{SLOT_COUNT, key_slot};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("cluster|addslots", addslots),
    ("cluster|addslotsrange", addslotsrange),
    ("cluster|myid", myid),
    ("cluster|keyslot", keyslot),
];

fn parse_slot(args: &Args<'_>, i: usize) -> Result<u16, CmdError> {
    match args.int(i) {
        Ok(n) if (0..SLOT_COUNT as i64).contains(&n) => Ok(n as u16),
        _ => Err(CmdError::fixed("ERR Invalid or out of range slot")),
    }
}

/// Claims `slots` for this node, refusing the whole request if any is
/// already taken, as Redis does.
fn claim(ctx: &mut Ctx<'_>, slots: &[u16]) -> CmdResult {
    for &slot in slots {
        if ctx.node.cluster.owner(slot).is_some() {
            return Err(CmdError::new(format!("ERR Slot {slot} is already busy")));
        }
    }
    let me = ctx.node.cluster.myself.clone();
    ctx.node
        .cluster
        .set_owners(slots.iter().copied(), Some(&me));
    ctx.ok()
}

fn addslots(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let slots = (2..args.len())
        .map(|i| parse_slot(args, i))
        .collect::<Result<Vec<_>, _>>()?;
    claim(ctx, &slots)
}

fn addslotsrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() % 2 != 0 {
        return Err(CmdError::fixed(
            "ERR wrong number of arguments for 'cluster|addslotsrange' command",
        ));
    }
    let mut slots = Vec::new();
    for i in (2..args.len()).step_by(2) {
        let (start, end) = (parse_slot(args, i)?, parse_slot(args, i + 1)?);
        if start > end {
            return Err(CmdError::new(format!(
                "ERR start slot number {start} is greater than end slot number {end}"
            )));
        }
        slots.extend(start..=end);
    }
    claim(ctx, &slots)
}

fn myid(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let id = ctx.node.cluster.myself.clone();
    ctx.bulk(id.as_bytes())
}

fn keyslot(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ctx.int(i64::from(key_slot(args.get(2))))
}
