//! The values a key can hold, one variant per Redis data type.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

use super::set::MemberSet;
use super::zset::SortedSet;
use crate::node::cmd::CmdError;

/// The hasher of every map in the keyspace: fast, and seeded per process so
/// that clients cannot choose colliding keys.
pub type Hasher = ahash::RandomState;
pub type Map<K, V> = HashMap<K, V, Hasher>;
pub type Set<T> = HashSet<T, Hasher>;

/// One key's value.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Hash(Map<Bytes, Bytes>),
    /// A set; its own type gives SPOP and SRANDMEMBER O(1) random picks.
    Set(MemberSet),
    ZSet(SortedSet),
}

impl Value {
    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// True for an empty collection: Redis never keeps one, so a command
    /// that empties a collection deletes its key.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// Typed access: `value.as_list_mut()?` gives the list or Redis's WRONGTYPE
/// error. One macro keeps the five types' accessors identical.
macro_rules! typed_access {
    ($variant:ident, $ty:ty, $get:ident, $get_mut:ident) => {
        impl Value {
            /// The value if it is of this type, else `WRONGTYPE`.
            pub fn $get(&self) -> Result<&$ty, CmdError> {
                match self {
                    Value::$variant(v) => Ok(v),
                    _ => Err(CmdError::WRONGTYPE),
                }
            }

            /// The value if it is of this type, else `WRONGTYPE`.
            pub fn $get_mut(&mut self) -> Result<&mut $ty, CmdError> {
                match self {
                    Value::$variant(v) => Ok(v),
                    _ => Err(CmdError::WRONGTYPE),
                }
            }
        }
    };
}

typed_access!(Str, Bytes, as_str, as_str_mut);
typed_access!(List, VecDeque<Bytes>, as_list, as_list_mut);
typed_access!(Hash, Map<Bytes, Bytes>, as_hash, as_hash_mut);
typed_access!(Set, MemberSet, as_set, as_set_mut);
typed_access!(ZSet, SortedSet, as_zset, as_zset_mut);
