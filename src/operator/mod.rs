//! The operator's tool, `slotway cluster create|check|reshard`: the job
//! `redis-cli --cluster` does, against real Redis nodes and Slotway's
//! built-in nodes alike. Only standard `CLUSTER` commands are used.
//!
//! - [`client`]: a small async RESP client, one command at a time.
//! - [`mod@create`]: join empty nodes into a cluster, slots split evenly.
//! - [`mod@check`]: compare every node's view; open slots, coverage, keys.
//! - [`mod@reshard`]: move slots (and their keys) from one master to another.
//!
//! Each operation prints human-readable lines to a [`Console`] and returns
//! a structured report, so that code other than the command line (the
//! launcher of the embedded cluster, tests) can use it silently.

pub mod check;
pub mod client;
mod console;
pub mod create;
mod error;
pub mod reshard;
mod survey;

use std::time::{Duration, Instant};

pub use check::{CheckReport, check};
pub use client::NodeClient;
pub use console::Console;
pub use create::{CreateOptions, CreateReport, create};
pub use error::OpError;
pub use reshard::{ReshardOptions, ReshardReport, reshard};

/// Default bound on connecting to a node and on each command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on each wait for the nodes to agree.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two looks at a cluster that is still converging.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Splits `host:port` (or `[v6]:port`) into the host, without brackets, and
/// the port.
///
/// # Errors
/// [`OpError::Usage`] when `addr` is not of that form or the port is 0.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), OpError> {
    let bad = || OpError::Usage(format!("invalid node address '{addr}': expected HOST:PORT"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

/// A bounded wait: call [`Waiter::again`] each time the condition does not
/// hold yet; it sleeps, or fails once the deadline has passed.
struct Waiter {
    what: String,
    timeout: Duration,
    deadline: Instant,
}

impl Waiter {
    fn new(what: impl Into<String>, timeout: Duration) -> Waiter {
        Waiter {
            what: what.into(),
            timeout,
            deadline: Instant::now() + timeout,
        }
    }

    /// Sleeps before the next look.
    ///
    /// # Errors
    /// [`OpError::WaitTimeout`] with `last` once the deadline has passed.
    async fn again(&self, last: String) -> Result<(), OpError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(OpError::WaitTimeout {
                what: self.what.clone(),
                timeout: self.timeout,
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL.min(self.deadline - now)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:7000").unwrap(),
            ("127.0.0.1", 7000)
        );
        assert_eq!(split_host_port("[::1]:7000").unwrap(), ("::1", 7000));
        assert_eq!(split_host_port("redis-1:6379").unwrap(), ("redis-1", 6379));
        for bad in ["7000", "host:", ":7000", "host:0", "host:70000", "host:x"] {
            assert!(split_host_port(bad).unwrap_err().is_usage(), "{bad}");
        }
    }
}
