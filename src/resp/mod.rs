//! RESP, the Redis wire protocol: client requests in, backend replies out.
//!
//! Requests are decoded zero-copy: a [`Request`] is the raw bytes of one
//! command (always in multibulk form) plus the offsets of its arguments, so the
//! proxy forwards exactly the bytes the client sent. Replies are scanned just
//! far enough to find where each one ends ([`reply::reply_len`]); only replies
//! the proxy must look inside (errors, multi-key merges) are parsed into a
//! [`Frame`].

pub mod encode;
pub mod error;
pub mod frame;
pub mod reply;
pub mod request;
pub mod resp3;

pub use error::ProtocolError;
pub use frame::Frame;
pub use request::{Request, RequestDecoder};

/// Redis's default `proto-max-bulk-len`: 512 MB.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Redis's limit on the number of elements in a client multibulk request.
pub const DEFAULT_MAX_MULTIBULK_LEN: usize = 1024 * 1024 * 1024;
/// Redis's limit on an inline request (`PING\r\n`), `PROTO_INLINE_MAX_SIZE`.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
