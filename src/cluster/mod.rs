//! Cluster vocabulary shared by the proxy and the built-in nodes.

pub mod nodes;
pub mod redirect;
pub mod slot;

pub use slot::{SLOT_COUNT, key_slot};
