//! The proxy role.
