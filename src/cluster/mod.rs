//! Cluster vocabulary shared by the proxy and the built-in nodes.

pub mod nodes;
pub mod redirect;
pub mod slot;
pub mod slot_bitmap;

pub use slot::{SLOT_COUNT, key_slot};
pub use slot_bitmap::SlotBitmap;
