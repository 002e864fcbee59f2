//! Commands learned from a cluster node's `COMMAND INFO`: those the static
//! table lacks (a newer Redis, a module), with the key specs the node
//! reports, so they can be routed without a new release.
//!
//! A learned entry lives as long as the process (it is leaked once, when
//! first learned): routing hands out `&'static CommandSpec` for table and
//! learned commands alike, and a backend has a bounded set of commands.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{BeginSearch, CommandSpec, FindKeys, KeySpec, flags, lookup_name, lookup_subcommand};
use crate::resp::Frame;

/// Learned commands by full lower-case name (`mymodule.get`,
/// `client|no-touch`). Cheap to clone: the entries are shared.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    by_name: HashMap<String, &'static CommandSpec>,
}

static NONE: LazyLock<Learned> = LazyLock::new(Learned::default);

impl Learned {
    /// An empty set, for callers that have learned nothing.
    pub fn none() -> &'static Learned {
        &NONE
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The entry named `name` (any case; `container|sub` for a subcommand).
    pub fn get(&self, name: &str) -> Option<&'static CommandSpec> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// True if `name` is known, to the table or as learned already.
    pub fn knows(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.by_name.contains_key(&name) || in_table(&name)
    }

    /// A copy with `specs` added (each leaked once; a name already known is
    /// kept as it was).
    pub fn with(&self, specs: Vec<OwnedSpec>) -> Learned {
        let mut out = self.clone();
        for spec in specs {
            if out.knows(&spec.name) {
                continue;
            }
            let spec: &'static CommandSpec = Box::leak(Box::new(spec.into_static()));
            out.by_name.insert(spec.name.to_string(), spec);
            // A learned container's subcommands are found through it, and
            // also by their full name (as unknown subcommands of a known
            // container are).
            for sub in spec.subcommands {
                out.by_name.insert(sub.name.to_string(), sub);
            }
        }
        out
    }

    /// The names learned, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// True if the static table has `name` (lower case, `container|sub` for a
/// subcommand).
fn in_table(name: &str) -> bool {
    match name.split_once('|') {
        None => lookup_name(name.as_bytes()).is_some(),
        Some((container, sub)) => lookup_name(container.as_bytes())
            .is_some_and(|c| lookup_subcommand(c, sub.as_bytes()).is_some()),
    }
}

/// The names in a `COMMAND LIST` reply that neither the table nor `learned`
/// knows.
pub fn unknown_names(list: &Frame, learned: &Learned) -> Vec<String> {
    let Some(items) = list.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| item.as_bytes())
        .map(|name| String::from_utf8_lossy(name).to_ascii_lowercase())
        .filter(|name| !learned.knows(name))
        .collect()
}

/// One command as `COMMAND INFO` describes it, before it is made `'static`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSpec {
    pub name: String,
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub tips: Vec<String>,
    pub key_specs: Vec<OwnedKeySpec>,
    pub subcommands: Vec<OwnedSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedKeySpec {
    pub begin: OwnedBegin,
    pub find: FindKeys,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedBegin {
    Index(usize),
    Keyword { keyword: String, start_from: i32 },
    Unknown,
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_strs(v: Vec<String>) -> &'static [&'static str] {
    Box::leak(
        v.into_iter()
            .map(leak_str)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

impl OwnedSpec {
    fn into_static(self) -> CommandSpec {
        let mut subcommands: Vec<CommandSpec> = self
            .subcommands
            .into_iter()
            .map(Self::into_static)
            .collect();
        // Subcommands are binary-searched by name.
        subcommands.sort_by(|a, b| a.name.cmp(b.name));
        let key_specs: Vec<KeySpec> = self
            .key_specs
            .into_iter()
            .map(|ks| KeySpec {
                begin: match ks.begin {
                    OwnedBegin::Index(i) => BeginSearch::Index(i),
                    OwnedBegin::Keyword {
                        keyword,
                        start_from,
                    } => BeginSearch::Keyword {
                        keyword: leak_str(keyword),
                        start_from,
                    },
                    OwnedBegin::Unknown => BeginSearch::Unknown,
                },
                find: ks.find,
                flags: leak_strs(ks.flags),
            })
            .collect();
        CommandSpec {
            name: leak_str(self.name),
            arity: self.arity,
            flags: self.flags | flags::LEARNED,
            first_key: self.first_key,
            last_key: self.last_key,
            step: self.step,
            tips: leak_strs(self.tips),
            key_specs: Box::leak(key_specs.into_boxed_slice()),
            subcommands: Box::leak(subcommands.into_boxed_slice()),
        }
    }
}

/// Parses a `COMMAND INFO` reply (RESP2 or RESP3); entries that are nil
/// (unknown names) or malformed are skipped.
pub fn parse_command_info(reply: &Frame) -> Vec<OwnedSpec> {
    reply
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(parse_entry)
        .collect()
}

fn int(frame: &Frame) -> Option<i64> {
    match frame {
        Frame::Integer(n) => Some(*n),
        _ => None,
    }
}

fn text(frame: &Frame) -> Option<String> {
    frame
        .as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn texts(frame: &Frame) -> Vec<String> {
    frame
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(text)
        .collect()
}

/// The pairs of a map, sent as a RESP3 map or a RESP2 flat array.
fn pairs(frame: &Frame) -> Vec<(String, &Frame)> {
    match frame {
        Frame::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        _ => frame
            .as_array()
            .unwrap_or_default()
            .chunks_exact(2)
            .filter_map(|pair| Some((text(&pair[0])?, &pair[1])))
            .collect(),
    }
}

fn field<'a>(pairs: &[(String, &'a Frame)], name: &str) -> Option<&'a Frame> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

fn field_int(pairs: &[(String, &Frame)], name: &str) -> Option<i64> {
    field(pairs, name).and_then(int)
}

fn parse_entry(entry: &Frame) -> Option<OwnedSpec> {
    let items = entry.as_array()?;
    let name = text(items.first()?)?.to_ascii_lowercase();
    let arity = i32::try_from(int(items.get(1)?)?).ok()?;
    let flags = texts(items.get(2)?)
        .iter()
        .filter_map(|f| {
            flags::NAMES
                .iter()
                .find(|(n, _)| *n == f.as_str())
                .map(|(_, b)| *b)
        })
        .fold(0, |acc, bit| acc | bit);
    let small = |i: usize| -> Option<i32> { i32::try_from(int(items.get(i)?)?).ok() };
    let (first_key, last_key, step) = (small(3)?, small(4)?, small(5)?);
    let tips = items.get(7).map(texts).unwrap_or_default();
    let key_specs = items
        .get(8)
        .and_then(Frame::as_array)
        .unwrap_or_default()
        .iter()
        .map(parse_key_spec)
        .collect::<Option<Vec<_>>>()?;
    let subcommands = items
        .get(9)
        .and_then(Frame::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(parse_entry)
        .collect();
    Some(OwnedSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step,
        tips,
        key_specs,
        subcommands,
    })
}

/// One key spec; a part this parser does not understand reads as unknown
/// (so the command is refused rather than routed by a guess).
fn parse_key_spec(frame: &Frame) -> Option<OwnedKeySpec> {
    let spec = pairs(frame);
    let flags = field(&spec, "flags").map(texts).unwrap_or_default();
    let begin = field(&spec, "begin_search").map(pairs).unwrap_or_default();
    let find = field(&spec, "find_keys").map(pairs).unwrap_or_default();
    let begin_kind = field(&begin, "type").and_then(text);
    let begin_spec = field(&begin, "spec").map(pairs).unwrap_or_default();
    let begin = match begin_kind.as_deref() {
        Some("index") => field_int(&begin_spec, "index")
            .and_then(|i| usize::try_from(i).ok())
            .map_or(OwnedBegin::Unknown, OwnedBegin::Index),
        Some("keyword") => match (
            field(&begin_spec, "keyword").and_then(text),
            field_int(&begin_spec, "startfrom").and_then(|n| i32::try_from(n).ok()),
        ) {
            (Some(keyword), Some(start_from)) => OwnedBegin::Keyword {
                keyword,
                start_from,
            },
            _ => OwnedBegin::Unknown,
        },
        _ => OwnedBegin::Unknown,
    };
    let find_kind = field(&find, "type").and_then(text);
    let find_spec = field(&find, "spec").map(pairs).unwrap_or_default();
    let usize_of = |name: &str| field_int(&find_spec, name).and_then(|n| usize::try_from(n).ok());
    let find = match find_kind.as_deref() {
        Some("range") => match (
            field_int(&find_spec, "lastkey").and_then(|n| i32::try_from(n).ok()),
            usize_of("keystep"),
            usize_of("limit"),
        ) {
            (Some(last_key), Some(step), Some(limit)) => FindKeys::Range {
                last_key,
                step,
                limit,
            },
            _ => FindKeys::Unknown,
        },
        Some("keynum") => match (
            usize_of("keynumidx"),
            usize_of("firstkey"),
            usize_of("keystep"),
        ) {
            (Some(keynum_idx), Some(first_key), Some(step)) => FindKeys::Keynum {
                keynum_idx,
                first_key,
                step,
            },
            _ => FindKeys::Unknown,
        },
        _ => FindKeys::Unknown,
    };
    Some(OwnedKeySpec { begin, find, flags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Request;
    use bytes::Bytes;

    /// redis-server 7.0's `COMMAND INFO LMPOP MSET nosuch`, with the names
    /// changed to ones the table does not know.
    const INFO: &[u8] = b"*3\r\n*10\r\n$8\r\nmy.lmpop\r\n:-4\r\n*2\r\n+write\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@write\r\n+@list\r\n+@slow\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$6\r\nkeynum\r\n$4\r\nspec\r\n*6\r\n$9\r\nkeynumidx\r\n:0\r\n$8\r\nfirstkey\r\n:1\r\n$7\r\nkeystep\r\n:1\r\n*0\r\n*10\r\n$7\r\nmy.mset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n*3\r\n+@write\r\n+@string\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n$29\r\nresponse_policy:all_succeeded\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:0\r\n*0\r\n$-1\r\n";

    fn parsed() -> Vec<OwnedSpec> {
        let (frame, _) = Frame::parse(&Bytes::from_static(INFO)).unwrap().unwrap();
        parse_command_info(&frame)
    }

    #[test]
    fn command_info_entries_become_specs() {
        let specs = parsed();
        assert_eq!(specs.len(), 2, "the nil entry is skipped");
        let lmpop = &specs[0];
        assert_eq!(lmpop.name, "my.lmpop");
        assert_eq!(lmpop.arity, -4);
        assert_eq!(lmpop.flags, flags::WRITE | flags::MOVABLEKEYS);
        assert_eq!(
            lmpop.key_specs,
            vec![OwnedKeySpec {
                begin: OwnedBegin::Index(1),
                find: FindKeys::Keynum {
                    keynum_idx: 0,
                    first_key: 1,
                    step: 1
                },
                flags: vec!["RW".into(), "access".into(), "delete".into()],
            }]
        );
        assert_eq!(
            specs[1].tips,
            vec![
                "request_policy:multi_shard".to_string(),
                "response_policy:all_succeeded".to_string()
            ]
        );
    }

    #[test]
    fn learned_specs_find_keys_like_table_ones() {
        let learned = Learned::default().with(parsed());
        assert_eq!(learned.len(), 2);
        let spec = learned.get("MY.LMPOP").unwrap();
        assert!(spec.has_flag(flags::LEARNED));
        let req = Request::from_args(&["my.lmpop", "2", "a", "b", "LEFT"]);
        assert_eq!(spec.keys(&req).unwrap().as_slice(), &[2, 3]);
        let mset = learned.get("my.mset").unwrap();
        let req = Request::from_args(&["my.mset", "a", "1", "b", "2"]);
        assert_eq!(mset.keys(&req).unwrap().as_slice(), &[1, 3]);
        // Learning the same names again keeps the first entries.
        let again = learned.with(parsed());
        assert!(std::ptr::eq(again.get("my.mset").unwrap(), mset));
        assert!(learned.knows("get") && learned.knows("config|get"));
        assert!(!learned.knows("client|no-touch"));
    }

    #[test]
    fn command_list_names_unknown_to_table_and_learned() {
        let learned = Learned::default().with(parsed());
        let list = Frame::Array(
            ["get", "MY.MSET", "client|no-touch", "new.cmd", "config|get"]
                .iter()
                .map(|n| Frame::Bulk(Bytes::from_static(n.as_bytes())))
                .collect(),
        );
        assert_eq!(
            unknown_names(&list, &learned),
            vec!["client|no-touch".to_string(), "new.cmd".to_string()]
        );
    }

    #[test]
    fn unreadable_key_specs_read_as_unknown() {
        let spec = Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"begin_search")),
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"type")),
                Frame::Bulk(Bytes::from_static(b"unknown")),
                Frame::Bulk(Bytes::from_static(b"spec")),
                Frame::Array(vec![]),
            ]),
        ]);
        let parsed = parse_key_spec(&spec).unwrap();
        assert_eq!(parsed.begin, OwnedBegin::Unknown);
        assert_eq!(parsed.find, FindKeys::Unknown);
    }
}
