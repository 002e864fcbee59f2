//! INFO: the sections and fields Redis 7.0 reports, with this node's
//! values.
//!
//! Where the node keeps no such number the field is left out rather than
//! made up (commandstats, errorstats and latencystats are not kept).
//! Memory is measured from outside: `used_memory` is the process's resident
//! set size (the node does not count its allocations), so it equals
//! `used_memory_rss`.

use std::fmt::Write as _;
use std::sync::OnceLock;

use super::super::{Args, CmdResult, Ctx};
use super::started_unix_secs;
use crate::node::pubsub::Kind;
use crate::node::replication::info::info_lines;

/// Sections in the order Redis prints them, and whether plain INFO (the
/// `default` set) includes them.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("cluster", true),
    ("keyspace", true),
];

/// A per-process id, as Redis's `run_id`.
fn run_id() -> &'static str {
    static RUN_ID: OnceLock<String> = OnceLock::new();
    RUN_ID.get_or_init(|| crate::node::cluster::random_node_id().to_string())
}

pub fn info(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let asked: Vec<String> = args
        .rest(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = asked.is_empty()
        || asked
            .iter()
            .any(|a| a == "default" || a == "all" || a == "everything");
    let mut text = String::new();
    for &(name, default) in SECTIONS {
        if !(all && default || asked.iter().any(|a| a == name)) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section(ctx, name, &mut text);
    }
    ctx.bulk(text.as_bytes())
}

/// Appends `# Title` and the `key:value` lines of section `name`.
fn section(ctx: &Ctx<'_>, name: &str, out: &mut String) {
    let mut lines: Vec<(&str, String)> = Vec::new();
    let title = match name {
        "server" => {
            server(ctx, &mut lines);
            "Server"
        }
        "clients" => {
            let stats = &ctx.node.stats;
            // Replicas' links are not counted, as in Redis.
            let clients = ctx
                .node
                .clients
                .len()
                .saturating_sub(ctx.node.repl.replicas.len());
            lines.push(("connected_clients", clients.to_string()));
            lines.push(("maxclients", crate::node::server::MAX_CLIENTS.to_string()));
            lines.push(("blocked_clients", stats.blocked_clients.to_string()));
            lines.push(("tracking_clients", "0".into()));
            "Clients"
        }
        "memory" => {
            memory(&mut lines);
            "Memory"
        }
        "persistence" => {
            persistence(ctx, &mut lines);
            "Persistence"
        }
        "stats" => {
            stats(ctx, &mut lines);
            "Stats"
        }
        "replication" => {
            // Its keys are not all fixed (`slave0`...): written here.
            let _ = write!(out, "# Replication\r\n");
            for (key, value) in info_lines(ctx.node, std::time::Instant::now()) {
                let _ = write!(out, "{key}:{value}\r\n");
            }
            return;
        }
        "cpu" => {
            cpu(&mut lines);
            "CPU"
        }
        "modules" => "Modules",
        "cluster" => {
            lines.push(("cluster_enabled", "1".into()));
            "Cluster"
        }
        "keyspace" => {
            let keys = ctx.node.db.len();
            if keys > 0 {
                let expires = ctx.node.db.volatile_len();
                lines.push(("db0", format!("keys={keys},expires={expires},avg_ttl=0")));
            }
            "Keyspace"
        }
        _ => return,
    };
    let _ = write!(out, "# {title}\r\n");
    for (key, value) in lines {
        let _ = write!(out, "{key}:{value}\r\n");
    }
}

fn server(ctx: &Ctx<'_>, lines: &mut Vec<(&'static str, String)>) {
    let uptime = ctx.shared.started.elapsed().as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let os = match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(release) => format!("Linux {} {}", release.trim(), std::env::consts::ARCH),
        Err(_) => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    };
    let multiplexing = if cfg!(target_os = "linux") {
        "epoll"
    } else {
        "kqueue"
    };
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    lines.extend([
        ("redis_version", crate::command::REDIS_VERSION.to_string()),
        ("slotway_version", env!("CARGO_PKG_VERSION").to_string()),
        ("redis_git_sha1", "00000000".into()),
        ("redis_git_dirty", "0".into()),
        ("redis_mode", "cluster".into()),
        ("os", os),
        ("arch_bits", usize::BITS.to_string()),
        ("multiplexing_api", multiplexing.into()),
        ("process_id", std::process::id().to_string()),
        ("process_supervised", "no".into()),
        ("run_id", run_id().to_string()),
        ("tcp_port", ctx.shared.config.port.to_string()),
        ("server_time_usec", now.as_micros().to_string()),
        ("uptime_in_seconds", uptime.to_string()),
        ("uptime_in_days", (uptime / 86400).to_string()),
        ("hz", "10".into()),
        ("configured_hz", "10".into()),
        ("executable", executable),
        ("io_threads_active", "0".into()),
    ]);
}

/// `1.59M`, as Redis's `bytesToHuman`.
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [(f64, &str); 5] = [
        (1024.0, "K"),
        (1024.0 * 1024.0, "M"),
        (1024.0 * 1024.0 * 1024.0, "G"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0, "T"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0, "P"),
    ];
    if n < 1024 {
        return format!("{n}B");
    }
    let x = n as f64;
    let (div, unit) = UNITS
        .iter()
        .take_while(|(div, _)| x >= *div)
        .last()
        .copied()
        .unwrap_or((1024.0, "K"));
    format!("{:.2}{unit}", x / div)
}

/// A `Key:   123 kB` line of a /proc file, in bytes.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line
        .get(key.len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn memory(lines: &mut Vec<(&'static str, String)>) {
    let rss = proc_kb("/proc/self/status", "VmRSS:").unwrap_or(0);
    let peak = proc_kb("/proc/self/status", "VmHWM:").unwrap_or(rss);
    let system = proc_kb("/proc/meminfo", "MemTotal:").unwrap_or(0);
    lines.extend([
        ("used_memory", rss.to_string()),
        ("used_memory_human", bytes_to_human(rss)),
        ("used_memory_rss", rss.to_string()),
        ("used_memory_rss_human", bytes_to_human(rss)),
        ("used_memory_peak", peak.to_string()),
        ("used_memory_peak_human", bytes_to_human(peak)),
        ("total_system_memory", system.to_string()),
        ("total_system_memory_human", bytes_to_human(system)),
        ("maxmemory", "0".into()),
        ("maxmemory_human", "0B".into()),
        ("maxmemory_policy", "noeviction".into()),
        ("mem_fragmentation_ratio", "1.00".into()),
        ("mem_allocator", "libc".into()),
    ]);
}

fn persistence(ctx: &Ctx<'_>, lines: &mut Vec<(&'static str, String)>) {
    lines.extend([
        ("loading", "0".into()),
        ("async_loading", "0".into()),
        (
            "rdb_changes_since_last_save",
            ctx.node.stats.dirty.to_string(),
        ),
        ("rdb_bgsave_in_progress", "0".into()),
        ("rdb_last_save_time", started_unix_secs(ctx).to_string()),
        ("rdb_last_bgsave_status", "ok".into()),
        ("rdb_last_bgsave_time_sec", "-1".into()),
        ("rdb_current_bgsave_time_sec", "-1".into()),
        ("rdb_saves", "0".into()),
    ]);
    lines.extend(crate::node::aof::info_fields(ctx.node));
}

fn stats(ctx: &Ctx<'_>, lines: &mut Vec<(&'static str, String)>) {
    let s = &ctx.node.stats;
    let sync = ctx.node.repl.stats;
    let pubsub = &ctx.node.pubsub;
    lines.extend([
        (
            "total_connections_received",
            s.total_connections_received.to_string(),
        ),
        (
            "total_commands_processed",
            s.total_commands_processed.to_string(),
        ),
        (
            "instantaneous_ops_per_sec",
            s.instantaneous.ops_per_sec().to_string(),
        ),
        ("total_net_input_bytes", s.net_input_bytes.to_string()),
        ("total_net_output_bytes", s.net_output_bytes.to_string()),
        (
            "instantaneous_input_kbps",
            format!("{:.2}", s.instantaneous.input_kbps()),
        ),
        (
            "instantaneous_output_kbps",
            format!("{:.2}", s.instantaneous.output_kbps()),
        ),
        ("rejected_connections", s.rejected_connections.to_string()),
        ("sync_full", sync.full.to_string()),
        ("sync_partial_ok", sync.partial_ok.to_string()),
        ("sync_partial_err", sync.partial_err.to_string()),
        ("expired_keys", ctx.node.db.expired_keys.to_string()),
        ("evicted_keys", "0".into()),
        ("keyspace_hits", s.keyspace_hits.to_string()),
        ("keyspace_misses", s.keyspace_misses.to_string()),
        (
            "pubsub_channels",
            pubsub.channel_count(Kind::Channel).to_string(),
        ),
        ("pubsub_patterns", pubsub.pattern_count().to_string()),
        (
            "pubsubshard_channels",
            pubsub.channel_count(Kind::Shard).to_string(),
        ),
        ("latest_fork_usec", "0".into()),
        ("total_forks", "0".into()),
    ]);
}

/// CPU seconds of this process from /proc/self/stat (ticks of 1/100 s).
fn cpu(lines: &mut Vec<(&'static str, String)>) {
    let ticks: Vec<u64> = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_string();
            Some(
                after
                    .split_whitespace()
                    .skip(11)
                    .take(4)
                    .map(|t| t.parse().unwrap_or(0))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let secs = |i: usize| {
        let t = ticks.get(i).copied().unwrap_or(0);
        format!("{}.{:06}", t / 100, (t % 100) * 10_000)
    };
    lines.extend([
        ("used_cpu_sys", secs(1)),
        ("used_cpu_user", secs(0)),
        ("used_cpu_sys_children", secs(3)),
        ("used_cpu_user_children", secs(2)),
    ]);
}

#[cfg(test)]
mod tests {
    use super::bytes_to_human;

    #[test]
    fn human_sizes_as_redis_prints_them() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1_664_912), "1.59M");
        assert_eq!(bytes_to_human(25_276_510_208), "23.54G");
    }
}
