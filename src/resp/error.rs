//! Protocol errors in client input, worded exactly as Redis words them.

use thiserror::Error;

/// A client sent bytes that are not a valid request. The session replies with
/// [`ProtocolError::to_reply`] and closes that client's connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("too big inline request")]
    TooBigInline,
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Only from a stream that holds RESP arrays alone (a file, a
    /// replication stream), where anything else means damage.
    #[error("expected '*', got '{0}'")]
    ExpectedMultibulk(char),
}

impl ProtocolError {
    /// The error reply Redis sends before it closes the connection.
    pub fn to_reply(&self) -> String {
        format!("-ERR Protocol error: {self}\r\n")
    }
}
