//! `slotway cluster reshard`: move slots, with their keys, from one master
//! to another, the way `redis-cli --cluster reshard` does.
//!
//! Per slot: `SETSLOT IMPORTING` on the target, `SETSLOT MIGRATING` on the
//! source, then `GETKEYSINSLOT` + `MIGRATE ... KEYS` until the source holds
//! none of the slot's keys, then `SETSLOT NODE` on the target, the source
//! and every other master. Clients meanwhile follow `ASK` redirects, so no
//! key is ever unreachable.
//!
//! The source's lowest-numbered slots are moved: a cluster resharded in
//! steps keeps each master's slots contiguous where they were. Slots that an
//! interrupted reshard left open between the same two masters are moved
//! first, so a reshard stopped by an error is finished by running it again.

use std::collections::BTreeSet;
use std::time::Duration;

use super::check::{Issue, SlotState, inspect};
use super::client::NodeClient;
use super::console::Console;
use super::error::OpError;
use super::survey::{Survey, format_ranges, owners, ranges};
use super::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_WAIT_TIMEOUT, Waiter, split_host_port};

/// Keys moved per `MIGRATE`, as redis-cli's `--cluster-pipeline`.
pub const DEFAULT_PIPELINE: usize = 100;
/// `MIGRATE`'s own timeout, as redis-cli's `--cluster-timeout`.
pub const DEFAULT_MIGRATE_TIMEOUT: Duration = Duration::from_secs(60);

/// What to move, and how.
#[derive(Debug, Clone)]
pub struct ReshardOptions {
    /// The source master: its node id, a unique prefix of it, or its
    /// `host:port`.
    pub from: String,
    /// The target master, named the same ways.
    pub to: String,
    /// How many slots to move.
    pub slots: usize,
    /// Accept the plan without asking.
    pub yes: bool,
    /// Overwrite keys that already exist on the target (`MIGRATE ...
    /// REPLACE`); without it such a key stops the reshard.
    pub replace: bool,
    /// Keys per `MIGRATE`.
    pub pipeline: usize,
    /// `MIGRATE`'s timeout for one batch of keys.
    pub migrate_timeout: Duration,
    /// Bound on connecting to a node and on each other command.
    pub command_timeout: Duration,
    /// Bound on the final wait for every node to agree.
    pub wait_timeout: Duration,
}

impl ReshardOptions {
    /// Moves `slots` slots from `from` to `to`, with the defaults for the
    /// rest.
    pub fn new(from: impl Into<String>, to: impl Into<String>, slots: usize) -> ReshardOptions {
        ReshardOptions {
            from: from.into(),
            to: to.into(),
            slots,
            yes: false,
            replace: false,
            pipeline: DEFAULT_PIPELINE,
            migrate_timeout: DEFAULT_MIGRATE_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }
}

/// What a reshard did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReshardReport {
    pub from_id: String,
    pub to_id: String,
    /// The slots moved, in the order they were moved.
    pub slots: Vec<u16>,
    /// Keys moved with them.
    pub keys: u64,
}

/// Moves `opts.slots` slots from `opts.from` to `opts.to` in the cluster
/// that `addr` belongs to. The cluster must pass a check first, as with
/// redis-cli. Returns once every node names the target as the owner of the
/// moved slots.
///
/// # Errors
/// [`OpError::Usage`] for unknown or ambiguous masters or a zero count;
/// [`OpError::Refused`] when the cluster has problems or the source owns too
/// few slots; a node's error while moving (the slot being moved is then
/// left open, and `check` shows it).
pub async fn reshard(
    addr: &str,
    opts: &ReshardOptions,
    console: &mut Console,
) -> Result<ReshardReport, OpError> {
    if opts.slots == 0 {
        return Err(OpError::Usage("--slots must be at least 1".to_string()));
    }
    if opts.pipeline == 0 {
        return Err(OpError::Usage("--pipeline must be at least 1".to_string()));
    }
    let mut survey = Survey::load(addr, opts.command_timeout).await?;
    let from = find_master(&survey, &opts.from)?;
    let to = find_master(&survey, &opts.to)?;
    let (Some(source), Some(target)) = (survey.nodes.get(from), survey.nodes.get(to)) else {
        return Err(OpError::Usage("unknown master".to_string()));
    };
    if from == to {
        return Err(OpError::Usage(
            "the source and the target are the same master".to_string(),
        ));
    }
    let from_id = source.line.id.clone();
    let to_id = target.line.id.clone();
    let from_addr = source.line.addr.clone();
    let to_addr = target.line.addr.clone();
    let owned: BTreeSet<u16> = source.line.slots.iter().flat_map(|r| r.clone()).collect();

    // The cluster must be sound, except for slots that an interrupted
    // reshard left open between these same two masters: those are resumed.
    let report = inspect(&mut survey).await;
    let resumable = |issue: &Issue| match issue {
        Issue::OpenSlot {
            addr,
            slot,
            state,
            peer,
        } => {
            owned.contains(slot)
                && match state {
                    SlotState::Migrating => *addr == from_addr && *peer == to_id,
                    SlotState::Importing => *addr == to_addr && *peer == from_id,
                }
        }
        _ => false,
    };
    if report.issues.iter().any(|issue| !resumable(issue)) {
        for line in report.lines() {
            console.line(line);
        }
        return Err(OpError::Refused(
            "the cluster has problems (see the check above): fix them before resharding"
                .to_string(),
        ));
    }
    let resumed: BTreeSet<u16> = report
        .issues
        .iter()
        .filter(|issue| resumable(issue))
        .filter_map(|issue| match issue {
            Issue::OpenSlot { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect();
    if owned.len() < opts.slots {
        return Err(OpError::Refused(format!(
            "{from_addr} owns {} slot(s); cannot move {}",
            owned.len(),
            opts.slots
        )));
    }
    // Resumed slots first (all of them, even beyond the count), then the
    // source's lowest.
    let fresh = owned.iter().filter(|s| !resumed.contains(s));
    let wanted = opts.slots.saturating_sub(resumed.len());
    let moving: Vec<u16> = resumed
        .iter()
        .copied()
        .chain(fresh.copied().take(wanted))
        .collect();
    if !resumed.is_empty() {
        console.line(format!(
            ">>> Resuming open slot(s) {} first",
            format_ranges(&ranges(resumed.iter().copied()))
        ));
    }

    console.line(format!(
        ">>> Moving {} slot(s) from {from_addr} ({from_id}) to {to_addr} ({to_id})",
        moving.len()
    ));
    console.line(format!(
        "    slots: {}",
        format_ranges(&ranges(sorted(&moving)))
    ));
    console
        .confirm(
            "Do you want to proceed with the proposed reshard plan (yes/no)?",
            opts.yes,
        )
        .await?;

    let (to_host, to_port) = split_host_port(&to_addr)?;
    let (to_host, to_port) = (to_host.to_string(), to_port);
    let others: Vec<usize> = (0..survey.nodes.len())
        .filter(|&i| i != from && i != to)
        .filter(|&i| survey.nodes.get(i).is_some_and(|n| n.line.master))
        .collect();

    let mut keys = 0u64;
    for (done, &slot) in moving.iter().enumerate() {
        let moved = move_slot(
            &mut survey,
            MoveSlot {
                slot,
                from,
                to,
                from_id: &from_id,
                to_id: &to_id,
                to_host: &to_host,
                to_port,
                others: &others,
            },
            opts,
            console,
        )
        .await?;
        keys += moved;
        console.progress(format!(
            "Moved slot {slot} from {from_addr} to {to_addr}: {moved} key(s) [{}/{}]",
            done + 1,
            moving.len()
        ));
    }

    console.line(">>> Waiting for every node to agree on the new owner");
    let waiter = Waiter::new("waiting for the nodes to agree", opts.wait_timeout);
    loop {
        survey.refresh_views().await;
        match settled(&survey, &moving, &to_id) {
            Ok(()) => break,
            Err(why) => waiter.again(why).await?,
        }
    }
    console.line(format!(
        "[OK] Moved {} slot(s) and {keys} key(s) to {to_addr}.",
        moving.len()
    ));
    Ok(ReshardReport {
        from_id,
        to_id,
        slots: moving,
        keys,
    })
}

fn sorted(slots: &[u16]) -> Vec<u16> {
    let mut slots = slots.to_vec();
    slots.sort_unstable();
    slots
}

/// A master named by id, unique id prefix, or address.
fn find_master(survey: &Survey, name: &str) -> Result<usize, OpError> {
    let unknown = || OpError::Usage(format!("no node '{name}' in the cluster"));
    let exact = survey
        .nodes
        .iter()
        .position(|n| n.line.id == name || n.line.addr == name);
    let index = match exact {
        Some(i) => i,
        None if name.is_empty() => return Err(unknown()),
        None => {
            let mut matches = (0..survey.nodes.len()).filter(|&i| {
                survey
                    .nodes
                    .get(i)
                    .is_some_and(|n| n.line.id.starts_with(name))
            });
            match (matches.next(), matches.next()) {
                (Some(i), None) => i,
                (None, _) => return Err(unknown()),
                (Some(_), Some(_)) => {
                    return Err(OpError::Usage(format!(
                        "'{name}' matches more than one node id"
                    )));
                }
            }
        }
    };
    match survey.nodes.get(index) {
        Some(node) if node.line.master => Ok(index),
        Some(node) => Err(OpError::Usage(format!(
            "{} ({}) is a replica, not a master",
            node.line.addr, node.line.id
        ))),
        None => Err(unknown()),
    }
}

/// One slot's move: who from, who to, who else must be told.
struct MoveSlot<'a> {
    slot: u16,
    from: usize,
    to: usize,
    from_id: &'a str,
    to_id: &'a str,
    to_host: &'a str,
    to_port: u16,
    others: &'a [usize],
}

/// Moves one slot and its keys; returns how many keys moved.
async fn move_slot(
    survey: &mut Survey,
    m: MoveSlot<'_>,
    opts: &ReshardOptions,
    console: &mut Console,
) -> Result<u64, OpError> {
    let slot = m.slot.to_string();
    client(survey, m.to)?
        .ok(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", m.from_id])
        .await?;
    client(survey, m.from)?
        .ok(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", m.to_id])
        .await?;

    let mut moved = 0u64;
    let source = client(survey, m.from)?;
    let batch = opts.pipeline.to_string();
    loop {
        let reply = source
            .cmd(&["CLUSTER", "GETKEYSINSLOT", &slot, &batch])
            .await?;
        let Some(items) = reply.as_array() else {
            return Err(source.unexpected(&["CLUSTER", "GETKEYSINSLOT"], &reply));
        };
        let keys: Vec<Vec<u8>> = items
            .iter()
            .filter_map(|k| k.as_bytes().map(|b| b.to_vec()))
            .collect();
        if keys.is_empty() {
            break;
        }
        migrate(source, &m, &keys, opts).await?;
        moved += keys.len() as u64;
    }

    // The target first, so that it owns the slot before the source stops
    // redirecting there; then the source; then everyone else.
    client(survey, m.to)?
        .ok(&["CLUSTER", "SETSLOT", &slot, "NODE", m.to_id])
        .await?;
    client(survey, m.from)?
        .ok(&["CLUSTER", "SETSLOT", &slot, "NODE", m.to_id])
        .await?;
    for &other in m.others {
        let told = match client(survey, other) {
            Ok(c) => c.ok(&["CLUSTER", "SETSLOT", &slot, "NODE", m.to_id]).await,
            Err(e) => Err(e),
        };
        // Not fatal: the new owner's bumped epoch reaches them by gossip.
        if let Err(e) = told {
            console.progress(format!("[WARNING] {e}"));
        }
    }
    Ok(moved)
}

/// `MIGRATE host port "" 0 timeout [REPLACE] KEYS ...`. A key that exists
/// on the target stops the reshard unless `replace` was asked for.
async fn migrate(
    source: &mut NodeClient,
    m: &MoveSlot<'_>,
    keys: &[Vec<u8>],
    opts: &ReshardOptions,
) -> Result<(), OpError> {
    let timeout_ms = opts.migrate_timeout.as_millis().to_string();
    let build = |replace: bool| {
        let mut args: Vec<Vec<u8>> = vec![
            b"MIGRATE".to_vec(),
            m.to_host.as_bytes().to_vec(),
            m.to_port.to_string().into_bytes(),
            Vec::new(),
            b"0".to_vec(),
            timeout_ms.clone().into_bytes(),
        ];
        if replace {
            args.push(b"REPLACE".to_vec());
        }
        args.push(b"KEYS".to_vec());
        args.extend(keys.iter().cloned());
        args
    };
    // MIGRATE may take up to its own timeout; the client waits a bit longer.
    let saved = source.timeout();
    source.set_timeout(opts.migrate_timeout + saved);
    let mut result = source.cmd(&build(false)).await;
    if is_busy_key(&result) && opts.replace {
        result = source.cmd(&build(true)).await;
    }
    source.set_timeout(saved);
    if is_busy_key(&result) {
        return Err(OpError::Refused(format!(
            "slot {}: a key being moved already exists on the target ({}:{}); the slot is left \
             open. Rerun with --replace to overwrite the target's keys, or settle the slot by \
             hand (`slotway cluster check` shows it)",
            m.slot, m.to_host, m.to_port
        )));
    }
    result.map(|_| ())
}

/// MIGRATE relays the target's `BUSYKEY` inside its own error text.
fn is_busy_key(result: &Result<crate::resp::Frame, OpError>) -> bool {
    result
        .as_ref()
        .err()
        .and_then(OpError::redis_message)
        .is_some_and(|msg| msg.contains("BUSYKEY"))
}

fn client(survey: &mut Survey, index: usize) -> Result<&mut NodeClient, OpError> {
    let node = survey
        .nodes
        .get_mut(index)
        .ok_or_else(|| OpError::Refused("node vanished from the survey".to_string()))?;
    let addr = node.line.addr.clone();
    node.client
        .as_mut()
        .ok_or_else(|| OpError::Refused(format!("{addr} cannot be reached")))
}

/// Ok when every node names `to_id` as the owner of every moved slot and
/// none of them is open anywhere.
fn settled(survey: &Survey, moved: &[u16], to_id: &str) -> Result<(), String> {
    for node in &survey.nodes {
        let view = node
            .view
            .as_ref()
            .map_err(|e| format!("{}: {e}", node.line.addr))?;
        let owner = owners(view);
        if let Some(slot) = moved
            .iter()
            .find(|&&s| owner.get(usize::from(s)).copied().flatten() != Some(to_id))
        {
            return Err(format!(
                "{} does not name the new owner of slot {slot} yet",
                node.line.addr
            ));
        }
        if let Some(me) = node.own_line() {
            if let Some((slot, _)) = me.migrating.first().or(me.importing.first()) {
                return Err(format!("{} still has slot {slot} open", node.line.addr));
            }
        }
    }
    Ok(())
}
