//! Cluster errors a node can answer with, and what each one means.
//!
//! Errors are classified by their code (the first word, the part RESP
//! reserves for machines), never by searching the human-readable text.

/// The cluster meaning of an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// `MOVED <slot> <host:port>`: the slot lives elsewhere for good.
    Moved { slot: u16, addr: String },
    /// `ASK <slot> <host:port>`: ask that node once, behind `ASKING`.
    Ask { slot: u16, addr: String },
    /// `TRYAGAIN`: a multi-key request during a slot migration.
    TryAgain,
    /// `CLUSTERDOWN`: the cluster is not serving this slot right now.
    ClusterDown,
    /// `LOADING`: the node is loading its dataset.
    Loading,
    /// `MASTERDOWN`: a replica whose master link is down.
    MasterDown,
}

/// Redis's error text for a request whose keys span slots.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Reads an error reply (with or without its leading `-` and trailing CRLF)
/// as a cluster error; `None` for any other error.
///
/// An empty host in a redirect (`MOVED 3999 :6380`, sent when the node does
/// not know its own address) is returned as is; the caller fills in the host
/// of the node that sent it.
pub fn parse(reply: &[u8]) -> Option<ClusterError> {
    let text = reply.strip_prefix(b"-").unwrap_or(reply);
    let text = text.strip_suffix(b"\r\n").unwrap_or(text);
    let mut words = text.split(|&b| b == b' ');
    let code = words.next()?;
    match code {
        b"MOVED" | b"ASK" => {
            let slot = std::str::from_utf8(words.next()?)
                .ok()?
                .parse::<u16>()
                .ok()?;
            if usize::from(slot) >= super::SLOT_COUNT {
                return None;
            }
            let addr = String::from_utf8(words.next()?.to_vec()).ok()?;
            if code == b"MOVED" {
                Some(ClusterError::Moved { slot, addr })
            } else {
                Some(ClusterError::Ask { slot, addr })
            }
        }
        b"TRYAGAIN" => Some(ClusterError::TryAgain),
        b"CLUSTERDOWN" => Some(ClusterError::ClusterDown),
        b"LOADING" => Some(ClusterError::Loading),
        b"MASTERDOWN" => Some(ClusterError::MasterDown),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects() {
        assert_eq!(
            parse(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(ClusterError::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            parse(b"ASK 12182 [::1]:7001"),
            Some(ClusterError::Ask {
                slot: 12182,
                addr: "[::1]:7001".into()
            })
        );
        assert_eq!(parse(b"-MOVED 16384 127.0.0.1:1\r\n"), None);
        assert_eq!(parse(b"-MOVED x 127.0.0.1:1\r\n"), None);
    }

    #[test]
    fn retryable_codes() {
        assert_eq!(
            parse(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(ClusterError::TryAgain)
        );
        assert_eq!(
            parse(b"-CLUSTERDOWN Hash slot not served\r\n"),
            Some(ClusterError::ClusterDown)
        );
        assert_eq!(
            parse(b"-LOADING Redis is loading the dataset in memory\r\n"),
            Some(ClusterError::Loading)
        );
        assert_eq!(parse(b"-ERR MOVED is not a code here\r\n"), None);
        assert_eq!(parse(b"-WRONGTYPE Operation against a key\r\n"), None);
    }
}
