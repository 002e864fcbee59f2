//! An error reply, with Redis's texts for the common ones.

use std::borrow::Cow;

/// An error a command answers with: the text after the `-`, starting with
/// its code (`ERR`, `WRONGTYPE`, `MOVED`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(Cow<'static, str>);

impl CmdError {
    pub const WRONGTYPE: CmdError =
        CmdError::fixed("WRONGTYPE Operation against a key holding the wrong kind of value");
    pub const SYNTAX: CmdError = CmdError::fixed("ERR syntax error");
    pub const NOT_INTEGER: CmdError =
        CmdError::fixed("ERR value is not an integer or out of range");
    pub const NOT_FLOAT: CmdError = CmdError::fixed("ERR value is not a valid float");
    pub const OVERFLOW: CmdError = CmdError::fixed("ERR increment or decrement would overflow");
    pub const NO_SUCH_KEY: CmdError = CmdError::fixed("ERR no such key");
    pub const OUT_OF_RANGE: CmdError = CmdError::fixed("ERR index out of range");
    pub const CROSSSLOT: CmdError =
        CmdError::fixed("CROSSSLOT Keys in request don't hash to the same slot");

    pub const fn fixed(text: &'static str) -> CmdError {
        CmdError(Cow::Borrowed(text))
    }

    pub fn new(text: impl Into<String>) -> CmdError {
        CmdError(Cow::Owned(text.into()))
    }

    /// The text after the `-`.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
