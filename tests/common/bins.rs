//! Finding `redis-server` and `redis-cli`, and deciding whether a test that
//! needs them skips or fails when they are missing.

use std::path::PathBuf;

/// Where `redis-server` and `redis-cli` are.
#[derive(Debug, Clone)]
pub struct RedisBins {
    pub server: PathBuf,
    pub cli: PathBuf,
}

impl RedisBins {
    /// Finds both binaries: `REDIS_SERVER_BIN` / `REDIS_CLI_BIN` if set, else
    /// on `PATH` or in the usual system directories.
    ///
    /// # Errors
    /// `<name> not installed`, with the override if one was set.
    pub fn locate() -> Result<RedisBins, String> {
        Ok(RedisBins {
            server: find_bin("REDIS_SERVER_BIN", "redis-server")?,
            cli: find_bin("REDIS_CLI_BIN", "redis-cli")?,
        })
    }
}

fn find_bin(env_var: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{name} not installed ({env_var}={} does not exist)",
                path.display()
            ))
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .chain(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("{name} not installed"))
}

/// True when tests must fail rather than skip without Redis (or the client
/// libraries of tests/clients/): `CI` or
/// `REQUIRE_REDIS_SERVER` set to anything but empty, `0` or `false`.
pub(super) fn redis_required() -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    set("CI") || set("REQUIRE_REDIS_SERVER")
}

/// The Redis binaries, or `None` after printing `SKIP: redis-server not
/// installed`; a test that gets `None` returns at once.
///
/// # Panics
/// When a binary is missing and `CI` (or `REQUIRE_REDIS_SERVER`) is set: in
/// CI a test that needs a real cluster fails instead of passing unseen.
pub fn require_redis() -> Option<RedisBins> {
    match RedisBins::locate() {
        Ok(bins) => Some(bins),
        Err(missing) if redis_required() => panic!(
            "{missing}, and CI is set, so this test fails instead of skipping. \
             Install Debian's redis-server and redis-tools (`bash .ci/install-deps`), \
             or point REDIS_SERVER_BIN / REDIS_CLI_BIN at the binaries."
        ),
        Err(missing) => {
            println!("SKIP: {missing}");
            None
        }
    }
}
