//! Finding a request's keys from its command's key specs, the way Redis 7's
//! `getKeysUsingKeySpecs` does (db.c).

use super::{BeginSearch, CommandSpec, FindKeys};
use crate::resp::Request;

/// The argument positions of a request's keys. One key, the common case,
/// needs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPositions {
    None,
    One(usize),
    Many(Vec<usize>),
}

impl KeyPositions {
    fn push(&mut self, pos: usize) {
        *self = match std::mem::replace(self, KeyPositions::None) {
            KeyPositions::None => KeyPositions::One(pos),
            KeyPositions::One(first) => KeyPositions::Many(vec![first, pos]),
            KeyPositions::Many(mut v) => {
                v.push(pos);
                KeyPositions::Many(v)
            }
        }
    }

    /// Positions in argument order.
    pub fn as_slice(&self) -> &[usize] {
        match self {
            KeyPositions::None => &[],
            KeyPositions::One(p) => std::slice::from_ref(p),
            KeyPositions::Many(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// A key count argument that is not a usable number. Rendered with the text
/// Redis uses for EVAL's `numkeys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    NotAnInteger,
    Negative,
    TooMany,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyError::NotAnInteger => "ERR value is not an integer or out of range",
            KeyError::Negative => "ERR Number of keys can't be negative",
            KeyError::TooMany => "ERR Number of keys can't be greater than number of args",
        })
    }
}

impl CommandSpec {
    /// The positions of the keys in `req`, following every key spec.
    ///
    /// Where this differs from Redis's `COMMAND GETKEYS` (checked in
    /// tests/command_table.rs): `not_key` specs count, because a cluster
    /// routes shard channels (SPUBLISH, SSUBSCRIBE) by slot; `unknown` specs
    /// are skipped where Redis falls back to a getkeys function (SORT's
    /// STORE key is not found); `incomplete` specs give what they find
    /// (MIGRATE ... "" ... KEYS a b yields the empty key too).
    ///
    /// # Errors
    /// [`KeyError`] when a key count argument is not a usable number.
    pub fn keys(&self, req: &Request) -> Result<KeyPositions, KeyError> {
        let argc = req.len();
        let mut out = KeyPositions::None;
        for spec in self.key_specs {
            let first = match spec.begin {
                BeginSearch::Index(i) => i,
                BeginSearch::Keyword {
                    keyword,
                    start_from,
                } => match find_keyword(req, keyword, start_from) {
                    Some(i) => i + 1,
                    None => continue,
                },
                BeginSearch::Unknown => continue,
            };
            if first >= argc {
                continue;
            }
            let (first, last, step) = match spec.find {
                FindKeys::Range {
                    last_key,
                    step,
                    limit,
                } => {
                    let last = if last_key >= 0 {
                        first as i64 + i64::from(last_key)
                    } else if limit <= 1 {
                        argc as i64 + i64::from(last_key)
                    } else {
                        first as i64 + ((argc - first) / limit) as i64 + i64::from(last_key)
                    };
                    (first, last, step.max(1))
                }
                FindKeys::Keynum {
                    keynum_idx,
                    first_key,
                    step,
                } => {
                    let arg = req.arg(first + keynum_idx).ok_or(KeyError::NotAnInteger)?;
                    let numkeys: i64 = std::str::from_utf8(arg)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or(KeyError::NotAnInteger)?;
                    if numkeys < 0 {
                        return Err(KeyError::Negative);
                    }
                    let start = first + first_key;
                    let step = step.max(1);
                    let last = start as i64 + (numkeys - 1) * step as i64;
                    if numkeys > 0 && last >= argc as i64 {
                        return Err(KeyError::TooMany);
                    }
                    (start, last, step)
                }
                FindKeys::Unknown => continue,
            };
            let last = last.min(argc as i64 - 1);
            let mut i = first as i64;
            while i <= last {
                out.push(i as usize);
                i += step as i64;
            }
        }
        Ok(out)
    }
}

fn find_keyword(req: &Request, keyword: &str, start_from: i32) -> Option<usize> {
    let argc = req.len() as i64;
    let matches = |i: i64| {
        req.arg(i as usize)
            .is_some_and(|a| a.eq_ignore_ascii_case(keyword.as_bytes()))
    };
    if start_from >= 0 {
        (i64::from(start_from)..argc)
            .find(|&i| matches(i))
            .map(|i| i as usize)
    } else {
        let start = argc + i64::from(start_from);
        (1..=start).rev().find(|&i| matches(i)).map(|i| i as usize)
    }
}
