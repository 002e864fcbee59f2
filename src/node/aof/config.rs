//! The append-only file's settings, named and defaulted as in redis.conf.

/// `appendfilename`: the prefix of every file of the AOF.
pub const DEFAULT_FILENAME: &str = "appendonly.aof";
/// `appenddirname`: the directory, inside `dir`, that holds the files.
pub const DEFAULT_DIRNAME: &str = "appendonlydir";
/// `auto-aof-rewrite-percentage`.
pub const DEFAULT_REWRITE_PERCENTAGE: u64 = 100;
/// `auto-aof-rewrite-min-size` (64mb).
pub const DEFAULT_REWRITE_MIN_SIZE: u64 = 64 * 1024 * 1024;

/// `appendfsync`: when written bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch of writes, before their replies go out.
    Always,
    /// Once a second: a crash loses at most about a second of writes.
    EverySec,
    /// Never: the operating system decides.
    No,
}

impl FsyncPolicy {
    /// The policy named `text` (without case), as redis.conf spells it.
    pub fn parse(text: &str) -> Option<FsyncPolicy> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// How a node keeps its append-only file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofConfig {
    /// `appendonly`.
    pub enabled: bool,
    /// `appendfsync`.
    pub fsync: FsyncPolicy,
    /// `appendfilename`.
    pub filename: String,
    /// `appenddirname`.
    pub dirname: String,
    /// `auto-aof-rewrite-percentage`: rewrite once the files grew by this
    /// much since the last rewrite (0: never on its own).
    pub rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size`: and only once they are this large.
    pub rewrite_min_size: u64,
    /// `aof-load-truncated`: a last command cut short (a crash in the
    /// middle of a write) is dropped and loading goes on.
    pub load_truncated: bool,
}

impl Default for AofConfig {
    fn default() -> Self {
        AofConfig {
            enabled: false,
            fsync: FsyncPolicy::EverySec,
            filename: DEFAULT_FILENAME.into(),
            dirname: DEFAULT_DIRNAME.into(),
            rewrite_percentage: DEFAULT_REWRITE_PERCENTAGE,
            rewrite_min_size: DEFAULT_REWRITE_MIN_SIZE,
            load_truncated: true,
        }
    }
}

/// A file or directory name that must stay inside `dir`: Redis refuses a
/// path for `appendfilename` and `appenddirname`. Whitespace is refused
/// too, so that every name reads back from the manifest as one word.
///
/// # Errors
/// The reason, in Redis's words where it has them.
pub fn plain_name(what: &str, value: &str) -> Result<String, String> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(format!("{what} can't be empty, '.' or '..'"));
    }
    if value.contains('/') || value.contains('\\') {
        return Err(format!("{what} can't be a path, just a name"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{what} can't contain spaces"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policies_by_name() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
            assert_eq!(FsyncPolicy::parse(policy.as_str()), Some(policy));
        }
        assert_eq!(FsyncPolicy::parse("EVERYSEC"), Some(FsyncPolicy::EverySec));
        assert_eq!(FsyncPolicy::parse("sometimes"), None);
        assert_eq!(AofConfig::default().fsync, FsyncPolicy::EverySec);
    }

    #[test]
    fn names_stay_inside_the_directory() {
        assert_eq!(plain_name("x", "appendonly.aof").unwrap(), "appendonly.aof");
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\nb"] {
            assert!(plain_name("x", bad).is_err(), "{bad:?}");
        }
    }
}
