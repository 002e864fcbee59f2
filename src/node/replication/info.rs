//! INFO replication and ROLE, with Redis's field names and order.

use std::time::Instant;

use super::{LinkStatus, SyncState};
use crate::node::cmd::{Args, CmdResult, Ctx, Outcome};
use crate::node::state::NodeState;
use crate::resp::encode;

/// The master this node replicates, as INFO and ROLE name it.
fn master_addr(node: &NodeState) -> Option<(String, u16)> {
    let cluster = &node.cluster;
    let id = cluster.me().master.as_ref()?;
    Some(
        cluster
            .node(id)
            .map(|n| (n.ip.clone(), n.port))
            .or_else(|| node.repl.link.master.clone())
            .unwrap_or_default(),
    )
}

fn secs_since(at: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(at).as_secs()
}

/// The `key:value` lines of INFO replication.
pub fn info_lines(node: &NodeState, now: Instant) -> Vec<(String, String)> {
    let repl = &node.repl;
    let link = &repl.link;
    let offset = node.feed.offset();
    let mut lines: Vec<(&str, String)> = Vec::new();
    let mut replicas: Vec<(String, String)> = Vec::new();
    match master_addr(node) {
        Some((host, port)) => {
            let up = link.status == LinkStatus::Connected;
            let syncing = link.status == LinkStatus::Sync;
            let last_io = match (up, link.last_io) {
                (true, Some(at)) => secs_since(at, now).to_string(),
                _ => "-1".into(),
            };
            lines.extend([
                ("role", "slave".to_string()),
                ("master_host", host),
                ("master_port", port.to_string()),
                ("master_link_status", if up { "up" } else { "down" }.into()),
                ("master_last_io_seconds_ago", last_io),
                ("master_sync_in_progress", u8::from(syncing).to_string()),
                (
                    "slave_read_repl_offset",
                    link.read_offset.max(offset).to_string(),
                ),
                ("slave_repl_offset", offset.to_string()),
            ]);
            if syncing {
                let left = link.sync_total.saturating_sub(link.sync_read);
                let perc = if link.sync_total > 0 {
                    link.sync_read as f64 * 100.0 / link.sync_total as f64
                } else {
                    0.0
                };
                let io = link.last_io.map_or(-1, |at| secs_since(at, now) as i64);
                lines.extend([
                    ("master_sync_total_bytes", link.sync_total.to_string()),
                    ("master_sync_read_bytes", link.sync_read.to_string()),
                    ("master_sync_left_bytes", left.to_string()),
                    ("master_sync_perc", format!("{perc:.2}")),
                    ("master_sync_last_io_seconds_ago", io.to_string()),
                ]);
            }
            if !up {
                let down = link.down_since.map_or(-1, |at| secs_since(at, now) as i64);
                lines.push(("master_link_down_since_seconds", down.to_string()));
            }
            lines.extend([
                ("slave_priority", "100".to_string()),
                ("slave_read_only", "1".into()),
                ("replica_announced", "1".into()),
            ]);
        }
        None => lines.push(("role", "master".into())),
    }
    lines.push(("connected_slaves", repl.replicas.len().to_string()));
    for (i, r) in repl.replicas.iter().enumerate() {
        let state = match r.state {
            SyncState::SendBulk => "send_bulk",
            SyncState::Online => "online",
        };
        let ip = r.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let lag = secs_since(r.ack_time, now);
        replicas.push((
            format!("slave{i}"),
            format!(
                "ip={ip},port={},state={state},offset={},lag={lag}",
                r.port, r.ack_offset
            ),
        ));
    }
    let backlog = node.feed.backlog();
    let mut tail: Vec<(&str, String)> = Vec::new();
    tail.extend([
        ("master_failover_state", "no-failover".to_string()),
        ("master_replid", repl.replid.clone()),
        ("master_replid2", repl.replid2.clone()),
        ("master_repl_offset", offset.to_string()),
        ("second_repl_offset", repl.second_offset.to_string()),
        (
            "repl_backlog_active",
            u8::from(backlog.is_some()).to_string(),
        ),
        ("repl_backlog_size", repl.backlog_size.to_string()),
        (
            "repl_backlog_first_byte_offset",
            backlog.map_or(0, |b| b.start() + 1).to_string(),
        ),
        (
            "repl_backlog_histlen",
            backlog.map_or(0, |b| b.len()).to_string(),
        ),
    ]);
    let named = |(k, v): (&str, String)| (k.to_string(), v);
    lines
        .into_iter()
        .map(named)
        .chain(replicas)
        .chain(tail.into_iter().map(named))
        .collect()
}

/// ROLE: `master offset [[ip port offset]...]`, or `slave host port
/// state offset`.
pub fn role(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let node = &*ctx.node;
    let offset = node.feed.offset();
    match master_addr(node) {
        Some((host, port)) => {
            let link = &node.repl.link;
            let state = match link.status {
                LinkStatus::Connect => "connect",
                LinkStatus::Connecting => "connecting",
                LinkStatus::Sync => "sync",
                LinkStatus::Connected => "connected",
            };
            let shown = if link.status == LinkStatus::Connected {
                i64::try_from(offset).unwrap_or(i64::MAX)
            } else {
                -1
            };
            encode::array_header(ctx.out, 5);
            encode::bulk(ctx.out, b"slave");
            encode::bulk(ctx.out, host.as_bytes());
            encode::integer(ctx.out, i64::from(port));
            encode::bulk(ctx.out, state.as_bytes());
            encode::integer(ctx.out, shown);
        }
        None => {
            let replicas: Vec<[String; 3]> = node
                .repl
                .replicas
                .iter()
                .filter(|r| r.state == SyncState::Online)
                .map(|r| {
                    [
                        r.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                        r.port.to_string(),
                        r.ack_offset.to_string(),
                    ]
                })
                .collect();
            encode::array_header(ctx.out, 3);
            encode::bulk(ctx.out, b"master");
            encode::integer(ctx.out, i64::try_from(offset).unwrap_or(i64::MAX));
            encode::array_header(ctx.out, replicas.len());
            for r in &replicas {
                encode::array_header(ctx.out, 3);
                for field in r {
                    encode::bulk(ctx.out, field.as_bytes());
                }
            }
        }
    }
    Ok(Outcome::Done)
}
