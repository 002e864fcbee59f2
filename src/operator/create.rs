//! `slotway cluster create`: join empty cluster nodes into a new cluster.
//!
//! The steps are those of `redis-cli --cluster create`: check that every
//! node is an empty cluster node, split the 16384 slots into contiguous
//! ranges over the masters, put each replica on another host than its
//! master where possible, show the plan and ask, then `ADDSLOTSRANGE`, a
//! distinct config epoch per node, `MEET`, and `REPLICATE` once every node
//! knows every other. Each wait is bounded, and the result is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::check::{self, CheckReport};
use super::client::NodeClient;
use super::console::Console;
use super::error::OpError;
use super::survey::{known_ids, owners};
use super::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_WAIT_TIMEOUT, Waiter, split_host_port};
use crate::cluster::SLOT_COUNT;
use crate::cluster::nodes::{self, NodeLine};

/// Redis Cluster needs a majority of at least two masters out of three to
/// elect replicas, so fewer masters are refused, as redis-cli does.
pub const MIN_MASTERS: usize = 3;

/// How `create` behaves.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Accept the plan without asking.
    pub yes: bool,
    /// Bound on each wait for the nodes to agree (join, roles, state).
    pub wait_timeout: Duration,
    /// Bound on connecting to a node and on each command.
    pub command_timeout: Duration,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            yes: false,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

/// Who does what in the new cluster; addresses as the operator gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePlan {
    pub masters: Vec<PlannedMaster>,
}

/// One master of a [`CreatePlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMaster {
    pub addr: String,
    pub slots: RangeInclusive<u16>,
    pub replicas: Vec<String>,
}

impl CreatePlan {
    /// True when some replica shares its master's host, so that losing
    /// that host loses both.
    pub fn replica_shares_host(&self) -> bool {
        self.masters
            .iter()
            .any(|m| m.replicas.iter().any(|r| host_of(r) == host_of(&m.addr)))
    }
}

/// What `create` did.
#[derive(Debug, Clone)]
pub struct CreateReport {
    pub plan: CreatePlan,
    /// The node id of every address.
    pub ids: BTreeMap<String, String>,
    /// The check run on the new cluster.
    pub check: CheckReport,
}

/// The 16384 slots split into `masters` contiguous ranges, with
/// redis-cli's arithmetic: range `i` ends at `round((i + 1) * 16384 /
/// masters) - 1`, and the last one ends at 16383.
pub fn split_slots(masters: usize) -> Vec<RangeInclusive<u16>> {
    if masters == 0 {
        return Vec::new();
    }
    let per_master = SLOT_COUNT as f64 / masters as f64;
    let last_slot = SLOT_COUNT - 1;
    let mut ranges = Vec::with_capacity(masters);
    let mut first = 0usize;
    let mut cursor = 0.0f64;
    for i in 0..masters {
        let mut last = (cursor + per_master - 1.0).round() as usize;
        if last > last_slot || i == masters - 1 {
            last = last_slot;
        }
        last = last.max(first);
        // Both fit: last <= 16383.
        ranges.push(first as u16..=last as u16);
        first = last + 1;
        cursor += per_master;
    }
    ranges
}

/// Decides masters, slots and replicas for `nodes` with `replicas` replicas
/// per master. Nodes are first interleaved by host (one from each host in
/// turn), so masters spread over hosts; the first `nodes / (replicas + 1)`
/// become masters. Each replica goes to a master on another host, avoiding
/// hosts the master's other replicas are on, where the nodes allow it.
/// Nodes left over become extra replicas, one master after another.
///
/// # Errors
/// [`OpError::Usage`] for a malformed or repeated address,
/// [`OpError::Refused`] when there would be fewer than three masters.
pub fn plan(nodes: &[String], replicas: usize) -> Result<CreatePlan, OpError> {
    let mut seen = BTreeSet::new();
    for addr in nodes {
        split_host_port(addr)?;
        if !seen.insert(addr.as_str()) {
            return Err(OpError::Usage(format!("node {addr} is listed twice")));
        }
    }
    let masters = nodes.len() / (replicas + 1);
    if masters < MIN_MASTERS {
        return Err(OpError::Refused(format!(
            "a cluster needs at least {MIN_MASTERS} masters: {} node(s) with {replicas} \
             replica(s) per master give {masters}; at least {} nodes are needed",
            nodes.len(),
            MIN_MASTERS * (replicas + 1)
        )));
    }

    let mut order = interleave_by_host(nodes);
    let rest = order.split_off(masters);
    let mut planned: Vec<PlannedMaster> = order
        .into_iter()
        .zip(split_slots(masters))
        .map(|(addr, slots)| PlannedMaster {
            addr,
            slots,
            replicas: Vec::new(),
        })
        .collect();
    let mut rest = rest;
    let mut next_master = 0usize;
    while !rest.is_empty() {
        let Some(master) = planned.get_mut(next_master % masters) else {
            break;
        };
        let pick = pick_replica(master, &rest);
        master.replicas.push(rest.remove(pick));
        next_master += 1;
    }
    separate_hosts(&mut planned);
    Ok(CreatePlan { masters: planned })
}

/// Picking replicas master by master can leave the last master only
/// nodes of its own host; swapping replicas between two masters fixes that
/// whenever both then end up away from their master's host.
fn separate_hosts(planned: &mut [PlannedMaster]) {
    let mut pairs: Vec<(String, String)> = planned
        .iter_mut()
        .flat_map(|m| {
            let master = m.addr.clone();
            std::mem::take(&mut m.replicas)
                .into_iter()
                .map(move |r| (master.clone(), r))
        })
        .collect();
    let shares = |master: &str, replica: &str| host_of(master) == host_of(replica);
    for a in 0..pairs.len() {
        for b in a + 1..pairs.len() {
            if let Some([x, .., y]) = pairs.get_mut(a..=b) {
                let conflict = shares(&x.0, &x.1) || shares(&y.0, &y.1);
                if conflict && !shares(&x.0, &y.1) && !shares(&y.0, &x.1) {
                    std::mem::swap(&mut x.1, &mut y.1);
                }
            }
        }
    }
    for (master, replica) in pairs {
        if let Some(m) = planned.iter_mut().find(|m| m.addr == master) {
            m.replicas.push(replica);
        }
    }
}

/// One node of each host in turn, hosts in order of first appearance.
fn interleave_by_host(nodes: &[String]) -> Vec<String> {
    let mut hosts: Vec<(&str, Vec<&String>)> = Vec::new();
    for addr in nodes {
        let host = host_of(addr);
        match hosts.iter_mut().find(|(h, _)| *h == host) {
            Some((_, list)) => list.push(addr),
            None => hosts.push((host, vec![addr])),
        }
    }
    let mut order = Vec::with_capacity(nodes.len());
    let mut round = 0;
    while order.len() < nodes.len() {
        for (_, list) in &hosts {
            if let Some(addr) = list.get(round) {
                order.push((*addr).clone());
            }
        }
        round += 1;
    }
    order
}

/// The index in `rest` of the best replica for `master`: on a host that
/// neither the master nor its replicas are on, else off the master's host,
/// else the first.
fn pick_replica(master: &PlannedMaster, rest: &[String]) -> usize {
    let master_host = host_of(&master.addr);
    let taken: BTreeSet<&str> = master.replicas.iter().map(|r| host_of(r)).collect();
    rest.iter()
        .position(|r| host_of(r) != master_host && !taken.contains(host_of(r)))
        .or_else(|| rest.iter().position(|r| host_of(r) != master_host))
        .unwrap_or(0)
}

fn host_of(addr: &str) -> &str {
    split_host_port(addr).map_or(addr, |(host, _)| host)
}

/// One node being joined: its connection and id.
struct Member {
    addr: String,
    id: String,
    client: NodeClient,
}

/// Creates a cluster of `nodes` with `replicas` replicas per master.
///
/// Returns once every node knows every other, all agree on slots and roles,
/// and every node reports `cluster_state:ok`; the report carries a check of
/// the new cluster.
///
/// # Errors
/// [`OpError::Refused`] listing every node that is not an empty cluster
/// node, or when there would be fewer than three masters;
/// [`OpError::NotConfirmed`] / [`OpError::Aborted`] when the plan is not
/// accepted; [`OpError::WaitTimeout`] when the nodes do not agree in time;
/// any error of a node on the way.
pub async fn create(
    nodes: &[String],
    replicas: usize,
    opts: &CreateOptions,
    console: &mut Console,
) -> Result<CreateReport, OpError> {
    let plan = plan(nodes, replicas)?;
    let mut members = connect_empty_nodes(nodes, opts.command_timeout).await?;
    let ids: BTreeMap<String, String> = members
        .iter()
        .map(|m| (m.addr.clone(), m.id.clone()))
        .collect();
    let id_of = |addr: &str| ids.get(addr).cloned().unwrap_or_default();

    show_plan(console, &plan, &id_of);
    console
        .confirm(
            "Can I set the above configuration? (type 'yes' to accept):",
            opts.yes,
        )
        .await?;

    // Members in plan order: masters first, then replicas master by master,
    // which is also the order of their config epochs.
    let order: Vec<&str> = plan
        .masters
        .iter()
        .map(|m| m.addr.as_str())
        .chain(
            plan.masters
                .iter()
                .flat_map(|m| m.replicas.iter().map(String::as_str)),
        )
        .collect();
    members.sort_by_key(|m| order.iter().position(|a| *a == m.addr));

    for master in &plan.masters {
        let member = member_mut(&mut members, &master.addr)?;
        add_slots(&mut member.client, &master.slots).await?;
    }
    console.line(">>> Nodes configuration updated");

    console.line(">>> Assign a different config epoch to each node");
    for (i, member) in members.iter_mut().enumerate() {
        let epoch = (i + 1).to_string();
        if let Err(e) = member
            .client
            .ok(&["CLUSTER", "SET-CONFIG-EPOCH", &epoch])
            .await
        {
            // Not fatal: epochs collide and are then resolved by the nodes.
            console.line(format!("[WARNING] {e}"));
        }
    }

    console.line(">>> Sending CLUSTER MEET messages to join the cluster");
    meet_first(&mut members).await?;

    let expected_owners = planned_owners(&plan, &id_of);
    let all_ids: BTreeSet<String> = members.iter().map(|m| m.id.clone()).collect();
    console.line("Waiting for the cluster to join");
    let waiter = Waiter::new("waiting for the nodes to join", opts.wait_timeout);
    loop {
        match joined(&mut members, &all_ids, &expected_owners).await {
            Ok(()) => break,
            Err(why) => waiter.again(why).await?,
        }
    }

    let mut roles: BTreeMap<String, String> = BTreeMap::new();
    for master in &plan.masters {
        let master_id = id_of(&master.addr);
        for replica in &master.replicas {
            let member = member_mut(&mut members, replica)?;
            member
                .client
                .ok(&["CLUSTER", "REPLICATE", &master_id])
                .await?;
            roles.insert(member.id.clone(), master_id.clone());
        }
    }
    if !roles.is_empty() {
        console.line(">>> Waiting for every node to agree on the replicas");
        let waiter = Waiter::new("waiting for the replicas to be known", opts.wait_timeout);
        loop {
            match roles_agreed(&mut members, &roles).await {
                Ok(()) => break,
                Err(why) => waiter.again(why).await?,
            }
        }
    }

    let waiter = Waiter::new("waiting for cluster_state:ok", opts.wait_timeout);
    loop {
        match state_ok(&mut members).await {
            Ok(()) => break,
            Err(why) => waiter.again(why).await?,
        }
    }

    let entry = plan
        .masters
        .first()
        .map(|m| m.addr.clone())
        .unwrap_or_default();
    let check = check::check(&entry, opts.command_timeout).await?;
    Ok(CreateReport { plan, ids, check })
}

/// Connects to every node and makes sure each is a cluster node that has
/// met nobody, owns no slot and holds no key. Every problem is collected,
/// so the operator sees them all at once.
async fn connect_empty_nodes(nodes: &[String], timeout: Duration) -> Result<Vec<Member>, OpError> {
    let mut members = Vec::with_capacity(nodes.len());
    let mut problems = Vec::new();
    for addr in nodes {
        match empty_node(addr, timeout).await {
            Ok(member) => members.push(member),
            Err(OpError::Refused(why)) => problems.push(why),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut ids = BTreeMap::new();
    for m in &members {
        if let Some(other) = ids.insert(m.id.as_str(), m.addr.as_str()) {
            problems.push(format!(
                "{} and {other} are the same node (id {})",
                m.addr, m.id
            ));
        }
    }
    if problems.is_empty() {
        Ok(members)
    } else {
        Err(OpError::Refused(format!(
            "cannot create the cluster:\n  {}",
            problems.join("\n  ")
        )))
    }
}

async fn empty_node(addr: &str, timeout: Duration) -> Result<Member, OpError> {
    let mut client = NodeClient::connect(addr, timeout).await?;
    let info = match client.text(&["CLUSTER", "INFO"]).await {
        Ok(info) => info,
        Err(e) if e.redis_message().is_some() => {
            return Err(OpError::Refused(format!(
                "{addr} is not a cluster node (start it with cluster-enabled yes): {e}"
            )));
        }
        Err(e) => return Err(e),
    };
    let view = nodes::parse(&client.text(&["CLUSTER", "NODES"]).await?);
    let me = view
        .iter()
        .find(|n| n.myself)
        .ok_or_else(|| OpError::Refused(format!("{addr}: CLUSTER NODES lists no 'myself' line")))?;
    let known = info_field(&info, "cluster_known_nodes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(view.len());
    if known > 1 || view.len() > 1 {
        return Err(OpError::Refused(format!(
            "{addr} already knows other nodes ({}): it is in a cluster already; \
             use empty nodes, or CLUSTER RESET it",
            known.max(view.len())
        )));
    }
    if !me.slots.is_empty() || info_field(&info, "cluster_slots_assigned").is_some_and(|v| v != "0")
    {
        return Err(OpError::Refused(format!(
            "{addr} already has slots assigned; use empty nodes, or CLUSTER RESET it"
        )));
    }
    let keys = client.int(&["DBSIZE"]).await?;
    if keys > 0 {
        return Err(OpError::Refused(format!(
            "{addr} is not empty: it holds {keys} key(s); use empty nodes, or FLUSHALL it"
        )));
    }
    Ok(Member {
        addr: addr.to_string(),
        id: me.id.clone(),
        client,
    })
}

fn member_mut<'a>(members: &'a mut [Member], addr: &str) -> Result<&'a mut Member, OpError> {
    members
        .iter_mut()
        .find(|m| m.addr == addr)
        .ok_or_else(|| OpError::Refused(format!("{addr} is not one of the nodes")))
}

fn show_plan(console: &mut Console, plan: &CreatePlan, id_of: &dyn Fn(&str) -> String) {
    let nodes: usize = plan.masters.iter().map(|m| 1 + m.replicas.len()).sum();
    console.line(format!(
        ">>> Performing hash slots allocation on {nodes} nodes..."
    ));
    for (i, m) in plan.masters.iter().enumerate() {
        console.line(format!(
            "Master[{i}] -> Slots {} - {}",
            m.slots.start(),
            m.slots.end()
        ));
    }
    for m in &plan.masters {
        for r in &m.replicas {
            console.line(format!("Adding replica {r} to {}", m.addr));
        }
    }
    if plan.replica_shares_host() {
        console.line("[WARNING] Some replicas are in the same host as their master");
    }
    for m in &plan.masters {
        console.line(format!("M: {} {}", id_of(&m.addr), m.addr));
        let count = usize::from(*m.slots.end()) + 1 - usize::from(*m.slots.start());
        console.line(format!(
            "   slots:[{}-{}] ({count} slots) master",
            m.slots.start(),
            m.slots.end()
        ));
    }
    for m in &plan.masters {
        for r in &m.replicas {
            console.line(format!("S: {} {r}", id_of(r)));
            console.line(format!("   replicates {}", id_of(&m.addr)));
        }
    }
}

/// `CLUSTER ADDSLOTSRANGE`, or `ADDSLOTS` on nodes older than Redis 7.
async fn add_slots(client: &mut NodeClient, slots: &RangeInclusive<u16>) -> Result<(), OpError> {
    let start = slots.start().to_string();
    let end = slots.end().to_string();
    match client.ok(&["CLUSTER", "ADDSLOTSRANGE", &start, &end]).await {
        Err(e)
            if e.redis_message()
                .is_some_and(|m| m.to_ascii_lowercase().contains("unknown")) =>
        {
            let mut args = vec!["CLUSTER".to_string(), "ADDSLOTS".to_string()];
            args.extend(slots.clone().map(|s| s.to_string()));
            client.ok(&args).await
        }
        other => other,
    }
}

/// Every node but the first meets the first, at the IP actually connected
/// to (`CLUSTER MEET` takes an IP, not a name) and its own bus port.
async fn meet_first(members: &mut [Member]) -> Result<(), OpError> {
    let Some((first, others)) = members.split_first_mut() else {
        return Ok(());
    };
    let peer = first.client.peer_addr().ok_or_else(|| OpError::Closed {
        addr: first.addr.clone(),
        command: "CLUSTER MEET".to_string(),
    })?;
    let ip = peer.ip().to_string();
    let port = peer.port();
    let own = first.client.text(&["CLUSTER", "NODES"]).await?;
    let bus = bus_port(&own);
    let mut args = vec![
        "CLUSTER".to_string(),
        "MEET".to_string(),
        ip,
        port.to_string(),
    ];
    // The optional bus port argument only when it is not the default, so
    // nodes that do not know the argument still work.
    if let Some(bus) = bus.filter(|&b| u32::from(b) != u32::from(port) + 10000) {
        args.push(bus.to_string());
    }
    for member in others {
        member.client.ok(&args).await?;
    }
    Ok(())
}

/// The cluster bus port on the `myself` line: `ip:port@cport`.
fn bus_port(cluster_nodes: &str) -> Option<u16> {
    let line = cluster_nodes
        .lines()
        .find(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("myself")))?;
    let addr = line.split(' ').nth(1)?;
    let after = addr.split_once('@')?.1;
    after.split(',').next()?.parse().ok()
}

/// The owner of every slot the plan gives out.
fn planned_owners(plan: &CreatePlan, id_of: &dyn Fn(&str) -> String) -> Vec<Option<String>> {
    let mut owners = vec![None; SLOT_COUNT];
    for m in &plan.masters {
        let id = id_of(&m.addr);
        for slot in m.slots.clone() {
            if let Some(owner) = owners.get_mut(usize::from(slot)) {
                *owner = Some(id.clone());
            }
        }
    }
    owners
}

/// Ok when every node lists exactly the members, none in handshake, and
/// names the planned owner for every slot.
async fn joined(
    members: &mut [Member],
    ids: &BTreeSet<String>,
    expected: &[Option<String>],
) -> Result<(), String> {
    for member in members.iter_mut() {
        let view = views(member).await?;
        let known: BTreeSet<String> = known_ids(&view).into_iter().map(String::from).collect();
        if &known != ids || view.iter().any(|n| n.unusable) {
            return Err(format!(
                "{} knows {} of {} nodes",
                member.addr,
                known.intersection(ids).count(),
                ids.len()
            ));
        }
        let seen = owners(&view);
        if seen
            .iter()
            .zip(expected)
            .any(|(a, b)| a.as_deref() != b.as_deref())
        {
            return Err(format!(
                "{} does not see every slot's owner yet",
                member.addr
            ));
        }
    }
    Ok(())
}

/// Ok when every node sees each replica as a replica of its master.
async fn roles_agreed(
    members: &mut [Member],
    roles: &BTreeMap<String, String>,
) -> Result<(), String> {
    for member in members.iter_mut() {
        let view = views(member).await?;
        for (replica, master) in roles {
            let line = view.iter().find(|n| &n.id == replica);
            if !line.is_some_and(|n| !n.master && n.master_id.as_ref() == Some(master)) {
                return Err(format!(
                    "{} does not see {replica} as a replica of {master} yet",
                    member.addr
                ));
            }
        }
    }
    Ok(())
}

/// Ok when every node reports `cluster_state:ok`.
async fn state_ok(members: &mut [Member]) -> Result<(), String> {
    for member in members.iter_mut() {
        let info = member
            .client
            .text(&["CLUSTER", "INFO"])
            .await
            .map_err(|e| e.to_string())?;
        let state = info_field(&info, "cluster_state");
        if state != Some("ok") {
            return Err(format!(
                "{}: cluster_state:{}",
                member.addr,
                state.unwrap_or("?")
            ));
        }
    }
    Ok(())
}

async fn views(member: &mut Member) -> Result<Vec<NodeLine>, String> {
    member
        .client
        .text(&["CLUSTER", "NODES"])
        .await
        .map(|t| nodes::parse(&t))
        .map_err(|e| e.to_string())
}

/// The value of `name:value` in an INFO-style text.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn slots_split_like_redis_cli() {
        assert_eq!(split_slots(3), vec![0..=5460, 5461..=10922, 10923..=16383]);
        let four = split_slots(4);
        assert_eq!(
            four,
            vec![0..=4095, 4096..=8191, 8192..=12287, 12288..=16383]
        );
        for n in 1..=50 {
            let ranges = split_slots(n);
            assert_eq!(ranges.len(), n);
            assert_eq!(*ranges[0].start(), 0);
            assert_eq!(*ranges[n - 1].end(), 16383);
            for pair in ranges.windows(2) {
                assert_eq!(*pair[0].end() + 1, *pair[1].start());
            }
        }
    }

    #[test]
    fn one_host_masters_first_replicas_in_order() {
        let nodes = addrs(&[
            "127.0.0.1:1",
            "127.0.0.1:2",
            "127.0.0.1:3",
            "127.0.0.1:4",
            "127.0.0.1:5",
            "127.0.0.1:6",
        ]);
        let plan = plan(&nodes, 1).unwrap();
        let masters: Vec<&str> = plan.masters.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(masters, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(plan.masters[0].replicas, ["127.0.0.1:4"]);
        assert_eq!(plan.masters[2].replicas, ["127.0.0.1:6"]);
        assert!(plan.replica_shares_host());
    }

    #[test]
    fn replicas_go_to_other_hosts() {
        let nodes = addrs(&[
            "10.0.0.1:1",
            "10.0.0.1:2",
            "10.0.0.2:1",
            "10.0.0.2:2",
            "10.0.0.3:1",
            "10.0.0.3:2",
        ]);
        let plan = plan(&nodes, 1).unwrap();
        let hosts: BTreeSet<&str> = plan.masters.iter().map(|m| host_of(&m.addr)).collect();
        assert_eq!(hosts.len(), 3, "{plan:?}");
        assert!(!plan.replica_shares_host(), "{plan:?}");

        let nodes: Vec<String> = (1..=3)
            .flat_map(|h| (1..=3).map(move |p| format!("10.0.0.{h}:{p}")))
            .collect();
        let plan = super::plan(&nodes, 2).unwrap();
        assert!(!plan.replica_shares_host(), "{plan:?}");
        assert!(plan.masters.iter().all(|m| m.replicas.len() == 2));
    }

    #[test]
    fn leftover_nodes_become_extra_replicas() {
        let nodes: Vec<String> = (1..=7).map(|p| format!("127.0.0.1:{p}")).collect();
        let plan = plan(&nodes, 1).unwrap();
        let counts: Vec<usize> = plan.masters.iter().map(|m| m.replicas.len()).collect();
        assert_eq!(counts, [2, 1, 1]);
    }

    #[test]
    fn too_few_masters_and_bad_addresses() {
        let nodes: Vec<String> = (1..=5).map(|p| format!("127.0.0.1:{p}")).collect();
        let err = plan(&nodes, 1).unwrap_err();
        assert!(err.to_string().contains("at least 3 masters"), "{err}");
        assert!(
            plan(&addrs(&["a:1", "a:1", "b:2"]), 0)
                .unwrap_err()
                .is_usage()
        );
        assert!(
            plan(&addrs(&["a", "b:1", "c:2"]), 0)
                .unwrap_err()
                .is_usage()
        );
    }

    #[test]
    fn bus_port_from_myself_line() {
        let text = "x :30001@40001 myself,master - 0 0 0 connected\n";
        assert_eq!(bus_port(text), Some(40001));
        let text = "x 127.0.0.1:30001@40002,host myself,master - 0 0 0 connected\n";
        assert_eq!(bus_port(text), Some(40002));
    }
}
