//! CLUSTER subcommands, with Redis 7.0's replies and error texts. They
//! read and change `node::cluster::ClusterState`; the bus spreads the
//! changes, and `nodes-<port>.conf` is rewritten after each one.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome};
use crate::cluster::{SLOT_COUNT, key_slot};
use crate::node::cluster::{ClusterNode, ClusterState, NodeId, failover, gossip, nodes_conf};
use crate::resp::encode;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("cluster|addslots", addslots),
    ("cluster|addslotsrange", addslotsrange),
    ("cluster|bumpepoch", bumpepoch),
    ("cluster|count-failure-reports", count_failure_reports),
    ("cluster|countkeysinslot", countkeysinslot),
    ("cluster|delslots", delslots),
    ("cluster|delslotsrange", delslotsrange),
    ("cluster|failover", failover_cmd),
    ("cluster|flushslots", flushslots),
    ("cluster|forget", forget),
    ("cluster|getkeysinslot", getkeysinslot),
    ("cluster|help", help),
    ("cluster|info", info),
    ("cluster|keyslot", keyslot),
    ("cluster|meet", meet),
    ("cluster|myid", myid),
    ("cluster|nodes", nodes),
    ("cluster|replicas", replicas),
    ("cluster|replicate", replicate),
    ("cluster|reset", reset),
    ("cluster|saveconfig", saveconfig),
    ("cluster|set-config-epoch", set_config_epoch),
    ("cluster|setslot", setslot),
    ("cluster|shards", shards),
    ("cluster|slaves", replicas),
    ("cluster|slots", slots),
];

/// Redis's answer when a subcommand has an argument count its table entry
/// allows but the subcommand does not.
fn syntax_error(args: &Args<'_>) -> CmdError {
    CmdError::new(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
        args.lossy(1)
    ))
}

fn unknown_node(args: &Args<'_>, i: usize) -> CmdError {
    CmdError::new(format!("ERR Unknown node {}", args.lossy(i)))
}

/// Redis's `getSlotOrReply`.
fn parse_slot(args: &Args<'_>, i: usize) -> Result<u16, CmdError> {
    match args.int(i) {
        Ok(n) if (0..SLOT_COUNT as i64).contains(&n) => Ok(n as u16),
        _ => Err(CmdError::fixed("ERR Invalid or out of range slot")),
    }
}

/// The node named by argument `i`.
fn lookup<'a>(cs: &'a ClusterState, args: &Args<'_>, i: usize) -> Option<&'a ClusterNode> {
    std::str::from_utf8(args.get(i))
        .ok()
        .and_then(|id| cs.node(id))
}

/// Redis's `checkSlotAssignmentsOrReply` for `start..=end`: every slot must
/// be free (or, to delete, assigned) and named once.
fn check_slots(
    cs: &ClusterState,
    seen: &mut [bool],
    del: bool,
    start: u16,
    end: u16,
) -> Result<(), CmdError> {
    for slot in start..=end {
        let owned = cs.owner(slot).is_some();
        if del && !owned {
            return Err(CmdError::new(format!(
                "ERR Slot {slot} is already unassigned"
            )));
        }
        if !del && owned {
            return Err(CmdError::new(format!("ERR Slot {slot} is already busy")));
        }
        match seen.get_mut(usize::from(slot)) {
            Some(s) if *s => {
                return Err(CmdError::new(format!(
                    "ERR Slot {slot} specified multiple times"
                )));
            }
            Some(s) => *s = true,
            None => {}
        }
    }
    Ok(())
}

/// Assigns the checked slots to this node (or unassigns them); importing
/// state for them ends, as this node is now their owner.
fn update_slots(ctx: &mut Ctx<'_>, seen: &[bool], del: bool) -> CmdResult {
    let cs = &mut ctx.node.cluster;
    let slots: Vec<u16> = (0..SLOT_COUNT as u16)
        .filter(|&s| seen.get(usize::from(s)).copied().unwrap_or(false))
        .collect();
    for slot in &slots {
        cs.importing.remove(slot);
    }
    let me = Arc::clone(&cs.myself);
    cs.set_owners(slots, if del { None } else { Some(&me) });
    ctx.ok()
}

fn slots_cmd(ctx: &mut Ctx<'_>, args: &Args<'_>, del: bool) -> CmdResult {
    for i in 2..args.len() {
        parse_slot(args, i)?;
    }
    let mut seen = vec![false; SLOT_COUNT];
    for i in 2..args.len() {
        let slot = parse_slot(args, i)?;
        check_slots(&ctx.node.cluster, &mut seen, del, slot, slot)?;
    }
    update_slots(ctx, &seen, del)
}

fn slots_range_cmd(ctx: &mut Ctx<'_>, args: &Args<'_>, del: bool) -> CmdResult {
    if args.len() % 2 != 0 {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for 'cluster|{}' command",
            args.lossy(1).to_ascii_lowercase()
        )));
    }
    let mut seen = vec![false; SLOT_COUNT];
    for i in (2..args.len()).step_by(2) {
        let (start, end) = (parse_slot(args, i)?, parse_slot(args, i + 1)?);
        if start > end {
            return Err(CmdError::new(format!(
                "ERR start slot number {start} is greater than end slot number {end}"
            )));
        }
        check_slots(&ctx.node.cluster, &mut seen, del, start, end)?;
    }
    update_slots(ctx, &seen, del)
}

fn addslots(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    slots_cmd(ctx, args, false)
}

fn delslots(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    slots_cmd(ctx, args, true)
}

fn addslotsrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    slots_range_cmd(ctx, args, false)
}

fn delslotsrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    slots_range_cmd(ctx, args, true)
}

fn flushslots(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    if !ctx.node.db.is_empty() {
        return Err(CmdError::fixed(
            "ERR DB must be empty to perform CLUSTER FLUSHSLOTS.",
        ));
    }
    let cs = &mut ctx.node.cluster;
    let mine: Vec<u16> = cs.me().slots().iter().collect();
    cs.set_owners(mine, None);
    ctx.ok()
}

fn meet(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() > 5 {
        return Err(syntax_error(args));
    }
    let port = args.int(3).map_err(|_| {
        CmdError::new(format!(
            "ERR Invalid TCP base port specified: {}",
            args.lossy(3)
        ))
    })?;
    let cport = if args.len() == 5 {
        args.int(4).map_err(|_| {
            CmdError::new(format!(
                "ERR Invalid TCP bus port specified: {}",
                args.lossy(4)
            ))
        })?
    } else {
        port + 10000
    };
    let ip: Option<std::net::IpAddr> = args.lossy(2).parse().ok();
    let valid_port = |p: i64| (1..=65535).contains(&p);
    let (Some(ip), true, true) = (ip, valid_port(port), valid_port(cport)) else {
        return Err(CmdError::new(format!(
            "ERR Invalid node address specified: {}:{}",
            args.lossy(2),
            args.lossy(3)
        )));
    };
    // A handshake already in progress with that address is not an error.
    ctx.node
        .cluster
        .start_handshake(&ip.to_string(), port as u16, cport as u16, true);
    ctx.ok()
}

fn forget(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let now = ctx.now_ms();
    let cs = &mut ctx.node.cluster;
    let Some(n) = lookup(cs, args, 2) else {
        return Err(unknown_node(args, 2));
    };
    let id = Arc::clone(&n.id);
    if cs.is_myself(&id) {
        return Err(CmdError::fixed(
            "ERR I tried hard but I can't forget myself...",
        ));
    }
    if cs.me().master.as_deref() == Some(&*id) {
        return Err(CmdError::fixed("ERR Can't forget my master!"));
    }
    cs.blacklist_add(&id, now);
    cs.del_node(&id);
    ctx.ok()
}

fn replicate(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let cs = &ctx.node.cluster;
    let Some(n) = lookup(cs, args, 2) else {
        return Err(unknown_node(args, 2));
    };
    if cs.is_myself(&n.id) {
        return Err(CmdError::fixed("ERR Can't replicate myself"));
    }
    if n.is_replica() {
        return Err(CmdError::fixed(
            "ERR I can only replicate a master, not a replica.",
        ));
    }
    if cs.me().is_master() && (cs.me().numslots() != 0 || !ctx.node.db.is_empty()) {
        return Err(CmdError::fixed(
            "ERR To set a master the node must be empty and without assigned slots.",
        ));
    }
    let id = Arc::clone(&n.id);
    ctx.node.cluster.set_my_master(&id);
    ctx.ok()
}

fn replicas(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let cs = &ctx.node.cluster;
    let Some(n) = lookup(cs, args, 2) else {
        return Err(unknown_node(args, 2));
    };
    if n.is_replica() {
        return Err(CmdError::fixed("ERR The specified node is not a master"));
    }
    let lines: Vec<String> = cs
        .replicas_of(&n.id)
        .into_iter()
        .map(|r| nodes_conf::node_line(cs, r))
        .collect();
    ctx.bulk_array(lines.iter().map(String::as_bytes))
}

fn nodes(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let text = nodes_conf::nodes_text(&ctx.node.cluster, true);
    ctx.bulk(text.as_bytes())
}

fn info(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let text = ctx.node.cluster.info_text();
    ctx.bulk(text.as_bytes())
}

fn myid(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let id = ctx.node.cluster.myself.clone();
    ctx.bulk(id.as_bytes())
}

fn keyslot(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ctx.int(i64::from(key_slot(args.get(2))))
}

fn countkeysinslot(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let slot = args.int(2)?;
    if !(0..SLOT_COUNT as i64).contains(&slot) {
        return Err(CmdError::fixed("ERR Invalid slot"));
    }
    let n = ctx.node.db.count_in_slot(slot as u16);
    ctx.int(n as i64)
}

fn getkeysinslot(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let slot = args.int(2)?;
    let max = args.int(3)?;
    if !(0..SLOT_COUNT as i64).contains(&slot) || max < 0 {
        return Err(CmdError::fixed("ERR Invalid slot or number of keys"));
    }
    let keys = ctx
        .node
        .db
        .keys_in_slot(slot as u16, usize::try_from(max).unwrap_or(usize::MAX));
    ctx.bulk_array(keys.iter().map(|k| k.as_ref()))
}

/// Redis's CLUSTER SETSLOT, rule for rule.
fn setslot(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if ctx.node.cluster.me().is_replica() {
        return Err(CmdError::fixed("ERR Please use SETSLOT only with masters."));
    }
    let slot = parse_slot(args, 2)?;
    let action = args.lossy(3).to_ascii_lowercase();
    let cs = &ctx.node.cluster;
    let i_own_it = cs.owner(slot).is_some_and(|o| cs.is_myself(o));
    let target = |cs: &ClusterState, missing: &str| -> Result<NodeId, CmdError> {
        let Some(n) = lookup(cs, args, 4) else {
            return Err(CmdError::new(format!("ERR {missing} {}", args.lossy(4))));
        };
        if n.is_replica() {
            return Err(CmdError::fixed("ERR Target node is not a master"));
        }
        Ok(Arc::clone(&n.id))
    };
    match (action.as_str(), args.len()) {
        ("migrating", 5) => {
            if !i_own_it {
                return Err(CmdError::new(format!(
                    "ERR I'm not the owner of hash slot {slot}"
                )));
            }
            let to = target(cs, "I don't know about node")?;
            ctx.node.cluster.migrating.insert(slot, to);
        }
        ("importing", 5) => {
            if i_own_it {
                return Err(CmdError::new(format!(
                    "ERR I'm already the owner of hash slot {slot}"
                )));
            }
            let from = target(cs, "I don't know about node")?;
            ctx.node.cluster.importing.insert(slot, from);
        }
        ("stable", 4) => {
            let cs = &mut ctx.node.cluster;
            cs.migrating.remove(&slot);
            cs.importing.remove(&slot);
        }
        ("node", 5) => {
            let to = target(cs, "Unknown node")?;
            let keys = ctx.node.db.count_in_slot(slot);
            let cs = &mut ctx.node.cluster;
            let to_me = cs.is_myself(&to);
            if i_own_it && !to_me && keys != 0 {
                return Err(CmdError::new(format!(
                    "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                )));
            }
            // A migration with no keys left ends with the assignment.
            if keys == 0 {
                cs.migrating.remove(&slot);
            }
            cs.set_owner(slot, Some(Arc::clone(&to)));
            // A master left without slots follows the new owner.
            if i_own_it && !to_me && cs.me().numslots() == 0 {
                tracing::warn!(master = %to, "configuration change detected: reconfiguring myself as a replica");
                cs.set_my_master(&to);
            }
            // The slot was imported by hand: take a new config epoch, without
            // agreement, so this claim wins over the old owner's everywhere,
            // and tell everyone at once.
            if to_me && cs.importing.remove(&slot).is_some() {
                if cs.bump_epoch_without_consensus() {
                    tracing::info!(
                        slot,
                        epoch = cs.me().config_epoch,
                        "config epoch updated after importing slot"
                    );
                }
                cs.broadcast_pong = true;
            }
        }
        _ => {
            return Err(CmdError::fixed(
                "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            ));
        }
    }
    let cs = &mut ctx.node.cluster;
    cs.mark_dirty();
    cs.update_state();
    ctx.ok()
}

fn set_config_epoch(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let epoch = args.int(2)?;
    let cs = &mut ctx.node.cluster;
    if epoch < 0 {
        return Err(CmdError::new(format!(
            "ERR Invalid config epoch specified: {epoch}"
        )));
    }
    if cs.known_nodes() > 1 {
        return Err(CmdError::fixed(
            "ERR The user can assign a config epoch only when the node does not know any other node.",
        ));
    }
    if cs.me().config_epoch != 0 {
        return Err(CmdError::fixed("ERR Node config epoch is already non-zero"));
    }
    let epoch = epoch as u64;
    cs.me_mut().config_epoch = epoch;
    cs.current_epoch = cs.current_epoch.max(epoch);
    cs.mark_dirty();
    cs.update_state();
    ctx.ok()
}

fn bumpepoch(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let cs = &mut ctx.node.cluster;
    let bumped = cs.bump_epoch_without_consensus();
    let text = format!(
        "{} {}",
        if bumped { "BUMPED" } else { "STILL" },
        cs.me().config_epoch
    );
    ctx.simple(&text)
}

fn reset(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(syntax_error(args));
    }
    let hard = match args.len() {
        3 if args.is(2, "hard") => true,
        3 if args.is(2, "soft") => false,
        3 => return Err(CmdError::SYNTAX),
        _ => false,
    };
    let is_master = ctx.node.cluster.me().is_master();
    if is_master && !ctx.node.db.is_empty() {
        return Err(CmdError::fixed(
            "ERR CLUSTER RESET can't be called with master nodes containing keys",
        ));
    }
    if !is_master {
        // A replica turning master drops the data it replicated.
        ctx.node.db.clear();
        ctx.node.events.touched_all();
    }
    ctx.node.cluster.reset(hard);
    ctx.ok()
}

fn saveconfig(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let cs = &mut ctx.node.cluster;
    let Some(file) = cs.conf_file.clone() else {
        // A node built without a file (unit tests) has nothing to save.
        return ctx.ok();
    };
    let version = file.next_version();
    let text = nodes_conf::config_text(cs);
    cs.take_dirty();
    Ok(Outcome::Async(Box::pin(async move {
        let written = tokio::task::spawn_blocking(move || file.write(version, &text)).await;
        let mut out = BytesMut::new();
        match written {
            Ok(Ok(())) => encode::simple(&mut out, "OK"),
            Ok(Err(e)) => encode::error(
                &mut out,
                &format!("ERR error saving the cluster node config: {e}"),
            ),
            Err(e) => encode::error(
                &mut out,
                &format!("ERR error saving the cluster node config: {e}"),
            ),
        }
        Bytes::from(out)
    })))
}

fn count_failure_reports(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let now = ctx.now_ms();
    let cs = &mut ctx.node.cluster;
    let Some(id) = lookup(cs, args, 2).map(|n| Arc::clone(&n.id)) else {
        return Err(unknown_node(args, 2));
    };
    let n = gossip::count_failure_reports(cs, &id, now);
    ctx.int(n as i64)
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER], run on a replica: see
/// `node::cluster::failover` for what each form does. OK means it started;
/// the roles change within moments (or, for the default form, within 5 s
/// if at all), as with Redis.
fn failover_cmd(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mode = match args.len() {
        2 => failover::Mode::Default,
        3 if args.is(2, "force") => failover::Mode::Force,
        3 if args.is(2, "takeover") => failover::Mode::Takeover,
        3 => return Err(CmdError::SYNTAX),
        _ => return Err(syntax_error(args)),
    };
    let now = ctx.now_ms();
    failover::start_manual(&mut ctx.node.cluster, mode, now).map_err(CmdError::fixed)?;
    ctx.ok()
}

/// One node of a CLUSTER SLOTS range: `[ip, port, id, {}]` (the map holds
/// hostnames in Redis 7.0; this node has none).
fn slots_node(out: &mut BytesMut, n: &ClusterNode) {
    encode::array_header(out, 4);
    encode::bulk(out, n.ip.as_bytes());
    encode::integer(out, i64::from(n.port));
    encode::bulk(out, n.id.as_bytes());
    encode::array_header(out, 0);
}

/// CLUSTER SLOTS as Redis 7.0 answers it: one entry per run of slots with
/// the same master, in slot order: start, end, the master, then its
/// available replicas: not flagged failed, and with a non-zero replication
/// offset (Redis's `isReplicaAvailable`: a replica that has not synced yet
/// has nothing to serve).
fn slots(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let cs = &ctx.node.cluster;
    let mut ranges: Vec<(u16, u16, &ClusterNode)> = Vec::new();
    for slot in 0..SLOT_COUNT as u16 {
        let Some(owner) = cs.owner_node(slot) else {
            continue;
        };
        match ranges.last_mut() {
            Some((_, end, n)) if *end + 1 == slot && Arc::ptr_eq(&n.id, &owner.id) => *end = slot,
            _ => ranges.push((slot, slot, owner)),
        }
    }
    let mut out = BytesMut::new();
    encode::array_header(&mut out, ranges.len());
    for (start, end, master) in ranges {
        let replicas: Vec<&ClusterNode> = cs
            .replicas_of(&master.id)
            .into_iter()
            .filter(|r| !r.fail && r.repl_offset != 0)
            .collect();
        encode::array_header(&mut out, 3 + replicas.len());
        encode::integer(&mut out, i64::from(start));
        encode::integer(&mut out, i64::from(end));
        slots_node(&mut out, master);
        for r in replicas {
            slots_node(&mut out, r);
        }
    }
    ctx.out.extend_from_slice(&out);
    Ok(Outcome::Done)
}

/// One node of a CLUSTER SHARDS entry (a map, flat in RESP2).
fn shard_node(out: &mut BytesMut, n: &ClusterNode) {
    let offset = n.repl_offset;
    let health = if n.fail {
        "fail"
    } else if n.is_replica() && offset == 0 {
        "loading"
    } else {
        "online"
    };
    encode::array_header(out, 14);
    encode::bulk(out, b"id");
    encode::bulk(out, n.id.as_bytes());
    encode::bulk(out, b"port");
    encode::integer(out, i64::from(n.port));
    encode::bulk(out, b"ip");
    encode::bulk(out, n.ip.as_bytes());
    encode::bulk(out, b"endpoint");
    encode::bulk(out, n.ip.as_bytes());
    encode::bulk(out, b"role");
    encode::bulk(
        out,
        if n.is_replica() {
            b"replica"
        } else {
            b"master"
        },
    );
    encode::bulk(out, b"replication-offset");
    encode::integer(out, i64::try_from(offset).unwrap_or(i64::MAX));
    encode::bulk(out, b"health");
    encode::bulk(out, health.as_bytes());
}

/// CLUSTER SHARDS as Redis 7.0 answers it: one entry per master, with
/// its slot ranges (start/end integers) and its nodes, master first.
/// Masters are listed by their first slot (Redis's order is its hash
/// table's).
fn shards(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let cs = &ctx.node.cluster;
    let mut masters: Vec<&ClusterNode> = cs.nodes().filter(|n| n.is_master()).collect();
    masters.sort_by_key(|n| (n.slots().iter().next().unwrap_or(u16::MAX), n.id.clone()));
    let mut out = BytesMut::new();
    encode::array_header(&mut out, masters.len());
    for m in masters {
        encode::array_header(&mut out, 4);
        encode::bulk(&mut out, b"slots");
        let ranges = m.slots().ranges();
        encode::array_header(&mut out, ranges.len() * 2);
        for (start, end) in ranges {
            encode::integer(&mut out, i64::from(start));
            encode::integer(&mut out, i64::from(end));
        }
        encode::bulk(&mut out, b"nodes");
        let replicas = cs.replicas_of(&m.id);
        encode::array_header(&mut out, 1 + replicas.len());
        shard_node(&mut out, m);
        for r in replicas {
            shard_node(&mut out, r);
        }
    }
    ctx.out.extend_from_slice(&out);
    Ok(Outcome::Done)
}

/// CLUSTER HELP, as Redis 7.0 words it.
const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "HELP",
    "    Prints this help.",
];

fn help(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.array_header(HELP.len());
    for line in HELP {
        encode::simple(ctx.out, line);
    }
    Ok(Outcome::Done)
}
