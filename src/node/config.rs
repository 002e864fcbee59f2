//! How a built-in node is started: the flags `redis-server` takes for a
//! cluster node, from the command line or a `redis.conf`-style file.

use std::path::PathBuf;

use super::aof::config::{AofConfig, FsyncPolicy, plain_name};

/// A node's startup settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address clients and peers connect to.
    pub bind: String,
    pub port: u16,
    /// The cluster bus port (Redis: port + 10000).
    pub cluster_port: u16,
    /// Where the cluster configuration is saved, relative to `dir`.
    pub cluster_config_file: PathBuf,
    /// Working directory for the cluster config and the append-only file.
    pub dir: PathBuf,
    /// `appendonly` and the settings of the append-only file.
    pub aof: AofConfig,
    /// Milliseconds without an answer before a peer is suspected failing.
    pub node_timeout_ms: u64,
    /// `cluster-require-full-coverage`: refuse queries while any slot is
    /// unserved.
    pub require_full_coverage: bool,
    /// The address announced to peers and in redirects (defaults to `bind`).
    pub announce_ip: Option<String>,
    /// `cluster-replica-validity-factor`: a replica disconnected from its
    /// master for longer than node_timeout times this does not fail over
    /// by itself (0: it always may).
    pub replica_validity_factor: u64,
    /// `cluster-allow-replica-migration`: a master whose slots all moved
    /// to another master follows it as a replica.
    pub allow_replica_migration: bool,
    /// `cluster-replica-no-failover`: as a replica, never start an election
    /// (manual failovers still work).
    pub replica_no_failover: bool,
    /// `cluster-migration-barrier`: a replica moves to an orphaned master
    /// only if its own keeps more than this many working replicas.
    pub migration_barrier: u64,
    /// `repl-backlog-size`: stream bytes kept for replicas that reconnect.
    pub repl_backlog_size: usize,
}

/// Redis's default `repl-backlog-size` (1mb).
pub const DEFAULT_REPL_BACKLOG_SIZE: usize = 1024 * 1024;

/// A size as Redis's `memtoull` reads it: bytes, or with k/kb/m/mb/g/gb.
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = lower.get(digits.len()..)?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(mul)
}

impl NodeConfig {
    /// Defaults for a node on `port`, as redis-server has them.
    pub fn for_port(port: u16) -> Self {
        NodeConfig {
            bind: "127.0.0.1".into(),
            port,
            cluster_port: port.wrapping_add(10000),
            cluster_config_file: PathBuf::from(format!("nodes-{port}.conf")),
            dir: PathBuf::from("."),
            aof: AofConfig::default(),
            node_timeout_ms: 15000,
            require_full_coverage: true,
            announce_ip: None,
            replica_validity_factor: crate::node::cluster::failover::DEFAULT_VALIDITY_FACTOR,
            allow_replica_migration: true,
            replica_no_failover: false,
            migration_barrier: crate::node::cluster::replica_migration::DEFAULT_BARRIER,
            repl_backlog_size: DEFAULT_REPL_BACKLOG_SIZE,
        }
    }

    /// The IP this node tells others to use.
    pub fn announced_ip(&self) -> &str {
        match &self.announce_ip {
            Some(ip) => ip,
            None if self.bind == "0.0.0.0" || self.bind == "::" => "127.0.0.1",
            None => &self.bind,
        }
    }

    /// Full path of the cluster config file.
    pub fn cluster_config_path(&self) -> PathBuf {
        self.dir.join(&self.cluster_config_file)
    }
}

/// A setting that cannot be applied: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn yes_no(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError {
            key: key.into(),
            reason: format!("argument must be 'yes' or 'no', not '{value}'"),
        }),
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError {
        key: key.into(),
        reason: format!("'{value}' is not a valid number"),
    })
}

fn invalid(key: &str, reason: String) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason,
    }
}

impl NodeConfig {
    /// Applies one `redis.conf` directive. `port` also moves the default
    /// cluster port and config file name, unless they were set explicitly
    /// (the caller applies `port` first).
    ///
    /// # Errors
    /// [`ConfigError`] for an unknown key or a bad value.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key.to_ascii_lowercase().replace('_', "-").as_str() {
            "port" => {
                let port: u16 = number(key, value)?;
                let defaults = NodeConfig::for_port(self.port);
                if self.cluster_port == defaults.cluster_port {
                    self.cluster_port = port.wrapping_add(10000);
                }
                if self.cluster_config_file == defaults.cluster_config_file {
                    self.cluster_config_file = NodeConfig::for_port(port).cluster_config_file;
                }
                self.port = port;
            }
            "bind" => {
                // redis.conf allows several addresses; the first one is used.
                let first = value.split_whitespace().next().unwrap_or("127.0.0.1");
                self.bind = first.trim_start_matches('-').to_string();
            }
            "cluster-port" => self.cluster_port = number(key, value)?,
            "cluster-config-file" => self.cluster_config_file = PathBuf::from(value),
            "dir" => self.dir = PathBuf::from(value),
            "appendonly" => self.aof.enabled = yes_no(key, value)?,
            "appendfsync" => {
                self.aof.fsync = FsyncPolicy::parse(value).ok_or_else(|| {
                    invalid(
                        key,
                        format!("must be always, everysec or no, not '{value}'"),
                    )
                })?;
            }
            "appendfilename" => {
                self.aof.filename =
                    plain_name("appendfilename", value).map_err(|r| invalid(key, r))?;
            }
            "appenddirname" => {
                self.aof.dirname =
                    plain_name("appenddirname", value).map_err(|r| invalid(key, r))?;
            }
            "auto-aof-rewrite-percentage" => self.aof.rewrite_percentage = number(key, value)?,
            "auto-aof-rewrite-min-size" => {
                self.aof.rewrite_min_size = parse_size(value)
                    .ok_or_else(|| invalid(key, format!("'{value}' is not a valid size")))?;
            }
            "aof-load-truncated" => self.aof.load_truncated = yes_no(key, value)?,
            "cluster-node-timeout" => self.node_timeout_ms = number(key, value)?,
            "cluster-require-full-coverage" => self.require_full_coverage = yes_no(key, value)?,
            "cluster-announce-ip" => self.announce_ip = Some(value.to_string()),
            "cluster-replica-validity-factor" | "cluster-slave-validity-factor" => {
                self.replica_validity_factor = number(key, value)?;
            }
            "cluster-allow-replica-migration" => {
                self.allow_replica_migration = yes_no(key, value)?;
            }
            "cluster-replica-no-failover" | "cluster-slave-no-failover" => {
                self.replica_no_failover = yes_no(key, value)?;
            }
            "cluster-migration-barrier" => self.migration_barrier = number(key, value)?,
            "repl-backlog-size" => {
                self.repl_backlog_size = parse_size(value)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| ConfigError {
                        key: key.into(),
                        reason: format!("'{value}' is not a valid size"),
                    })?;
            }
            "cluster-enabled" => {
                if !yes_no(key, value)? {
                    return Err(ConfigError {
                        key: key.into(),
                        reason: "a built-in node always runs in cluster mode".into(),
                    });
                }
            }
            // Accepted for compatibility with redis.conf files written for
            // redis-server; they change nothing here.
            "daemonize" | "protected-mode" | "save" | "logfile" | "loglevel" | "dbfilename" => {}
            _ => {
                return Err(ConfigError {
                    key: key.into(),
                    reason: "unknown setting".into(),
                });
            }
        }
        Ok(())
    }

    /// Applies a `redis.conf`-style text: one `key value` per line, `#`
    /// comments, quoted values.
    ///
    /// # Errors
    /// The first bad line, numbered from 1.
    pub fn apply_conf(&mut self, text: &str) -> Result<(), ConfigError> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let value = value.trim().trim_matches('"');
            self.apply(key, value).map_err(|e| ConfigError {
                key: format!("line {}: {}", n + 1, e.key),
                reason: e.reason,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("1mb"), Some(1024 * 1024));
        assert_eq!(parse_size("256kb"), Some(256 * 1024));
        assert_eq!(parse_size("1k"), Some(1000));
        assert_eq!(parse_size("33554432"), Some(33_554_432));
        assert_eq!(parse_size("1GB"), Some(1024 * 1024 * 1024));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1tb"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn port_moves_the_defaults_that_follow_it() {
        let mut c = NodeConfig::for_port(6379);
        c.apply("port", "7001").unwrap();
        assert_eq!(c.cluster_port, 17001);
        assert_eq!(c.cluster_config_file, PathBuf::from("nodes-7001.conf"));
        let mut c = NodeConfig::for_port(6379);
        c.apply("cluster-port", "9000").unwrap();
        c.apply("port", "7001").unwrap();
        assert_eq!(c.cluster_port, 9000);
    }

    #[test]
    fn conf_text_is_applied_and_errors_name_the_line() {
        let mut c = NodeConfig::for_port(6379);
        c.apply_conf(
            "# a node\nport 7002\ncluster-enabled yes\nappendonly no\ncluster-node-timeout 2000\n",
        )
        .unwrap();
        assert_eq!(
            (c.port, c.aof.enabled, c.node_timeout_ms),
            (7002, false, 2000)
        );
        let err = c.apply_conf("port 1\nfrobnicate 3\n").unwrap_err();
        assert_eq!(err.key, "line 2: frobnicate");
        assert!(c.apply("appendonly", "maybe").is_err());
        assert!(c.apply("cluster-enabled", "no").is_err());
        c.apply("repl-backlog-size", "16kb").unwrap();
        assert_eq!(c.repl_backlog_size, 16 * 1024);
        assert!(c.apply("repl-backlog-size", "0").is_err());
    }

    #[test]
    fn failover_settings_take_redis_names_and_aliases() {
        let mut c = NodeConfig::for_port(6379);
        assert_eq!(
            (
                c.replica_validity_factor,
                c.allow_replica_migration,
                c.replica_no_failover
            ),
            (10, true, false)
        );
        c.apply_conf(
            "cluster-replica-validity-factor 0\ncluster-allow-replica-migration no\n\
             cluster-slave-no-failover yes\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.replica_validity_factor,
                c.allow_replica_migration,
                c.replica_no_failover
            ),
            (0, false, true)
        );
        c.apply("cluster-slave-validity-factor", "3").unwrap();
        assert_eq!(c.replica_validity_factor, 3);
        assert_eq!(c.migration_barrier, 1);
        c.apply("cluster-migration-barrier", "2").unwrap();
        assert_eq!(c.migration_barrier, 2);
        assert!(c.apply("cluster-replica-validity-factor", "-1").is_err());
        assert!(c.apply("cluster-allow-replica-migration", "maybe").is_err());
    }

    #[test]
    fn append_only_settings_as_redis_conf_writes_them() {
        let mut c = NodeConfig::for_port(6379);
        assert_eq!(c.aof, AofConfig::default());
        c.apply_conf(
            "appendonly yes\nappendfsync always\nappendfilename \"my.aof\"\n\
             appenddirname aofdir\nauto-aof-rewrite-percentage 50\n\
             auto-aof-rewrite-min-size 1mb\naof-load-truncated no\n",
        )
        .unwrap();
        let expected = AofConfig {
            enabled: true,
            fsync: FsyncPolicy::Always,
            filename: "my.aof".into(),
            dirname: "aofdir".into(),
            rewrite_percentage: 50,
            rewrite_min_size: 1024 * 1024,
            load_truncated: false,
        };
        assert_eq!(c.aof, expected);
        for (key, value) in [
            ("appendfsync", "sometimes"),
            ("appendfilename", "../x.aof"),
            ("appenddirname", "a/b"),
            ("auto-aof-rewrite-percentage", "-1"),
            ("auto-aof-rewrite-min-size", "lots"),
            ("aof-load-truncated", "maybe"),
        ] {
            assert!(c.apply(key, value).is_err(), "{key} {value}");
        }
        assert_eq!(c.aof, expected, "a refused value changes nothing");
    }
}
