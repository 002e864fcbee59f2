//! CONFIG GET / SET / RESETSTAT / REWRITE over a table of the settings
//! that tools read.
//!
//! CONFIG GET reports this node's values (its startup settings, its live
//! state) under Redis's names. CONFIG SET changes what the node can change
//! at run time (`cluster-require-full-coverage`, the failover settings,
//! `repl-backlog-size`, the replica and pub/sub classes of
//! `client-output-buffer-limit`, `appendonly` and the append-only file's
//! run-time settings) and accepts any setting set to the value
//! it already has (`CONFIG SET save ""`); any other change is refused with
//! a clear error instead of being stored and ignored.

use super::super::{Args, CmdError, CmdResult, Ctx, Outcome};
use crate::node::aof::{self, FsyncPolicy};
use crate::node::client::BufferLimit;
use crate::node::config::parse_size;
use crate::node::glob;
use crate::node::server::MAX_CLIENTS;
use crate::resp::encode;

/// How a setting reads its value.
type Getter = fn(&Ctx<'_>) -> String;

/// How a setting takes a new value (already known to differ from the
/// current one); the error is the reason Redis puts after " - ".
type Setter = fn(&mut Ctx<'_>, &str) -> Result<(), String>;

enum Change {
    /// Set at startup only (Redis: "can't set immutable config").
    Immutable,
    /// Redis can change it at run time; the built-in node cannot.
    Unsupported,
    Apply(Setter),
}

struct Setting {
    name: &'static str,
    get: Getter,
    change: Change,
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

fn parse_yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

/// Redis's default for the normal class, which the node does not limit.
const NORMAL_LIMIT: &str = "normal 0 0 0";

fn output_limits(ctx: &Ctx<'_>) -> String {
    let p = ctx.node.pubsub.limit;
    let r = ctx.node.repl.replica_limit;
    format!(
        "{NORMAL_LIMIT} slave {} {} {} pubsub {} {} {}",
        r.hard, r.soft, r.soft_seconds, p.hard, p.soft, p.soft_seconds
    )
}

/// `client-output-buffer-limit`: `<class> <hard> <soft> <seconds>`...
/// The node enforces the replica and pub/sub classes; the normal class
/// may only be given its current (Redis default) value.
fn set_output_limits(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.is_empty() || words.len() % 4 != 0 {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut pubsub = ctx.node.pubsub.limit;
    let mut replica = ctx.node.repl.replica_limit;
    for chunk in words.chunks(4) {
        let [class, hard, soft, secs] = chunk else {
            continue;
        };
        let class = class.to_ascii_lowercase();
        if !["normal", "slave", "replica", "pubsub"].contains(&class.as_str()) {
            return Err("Invalid client class specified in buffer limit configuration.".into());
        }
        let (Some(hard), Some(soft), Ok(secs)) = (parse_size(hard), parse_size(soft), secs.parse())
        else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            );
        };
        let limit = BufferLimit {
            hard: usize::try_from(hard).unwrap_or(usize::MAX),
            soft: usize::try_from(soft).unwrap_or(usize::MAX),
            soft_seconds: secs,
        };
        match class.as_str() {
            "pubsub" => pubsub = limit,
            "slave" | "replica" => replica = limit,
            _ if format!("{class} {hard} {soft} {secs}") == NORMAL_LIMIT => {}
            _ => {
                return Err(format!(
                    "the built-in node does not limit the {class} class; it can change \
                     the replica and pubsub classes"
                ));
            }
        }
    }
    ctx.node.pubsub.limit = pubsub;
    let node = &mut *ctx.node;
    node.repl.replica_limit = replica;
    node.repl.retain_backlog(&mut node.feed);
    Ok(())
}

/// `repl-backlog-size`: applies to the backlog at once if there is one.
fn set_backlog_size(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    let size = parse_size(value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| "argument must be a memory value".to_string())?;
    let node = &mut *ctx.node;
    node.repl.backlog_size = size;
    if node.feed.backlog().is_some() {
        node.feed.enable_backlog(size);
    }
    node.repl.retain_backlog(&mut node.feed);
    Ok(())
}

fn set_full_coverage(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.cluster.require_full_coverage = parse_yes_no(value)?;
    ctx.node.cluster.update_state();
    Ok(())
}

fn set_validity_factor(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.cluster.replica_validity_factor = value
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    Ok(())
}

fn set_appendonly(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    aof::set_enabled(ctx.node, parse_yes_no(value)?);
    Ok(())
}

fn set_appendfsync(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.aof.fsync = FsyncPolicy::parse(value)
        .ok_or("argument(s) must be one of the following: always, everysec, no")?;
    Ok(())
}

fn set_rewrite_percentage(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.aof.rewrite_percentage = value
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    Ok(())
}

fn set_migration_barrier(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.cluster.migration_barrier = value
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    Ok(())
}

fn set_replica_migration(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.cluster.allow_replica_migration = parse_yes_no(value)?;
    Ok(())
}

fn set_no_failover(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    let on = parse_yes_no(value)?;
    ctx.node.cluster.set_replica_no_failover(on);
    Ok(())
}

fn set_rewrite_min_size(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.aof.rewrite_min_size = parse_size(value).ok_or("argument must be a memory value")?;
    Ok(())
}

fn set_load_truncated(ctx: &mut Ctx<'_>, value: &str) -> Result<(), String> {
    ctx.node.aof.load_truncated = parse_yes_no(value)?;
    Ok(())
}

fn absolute_dir(ctx: &Ctx<'_>) -> String {
    let dir = &ctx.shared.config.dir;
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.clone())
        .display()
        .to_string()
}

/// Every setting CONFIG knows, by Redis name.
const SETTINGS: &[Setting] = &[
    Setting {
        name: "bind",
        get: |c| c.shared.config.bind.clone(),
        change: Change::Unsupported,
    },
    Setting {
        name: "port",
        get: |c| c.shared.config.port.to_string(),
        change: Change::Unsupported,
    },
    Setting {
        name: "dir",
        get: absolute_dir,
        change: Change::Unsupported,
    },
    Setting {
        name: "dbfilename",
        get: |_| "dump.rdb".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "save",
        get: |_| String::new(),
        change: Change::Unsupported,
    },
    Setting {
        name: "appendonly",
        get: |c| yes_no(c.node.aof.enabled),
        change: Change::Apply(set_appendonly),
    },
    Setting {
        name: "appendfilename",
        get: |c| c.shared.config.aof.filename.clone(),
        change: Change::Immutable,
    },
    Setting {
        name: "appenddirname",
        get: |c| c.shared.config.aof.dirname.clone(),
        change: Change::Immutable,
    },
    Setting {
        name: "appendfsync",
        get: |c| c.node.aof.fsync.as_str().into(),
        change: Change::Apply(set_appendfsync),
    },
    Setting {
        name: "auto-aof-rewrite-percentage",
        get: |c| c.node.aof.rewrite_percentage.to_string(),
        change: Change::Apply(set_rewrite_percentage),
    },
    Setting {
        name: "auto-aof-rewrite-min-size",
        get: |c| c.node.aof.rewrite_min_size.to_string(),
        change: Change::Apply(set_rewrite_min_size),
    },
    Setting {
        name: "aof-load-truncated",
        get: |c| yes_no(c.node.aof.load_truncated),
        change: Change::Apply(set_load_truncated),
    },
    Setting {
        // The base file is a command stream, never an RDB preamble.
        name: "aof-use-rdb-preamble",
        get: |_| "no".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "databases",
        get: |_| "16".into(),
        change: Change::Immutable,
    },
    Setting {
        name: "maxclients",
        get: |_| MAX_CLIENTS.to_string(),
        change: Change::Unsupported,
    },
    Setting {
        name: "maxmemory",
        get: |_| "0".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "maxmemory-policy",
        get: |_| "noeviction".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "timeout",
        get: |_| "0".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "tcp-keepalive",
        get: |_| "0".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "protected-mode",
        get: |_| "no".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "daemonize",
        get: |_| "no".into(),
        change: Change::Immutable,
    },
    Setting {
        name: "hz",
        get: |_| "10".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "io-threads",
        get: |_| "1".into(),
        change: Change::Immutable,
    },
    Setting {
        name: "requirepass",
        get: |_| String::new(),
        change: Change::Unsupported,
    },
    Setting {
        name: "masterauth",
        get: |_| String::new(),
        change: Change::Unsupported,
    },
    Setting {
        name: "proto-max-bulk-len",
        get: |_| crate::resp::DEFAULT_MAX_BULK_LEN.to_string(),
        change: Change::Unsupported,
    },
    Setting {
        name: "client-query-buffer-limit",
        get: |_| crate::node::server::MAX_BUFFERED_INPUT.to_string(),
        change: Change::Unsupported,
    },
    Setting {
        name: "client-output-buffer-limit",
        get: output_limits,
        change: Change::Apply(set_output_limits),
    },
    Setting {
        name: "notify-keyspace-events",
        get: |_| String::new(),
        change: Change::Unsupported,
    },
    Setting {
        name: "enable-debug-command",
        get: |_| "yes".into(),
        change: Change::Immutable,
    },
    Setting {
        name: "repl-backlog-size",
        get: |c| c.node.repl.backlog_size.to_string(),
        change: Change::Apply(set_backlog_size),
    },
    Setting {
        name: "min-replicas-to-write",
        get: |_| "0".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "replica-read-only",
        get: |_| "yes".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "slave-read-only",
        get: |_| "yes".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "cluster-enabled",
        get: |_| "yes".into(),
        change: Change::Immutable,
    },
    Setting {
        name: "cluster-config-file",
        get: |c| c.shared.config.cluster_config_file.display().to_string(),
        change: Change::Immutable,
    },
    Setting {
        name: "cluster-port",
        get: |c| c.shared.config.cluster_port.to_string(),
        change: Change::Immutable,
    },
    Setting {
        name: "cluster-node-timeout",
        get: |c| c.shared.config.node_timeout_ms.to_string(),
        change: Change::Unsupported,
    },
    Setting {
        name: "cluster-require-full-coverage",
        get: |c| yes_no(c.node.cluster.require_full_coverage),
        change: Change::Apply(set_full_coverage),
    },
    Setting {
        name: "cluster-announce-ip",
        get: |c| c.shared.config.announce_ip.clone().unwrap_or_default(),
        change: Change::Unsupported,
    },
    Setting {
        name: "cluster-allow-reads-when-down",
        get: |_| "no".into(),
        change: Change::Unsupported,
    },
    Setting {
        name: "cluster-replica-no-failover",
        get: |c| yes_no(c.node.cluster.me().nofailover),
        change: Change::Apply(set_no_failover),
    },
    Setting {
        name: "cluster-slave-no-failover",
        get: |c| yes_no(c.node.cluster.me().nofailover),
        change: Change::Apply(set_no_failover),
    },
    Setting {
        name: "cluster-replica-validity-factor",
        get: |c| c.node.cluster.replica_validity_factor.to_string(),
        change: Change::Apply(set_validity_factor),
    },
    Setting {
        name: "cluster-slave-validity-factor",
        get: |c| c.node.cluster.replica_validity_factor.to_string(),
        change: Change::Apply(set_validity_factor),
    },
    Setting {
        name: "cluster-migration-barrier",
        get: |c| c.node.cluster.migration_barrier.to_string(),
        change: Change::Apply(set_migration_barrier),
    },
    Setting {
        name: "cluster-allow-replica-migration",
        get: |c| yes_no(c.node.cluster.allow_replica_migration),
        change: Change::Apply(set_replica_migration),
    },
];

fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// CONFIG GET pattern [pattern ...]: every setting matching any pattern
/// (without case), once.
pub fn get(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let found: Vec<(&str, String)> = SETTINGS
        .iter()
        .filter(|s| {
            args.rest(2)
                .any(|p| glob::matches(p, s.name.as_bytes(), true))
        })
        .map(|s| (s.name, (s.get)(ctx)))
        .collect();
    ctx.array_header(found.len() * 2);
    for (name, value) in found {
        encode::bulk(ctx.out, name.as_bytes());
        encode::bulk(ctx.out, value.as_bytes());
    }
    Ok(Outcome::Done)
}

fn set_failed(name: &str, reason: &str) -> CmdError {
    CmdError::new(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
    ))
}

/// CONFIG SET name value [name value ...]: all or nothing.
pub fn set(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() % 2 != 0 {
        return Err(CmdError::SYNTAX);
    }
    let mut changes: Vec<(&'static Setting, String)> = Vec::new();
    for i in (2..args.len()).step_by(2) {
        let name = args.lossy(i);
        let Some(setting) = find(&name) else {
            return Err(CmdError::new(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )));
        };
        if changes.iter().any(|(s, _)| std::ptr::eq(*s, setting)) {
            return Err(set_failed(&name, "duplicate parameter"));
        }
        changes.push((setting, args.lossy(i + 1)));
    }
    // Check every change before applying any.
    for (setting, value) in &changes {
        if (setting.get)(ctx) == *value {
            continue;
        }
        match setting.change {
            Change::Immutable => {
                return Err(set_failed(setting.name, "can't set immutable config"));
            }
            Change::Unsupported => {
                return Err(set_failed(
                    setting.name,
                    "changing it is not supported by the built-in node",
                ));
            }
            Change::Apply(_) => {}
        }
    }
    for (setting, value) in &changes {
        if let Change::Apply(apply) = setting.change {
            if (setting.get)(ctx) != *value {
                apply(ctx, value).map_err(|reason| set_failed(setting.name, &reason))?;
            }
        }
    }
    ctx.ok()
}

/// CONFIG RESETSTAT: the counters INFO stats reports start again from 0.
pub fn resetstat(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let stats = &mut ctx.node.stats;
    stats.total_connections_received = 0;
    stats.total_commands_processed = 0;
    stats.keyspace_hits = 0;
    stats.keyspace_misses = 0;
    stats.net_input_bytes = 0;
    stats.net_output_bytes = 0;
    stats.rejected_connections = 0;
    ctx.node.db.expired_keys = 0;
    ctx.ok()
}

/// The node's settings come from its command line or config file and are
/// not written back.
pub fn rewrite(_ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    Err(CmdError::fixed(
        "ERR CONFIG REWRITE is not supported by the built-in node",
    ))
}
