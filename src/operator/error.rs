//! What can go wrong while operating a cluster: a node that cannot be
//! reached or answers with an error, a cluster not in the state an operation
//! needs, or an operator who did not confirm the plan.

use std::time::Duration;

use thiserror::Error;

/// Every failure of the operator tool. Each message names the node and the
/// command involved, so it can be shown to the operator as it is.
#[derive(Debug, Error)]
pub enum OpError {
    /// The command line or an argument is malformed (`EX_USAGE`).
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: {command}: no reply within {timeout:?}")]
    Timeout {
        addr: String,
        command: String,
        timeout: Duration,
    },
    #[error("{addr}: {command}: {source}")]
    Io {
        addr: String,
        command: String,
        source: std::io::Error,
    },
    /// The node closed the connection before it replied.
    #[error("{addr}: {command}: connection closed by the node")]
    Closed { addr: String, command: String },
    /// The node sent bytes that are not RESP.
    #[error("{addr}: {command}: bad reply: {reason}")]
    Protocol {
        addr: String,
        command: String,
        reason: String,
    },
    /// The node answered with an error reply; `message` is Redis's text
    /// without the leading `-`.
    #[error("{addr}: {command}: {message}")]
    Redis {
        addr: String,
        command: String,
        message: String,
    },
    /// The node answered, but not with the shape the command promises.
    #[error("{addr}: {command}: unexpected reply: {reply}")]
    Unexpected {
        addr: String,
        command: String,
        reply: String,
    },
    /// The cluster or a node is not in a state the operation accepts.
    #[error("{0}")]
    Refused(String),
    /// A bounded wait ran out; `last` says what was still missing.
    #[error("{what}: not done within {timeout:?} (last: {last})")]
    WaitTimeout {
        what: String,
        timeout: Duration,
        last: String,
    },
    /// Confirmation was needed and could not be asked for.
    #[error("{0}")]
    NotConfirmed(String),
    /// The operator answered something other than `yes`.
    #[error("aborted: the plan was not accepted")]
    Aborted,
}

impl OpError {
    /// Redis's error text, when the node replied with an error.
    pub fn redis_message(&self) -> Option<&str> {
        match self {
            OpError::Redis { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True for `Usage`: the caller exits with `EX_USAGE` (64).
    pub fn is_usage(&self) -> bool {
        matches!(self, OpError::Usage(_))
    }
}
