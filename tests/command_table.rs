//! The command table against a live `redis-server` 7: the table itself
//! (`COMMAND`), the keys it finds (`COMMAND GETKEYS`) and the errors `lookup`
//! gives (unknown command, unknown subcommand, wrong arity).
//!
//! The ignored `regenerate` test writes `src/command/table.rs` from the live
//! server:
//!
//! ```text
//! cargo test --test command_table -- --ignored regenerate
//! ```
//!
//! A test that needs `redis-server` (or `REDIS_SERVER_BIN`) prints `SKIP`
//! and returns when it is missing, and fails instead when `CI` (or
//! `REQUIRE_REDIS_SERVER`) is set.

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use slotway::command::{self, BeginSearch, COMMANDS, CommandSpec, FindKeys, all_commands, flags};
use slotway::resp::{Frame, Request};

// ---------------------------------------------------------------------------
// A redis-server of our own, and a tiny blocking RESP client.

struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server, or returns `None` after printing SKIP when there is
    /// no redis-server and `CI` is not set.
    fn start(test: &str) -> Option<RedisServer> {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let found = Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            let required = std::env::var_os("CI").is_some()
                || std::env::var_os("REQUIRE_REDIS_SERVER").is_some();
            assert!(!required, "{test}: `{bin}` not found, and CI is set");
            eprintln!("SKIP {test}: `{bin}` not found (set REDIS_SERVER_BIN)");
            return None;
        }
        for _ in 0..10 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            if server.wait_ready() {
                return Some(server);
            }
            // Most likely another process took the port first; try another.
        }
        panic!("{test}: could not start {bin}");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                // Make sure it is our server, not another test's that took
                // the same port a moment earlier (ours then exits).
                if let Ok(Frame::Bulk(info)) = Client::new(stream).try_call(&["INFO", "server"]) {
                    let pid = format!("process_id:{}", self.child.id());
                    return String::from_utf8_lossy(&info)
                        .lines()
                        .any(|l| l.trim() == pid);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn client(&self) -> Client {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).unwrap())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A random free loopback port in 20000-29999 (binding port 0 would give
/// one from the ephemeral range, above 32768).
fn free_port() -> u16 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.write_u32(std::process::id());
        let port = 20000 + (h.finish() % 10000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Frame {
        self.try_call(args).unwrap()
    }

    fn try_call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Frame> {
        self.stream.write_all(Request::from_args(args).raw())?;
        loop {
            let bytes = Bytes::copy_from_slice(&self.buf);
            if let Some((frame, len)) = Frame::parse(&bytes).unwrap() {
                let _ = self.buf.split_to(len);
                return Ok(frame);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

// ---------------------------------------------------------------------------
// `COMMAND` replies, parsed into plain values that the table converts to as
// well, so the two compare with `==`.

#[derive(Debug, Clone, PartialEq)]
struct Info {
    name: String,
    arity: i64,
    /// In `flags::NAMES` order.
    flags: Vec<String>,
    first_key: i64,
    last_key: i64,
    step: i64,
    tips: Vec<String>,
    key_specs: Vec<Spec>,
    /// Sorted by name.
    subcommands: Vec<Info>,
}

#[derive(Debug, Clone, PartialEq)]
struct Spec {
    /// Not in the table (the generator writes them as comments).
    notes: Option<String>,
    flags: Vec<String>,
    begin: Begin,
    find: Find,
}

#[derive(Debug, Clone, PartialEq)]
enum Begin {
    Index(i64),
    Keyword(String, i64),
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
enum Find {
    Range(i64, i64, i64),
    Keynum(i64, i64, i64),
    Unknown,
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) | Frame::Verbatim(_, b) => {
            String::from_utf8(b.to_vec()).unwrap()
        }
        other => panic!("expected a string, got {other:?}"),
    }
}

fn int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn array(f: &Frame) -> &[Frame] {
    f.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {f:?}"))
}

fn texts(f: &Frame) -> Vec<String> {
    array(f).iter().map(text).collect()
}

/// A RESP3 map, or the flat key/value array RESP2 sends instead.
fn map(f: &Frame) -> BTreeMap<String, &Frame> {
    match f {
        Frame::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v)).collect(),
        _ => {
            let items = array(f);
            assert!(items.len() % 2 == 0, "odd map {f:?}");
            items.chunks(2).map(|kv| (text(&kv[0]), &kv[1])).collect()
        }
    }
}

fn parse_spec(f: &Frame) -> Spec {
    let m = map(f);
    for key in m.keys() {
        assert!(
            ["notes", "flags", "begin_search", "find_keys"].contains(&key.as_str()),
            "unexpected key spec field {key}"
        );
    }
    let begin = map(m["begin_search"]);
    let bspec = map(begin["spec"]);
    let begin = match text(begin["type"]).as_str() {
        "index" => Begin::Index(int(bspec["index"])),
        "keyword" => Begin::Keyword(text(bspec["keyword"]), int(bspec["startfrom"])),
        "unknown" => Begin::Unknown,
        other => panic!("unknown begin_search type {other}"),
    };
    let find = map(m["find_keys"]);
    let fspec = map(find["spec"]);
    let find = match text(find["type"]).as_str() {
        "range" => Find::Range(
            int(fspec["lastkey"]),
            int(fspec["keystep"]),
            int(fspec["limit"]),
        ),
        "keynum" => Find::Keynum(
            int(fspec["keynumidx"]),
            int(fspec["firstkey"]),
            int(fspec["keystep"]),
        ),
        "unknown" => Find::Unknown,
        other => panic!("unknown find_keys type {other}"),
    };
    Spec {
        notes: m.get("notes").map(|n| text(n)),
        flags: texts(m["flags"]),
        begin,
        find,
    }
}

/// One entry of `COMMAND` / `COMMAND INFO` (Redis 7: name, arity, flags,
/// first key, last key, step, ACL categories, tips, key specs, subcommands).
fn parse_info(f: &Frame) -> Info {
    let items = array(f);
    assert_eq!(items.len(), 10, "not a Redis 7 COMMAND entry: {f:?}");
    let mut subcommands: Vec<Info> = array(&items[9]).iter().map(parse_info).collect();
    subcommands.sort_by(|a, b| a.name.cmp(&b.name));
    Info {
        name: text(&items[0]),
        arity: int(&items[1]),
        flags: texts(&items[2]),
        first_key: int(&items[3]),
        last_key: int(&items[4]),
        step: int(&items[5]),
        tips: texts(&items[7]),
        key_specs: array(&items[8]).iter().map(parse_spec).collect(),
        subcommands,
    }
}

/// Every command the server knows, sorted by name, and its version.
fn live_commands(client: &mut Client) -> (Vec<Info>, String) {
    let mut all: Vec<Info> = array(&client.call(&["COMMAND"]))
        .iter()
        .map(parse_info)
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let info = text(&client.call(&["INFO", "server"]));
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_string();
    (all, version)
}

/// The table's entry in the same shape (notes are not in the table).
fn info_of(c: &CommandSpec) -> Info {
    let as_i64 = |n: usize| i64::try_from(n).unwrap();
    Info {
        name: c.name.into(),
        arity: c.arity.into(),
        flags: flags::names(c.flags).map(String::from).collect(),
        first_key: c.first_key.into(),
        last_key: c.last_key.into(),
        step: c.step.into(),
        tips: c.tips.iter().map(|t| t.to_string()).collect(),
        key_specs: c
            .key_specs
            .iter()
            .map(|s| Spec {
                notes: None,
                flags: s.flags.iter().map(|f| f.to_string()).collect(),
                begin: match s.begin {
                    BeginSearch::Index(i) => Begin::Index(as_i64(i)),
                    BeginSearch::Keyword {
                        keyword,
                        start_from,
                    } => Begin::Keyword(keyword.into(), start_from.into()),
                    BeginSearch::Unknown => Begin::Unknown,
                },
                find: match s.find {
                    FindKeys::Range {
                        last_key,
                        step,
                        limit,
                    } => Find::Range(last_key.into(), as_i64(step), as_i64(limit)),
                    FindKeys::Keynum {
                        keynum_idx,
                        first_key,
                        step,
                    } => Find::Keynum(as_i64(keynum_idx), as_i64(first_key), as_i64(step)),
                    FindKeys::Unknown => Find::Unknown,
                },
            })
            .collect(),
        subcommands: c.subcommands.iter().map(info_of).collect(),
    }
}

/// The live entry without what the table does not keep, flags in table
/// order.
fn comparable(live: &Info) -> Info {
    let mut flags = live.flags.clone();
    flags.sort_by_key(|f| flags::NAMES.iter().position(|(n, _)| n == f));
    Info {
        flags,
        key_specs: live
            .key_specs
            .iter()
            .map(|s| Spec {
                notes: None,
                ..s.clone()
            })
            .collect(),
        subcommands: live.subcommands.iter().map(comparable).collect(),
        ..live.clone()
    }
}

// ---------------------------------------------------------------------------
// The table against the live server.

#[test]
fn table_matches_live_server() {
    let Some(server) = RedisServer::start("table_matches_live_server") else {
        return;
    };
    let (live, version) = live_commands(&mut server.client());
    assert_eq!(
        version,
        command::REDIS_VERSION,
        "the table comes from another Redis version"
    );
    let live: Vec<Info> = live.iter().map(comparable).collect();
    let table: Vec<Info> = COMMANDS.iter().map(info_of).collect();
    let names = |v: &[Info]| -> Vec<String> {
        v.iter()
            .flat_map(|c| std::iter::once(c).chain(&c.subcommands))
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(names(&table), names(&live), "different command sets");
    let mut diffs = Vec::new();
    for (t, l) in table.iter().zip(&live) {
        for (t, l) in std::iter::once((t, l)).chain(t.subcommands.iter().zip(&l.subcommands)) {
            let strip = |i: &Info| Info {
                subcommands: Vec::new(),
                ..i.clone()
            };
            if strip(t) != strip(l) {
                diffs.push(format!("table: {:?}\nlive:  {:?}", strip(t), strip(l)));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} entries differ:\n{}",
        diffs.len(),
        diffs.join("\n\n")
    );
    // COMMAND COUNT counts top-level commands only.
    let count = server.client().call(&["COMMAND", "COUNT"]);
    assert_eq!(int(&count), COMMANDS.len() as i64);
    assert_eq!(
        all_commands().count(),
        COMMANDS.len() + COMMANDS.iter().map(|c| c.subcommands.len()).sum::<usize>()
    );
}

// ---------------------------------------------------------------------------
// Lookup errors against the live server, byte for byte.

/// What the live server and `command::lookup` answer to `args`: the error
/// text, or `None` when the command is accepted (for the server: any reply
/// that is not an unknown-command or arity error).
fn compare_lookup(client: &mut Client, args: &[Vec<u8>]) -> Result<(), String> {
    let req = Request::from_args(args);
    let ours = command::lookup(&req).err().map(|e| e.to_string());
    let theirs = match client.call(args) {
        Frame::Error(e) => {
            let e = String::from_utf8_lossy(&e).into_owned();
            let lookup_error = e.starts_with("ERR unknown command")
                || e.starts_with("ERR unknown subcommand")
                || e.starts_with("ERR wrong number of arguments")
                || e.starts_with("EXECABORT Transaction discarded because of: wrong number");
            lookup_error.then_some(e)
        }
        _ => None,
    };
    // PING checks its own arguments, after lookup (see the case above).
    let theirs = theirs.filter(|_| !(req.len() > 2 && req.name().eq_ignore_ascii_case(b"ping")));
    if ours == theirs {
        Ok(())
    } else {
        Err(format!("{req:?}\n  redis: {theirs:?}\n  ours:  {ours:?}"))
    }
}

fn args(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.to_vec()).collect()
}

#[test]
fn lookup_errors_match_live_server() {
    let Some(server) = RedisServer::start("lookup_errors_match_live_server") else {
        return;
    };
    let mut client = server.client();
    let long = |n: usize, c: u8| vec![c; n];
    let mut cases: Vec<Vec<Vec<u8>>> = vec![
        args(&[b"foo"]),
        args(&[b"foo", b"bar"]),
        args(&[b"FOO", b"a", b"b", b"c"]),
        args(&[b""]),
        args(&[b"", b""]),
        args(&[b"foo", b"", b"x"]),
        args(&[b"foo", b"a\r\nb", b"c\nd"]),
        args(&[b"get\0x", b"k"]),
        args(&[b"foo", b"a\0b", b"c"]),
        args(&[b"get"]),
        args(&[b"GET", b"a", b"b"]),
        args(&[b"get", b"k"]),
        args(&[b"set", b"k"]),
        args(&[b"config"]),
        args(&[b"CONFIG", b"get"]),
        args(&[b"config", b"GET", b"maxmemory"]),
        args(&[b"ConFig", b"xyz"]),
        args(&[b"config", b"xyz", b"more"]),
        args(&[b"config", b""]),
        args(&[b"config", b"a\r\nb"]),
        args(&[b"config", b"a\0b"]),
        args(&[b"object"]),
        args(&[b"object", b"encoding"]),
        args(&[b"OBJECT", b"help", b"extra"]),
        args(&[b"xinfo", b"stream"]),
        args(&[b"cluster", b"keyslot"]),
        args(&[b"command", b"getkeys"]),
        args(&[b"ping"]),
        args(&[b"exec", b"x"]),
        args(&[b"multi", b"x"]),
        // Not a lookup error: PING's arity is -1 and PING itself refuses a
        // third argument (with the same text), on the backend.
        args(&[b"ping", b"a", b"b"]),
    ];
    // Truncation: names and arguments at 128 bytes, and the argument list
    // once it reaches 128 bytes.
    cases.push(vec![long(200, b'n')]);
    cases.push(vec![long(200, b'n'), long(300, b'a'), b"b".to_vec()]);
    cases.push(vec![b"foo".to_vec(), long(127, b'a'), b"b".to_vec()]);
    cases.push(vec![b"foo".to_vec(), long(124, b'a'), b"bcdef".to_vec()]);
    cases.push(vec![b"foo".to_vec(), long(125, b'a'), b"bcdef".to_vec()]);
    cases.push(vec![b"foo".to_vec(), long(100, b'a'), long(100, b'b')]);
    cases.push((0..60).map(|i| format!("a{i}").into_bytes()).collect());
    cases.push(vec![b"config".to_vec(), long(200, b's')]);
    // A name just past the longest in the table.
    cases.push(vec![long(33, b'g')]);

    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| compare_lookup(&mut client, c).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every command and subcommand with a wrong number of arguments, every
/// container with an unknown subcommand, and every name in upper case.
/// Wrong-arity requests are refused before they run, so none of them does
/// anything (not even SHUTDOWN or FLUSHALL).
#[test]
fn every_command_arity_and_name_match_live_server() {
    let Some(server) = RedisServer::start("every_command_arity_and_name_match_live_server") else {
        return;
    };
    let mut client = server.client();
    let mut failures = Vec::new();
    let mut checked = 0;
    for spec in all_commands() {
        let mut names: Vec<Vec<u8>> = spec
            .name
            .split('|')
            .map(|n| n.to_ascii_uppercase().into_bytes())
            .collect();
        let min_argc = names.len();
        let argc = if spec.arity > 0 {
            spec.arity as usize + 1
        } else if spec.arity.unsigned_abs() as usize > min_argc {
            spec.arity.unsigned_abs() as usize - 1
        } else {
            continue;
        };
        names.resize(argc, b"x".to_vec());
        let req = Request::from_args(&names);
        match command::lookup(&req) {
            Err(command::CommandError::WrongArity(name)) if name == spec.name => {}
            other => failures.push(format!("{req:?}: {other:?}")),
        }
        if let Err(e) = compare_lookup(&mut client, &names) {
            failures.push(e);
        }
        checked += 1;
    }
    for container in COMMANDS.iter().filter(|c| c.is_container()) {
        let req = args(&[container.name.as_bytes(), b"nosuchsub"]);
        if let Err(e) = compare_lookup(&mut client, &req) {
            failures.push(e);
        }
    }
    assert!(checked > 300, "only {checked} commands checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Key positions against COMMAND GETKEYS.

/// What `COMMAND GETKEYS` says: the keys, or its error text.
fn live_keys(client: &mut Client, args: &[&str]) -> Result<Vec<String>, String> {
    let mut call = vec!["COMMAND", "GETKEYS"];
    call.extend_from_slice(args);
    match client.call(&call) {
        Frame::Error(e) => Err(String::from_utf8_lossy(&e).into_owned()),
        reply => Ok(texts(&reply)),
    }
}

/// What the proxy finds: `lookup`, then the key specs.
fn proxy_keys(args: &[&str]) -> Result<Vec<String>, String> {
    let req = Request::from_args(args);
    let spec = command::lookup(&req).map_err(|e| e.to_string())?;
    let keys = spec.keys(&req).map_err(|e| e.to_string())?;
    Ok(keys
        .as_slice()
        .iter()
        .map(|&i| args[i].to_string())
        .collect())
}

const NO_KEYS: &str = "ERR The command has no key arguments";
const INVALID: &str = "ERR Invalid arguments specified for command";

/// Requests where the proxy finds exactly the keys Redis does (an empty
/// list where Redis says the command has no keys).
const SAME_KEYS: &[&[&str]] = &[
    &["GET", "k"],
    &["SET", "k", "v"],
    &["SET", "k", "v", "GET"],
    &["SET", "k", "", "EX", "10"],
    &["GETEX", "k", "PERSIST"],
    &["MGET", "a", "b", "c"],
    &["MSET", "a", "1", "b", "2"],
    &["MSETNX", "a", "1", "b", "2"],
    &["DEL", "a", "b"],
    &["UNLINK", "a"],
    &["EXISTS", "a", "b", "a"],
    &["TOUCH", "a", "b"],
    &["RENAME", "a", "b"],
    &["COPY", "a", "b", "REPLACE"],
    &["LCS", "a", "b", "LEN"],
    &["EVAL", "s", "2", "k1", "k2", "a1"],
    &["EVAL", "s", "1", "k1"],
    &["EVALSHA", "0123", "1", "k", "a"],
    &["EVAL_RO", "s", "1", "k"],
    &["FCALL", "f", "1", "k", "a"],
    &["FCALL_RO", "f", "2", "a", "b"],
    &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
    &["ZINTERSTORE", "d", "1", "a"],
    &["ZDIFFSTORE", "d", "2", "a", "b"],
    &["ZUNION", "2", "a", "b", "WITHSCORES"],
    &["ZINTER", "2", "a", "b"],
    &["ZDIFF", "2", "a", "b"],
    &["ZINTERCARD", "2", "a", "b", "LIMIT", "1"],
    &["ZRANGESTORE", "d", "s", "0", "-1"],
    &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
    &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s1", "0"],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "1",
        "STREAMS",
        "s1",
        "s2",
        ">",
        ">",
    ],
    &["XADD", "s", "*", "f", "v"],
    &["XGROUP", "CREATE", "s", "g", "$"],
    &["XINFO", "STREAM", "k"],
    &["XINFO", "GROUPS", "k"],
    &["LMPOP", "2", "a", "b", "LEFT"],
    &["BLMPOP", "0", "2", "a", "b", "LEFT"],
    &["ZMPOP", "1", "z", "MIN"],
    &["BZMPOP", "0", "2", "a", "b", "MAX", "COUNT", "3"],
    &["BLPOP", "a", "b", "0"],
    &["BRPOPLPUSH", "a", "b", "0"],
    &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
    &["LMOVE", "a", "b", "LEFT", "LEFT"],
    &["SORT", "k"],
    &["SORT", "k", "LIMIT", "0", "1", "ALPHA"],
    &["SORT_RO", "k", "ALPHA"],
    &["GEORADIUS", "k", "0", "0", "1", "m"],
    &["GEORADIUS", "k", "0", "0", "1", "m", "STORE", "d"],
    &["GEORADIUS", "k", "0", "0", "1", "m", "STOREDIST", "d"],
    &["GEORADIUSBYMEMBER", "k", "m", "1", "m", "STORE", "d"],
    &["GEORADIUS_RO", "k", "0", "0", "1", "m"],
    &[
        "GEOSEARCHSTORE",
        "d",
        "s",
        "FROMMEMBER",
        "m",
        "BYRADIUS",
        "1",
        "m",
    ],
    &["OBJECT", "ENCODING", "k"],
    &["object", "freq", "k"],
    &["MEMORY", "USAGE", "k"],
    &["MEMORY", "USAGE", "k", "SAMPLES", "5"],
    &["MIGRATE", "h", "6379", "k", "0", "5000"],
    &["BITOP", "AND", "d", "a", "b"],
    &["BITFIELD", "k", "GET", "u8", "0"],
    &["BITFIELD_RO", "k", "GET", "u8", "0"],
    &["SINTERCARD", "2", "a", "b"],
    &["SINTER", "a", "b"],
    &["SINTERSTORE", "d", "a", "b"],
    &["SMOVE", "a", "b", "m"],
    &["PFCOUNT", "a", "b"],
    &["PFMERGE", "d", "a", "b"],
    &["WATCH", "a", "b"],
    &["DUMP", "k"],
    &["RESTORE", "k", "0", "payload"],
    &["PING"],
    &["ECHO", "x"],
    &["SUBSCRIBE", "ch"],
    &["PSUBSCRIBE", "p*"],
    &["PUBLISH", "ch", "m"],
    &["CLIENT", "LIST"],
    &["CONFIG", "GET", "maxmemory"],
    &["CLUSTER", "KEYSLOT", "k"],
    &["SCRIPT", "LOAD", "return 1"],
    &["DBSIZE"],
    &["SCAN", "0"],
    &["KEYS", "*"],
    &["INFO"],
];

/// Requests where the proxy's answer differs from `COMMAND GETKEYS`, with
/// Redis's answer, the proxy's, and why.
struct Differs {
    args: &'static [&'static str],
    redis: Result<&'static [&'static str], &'static str>,
    proxy: Result<&'static [&'static str], &'static str>,
}

const DIFFERENT_KEYS: &[Differs] = &[
    // Shard channels are `not_key` key specs: GETKEYS leaves them out, but a
    // cluster routes them by slot (and refuses channels in two slots with
    // CROSSSLOT), so the proxy counts them as keys.
    Differs {
        args: &["SPUBLISH", "ch", "msg"],
        redis: Err(NO_KEYS),
        proxy: Ok(&["ch"]),
    },
    Differs {
        args: &["SSUBSCRIBE", "a", "b"],
        redis: Err(NO_KEYS),
        proxy: Ok(&["a", "b"]),
    },
    Differs {
        args: &["SUNSUBSCRIBE", "a"],
        redis: Err(NO_KEYS),
        proxy: Ok(&["a"]),
    },
    // SORT's STORE spec is `unknown` (STORE may come anywhere); Redis falls
    // back to sortGetKeys. The proxy sees only the sorted key; a STORE
    // destination in another slot is refused with CROSSSLOT by the node.
    Differs {
        args: &["SORT", "k", "STORE", "d"],
        redis: Ok(&["k", "d"]),
        proxy: Ok(&["k"]),
    },
    Differs {
        args: &["SORT", "k", "BY", "w", "GET", "x", "STORE", "d"],
        redis: Ok(&["k", "d"]),
        proxy: Ok(&["k"]),
    },
    // MIGRATE's specs are `incomplete`: with KEYS the key argument is empty
    // and migrateGetKeys skips it; the key specs still yield it.
    Differs {
        args: &["MIGRATE", "h", "p", "", "0", "5000", "KEYS", "a", "b"],
        redis: Ok(&["a", "b"]),
        proxy: Ok(&["", "a", "b"]),
    },
    // Bad key counts: Redis's key specs fail and its getkeys_proc finds no
    // keys, so GETKEYS answers an empty list (EVAL has no_mandatory_keys) or
    // says the arguments are invalid. The proxy reports a `KeyError`,
    // worded as EVAL itself words it, and sends nothing.
    Differs {
        args: &["EVAL", "s", "3", "a"],
        redis: Ok(&[]),
        proxy: Err("ERR Number of keys can't be greater than number of args"),
    },
    Differs {
        args: &["EVAL", "s", "x", "a"],
        redis: Ok(&[]),
        proxy: Err("ERR value is not an integer or out of range"),
    },
    Differs {
        args: &["EVAL", "s", "-1", "a"],
        redis: Ok(&[]),
        proxy: Err("ERR Number of keys can't be negative"),
    },
    Differs {
        args: &["ZUNIONSTORE", "d", "3", "a"],
        redis: Err(INVALID),
        proxy: Err("ERR Number of keys can't be greater than number of args"),
    },
    Differs {
        args: &["LMPOP", "x", "a", "LEFT"],
        redis: Err(INVALID),
        proxy: Err("ERR value is not an integer or out of range"),
    },
];

fn owned(r: Result<&[&str], &str>) -> Result<Vec<String>, String> {
    r.map(|v| v.iter().map(|s| s.to_string()).collect())
        .map_err(str::to_string)
}

#[test]
fn keys_match_command_getkeys() {
    let Some(server) = RedisServer::start("keys_match_command_getkeys") else {
        return;
    };
    let mut client = server.client();
    let mut failures = Vec::new();
    for &args in SAME_KEYS {
        let redis = match args.len() {
            // COMMAND GETKEYS needs an argument after the command name.
            1 => Ok(Vec::new()),
            _ => match live_keys(&mut client, args) {
                Err(e) if e == NO_KEYS => Ok(Vec::new()),
                other => other,
            },
        };
        let proxy = proxy_keys(args);
        if redis != proxy {
            failures.push(format!("{args:?}\n  redis: {redis:?}\n  proxy: {proxy:?}"));
        }
    }
    for d in DIFFERENT_KEYS {
        let redis = live_keys(&mut client, d.args);
        if redis != owned(d.redis) {
            failures.push(format!(
                "{:?}: GETKEYS now says {redis:?}, not {:?}",
                d.args, d.redis
            ));
        }
        let proxy = proxy_keys(d.args);
        if proxy != owned(d.proxy) {
            failures.push(format!(
                "{:?}: proxy finds {proxy:?}, not {:?}",
                d.args, d.proxy
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// The generator.

/// Regenerates src/command/table.rs from a live redis-server.
#[test]
#[ignore = "writes src/command/table.rs; run on purpose"]
fn regenerate() {
    let Some(server) = RedisServer::start("regenerate") else {
        return;
    };
    let (live, version) = live_commands(&mut server.client());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/command/table.rs");
    std::fs::write(&path, render(&live, &version)).unwrap();
    let status = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "rustfmt failed on {}", path.display());
    eprintln!(
        "wrote {} ({} commands, {} with subcommands) from redis {version}",
        path.display(),
        live.len(),
        live.iter().filter(|c| !c.subcommands.is_empty()).count()
    );
}

const PREAMBLE: &str = r#"//! The command table: every Redis command and subcommand with its arity,
//! flags, legacy key positions, tips and key specs, sorted by name (lookup
//! binary-searches it).
//!
//! GENERATED from the `COMMAND` reply of redis-server @VERSION@; do not edit.
//! To regenerate, with `redis-server` on the PATH (or `REDIS_SERVER_BIN`):
//!
//! ```text
//! cargo test --test command_table -- --ignored regenerate
//! ```
//!
//! (the generator is in tests/command_table.rs; it runs rustfmt on this file).

use super::flags::*;
use super::{BeginSearch, CommandSpec, FindKeys, KeySpec};

/// The Redis version this table was generated from.
pub const REDIS_VERSION: &str = "@VERSION@";

const fn ks(begin: BeginSearch, find: FindKeys, flags: &'static [&'static str]) -> KeySpec {
    KeySpec { begin, find, flags }
}

const fn index(i: usize) -> BeginSearch {
    BeginSearch::Index(i)
}

const fn keyword(keyword: &'static str, start_from: i32) -> BeginSearch {
    BeginSearch::Keyword {
        keyword,
        start_from,
    }
}

const fn range(last_key: i32, step: usize, limit: usize) -> FindKeys {
    FindKeys::Range {
        last_key,
        step,
        limit,
    }
}

const fn keynum(keynum_idx: usize, first_key: usize, step: usize) -> FindKeys {
    FindKeys::Keynum {
        keynum_idx,
        first_key,
        step,
    }
}

"#;

fn render(commands: &[Info], version: &str) -> String {
    let mut out = PREAMBLE.replace("@VERSION@", version);
    out.push_str("/// Every top-level command.\npub static COMMANDS: &[CommandSpec] = &[\n");
    for c in commands {
        render_command(&mut out, c);
    }
    out.push_str("];\n");
    for c in commands.iter().filter(|c| !c.subcommands.is_empty()) {
        out.push_str(&format!(
            "\n/// The subcommands of `{}`.\nconst {}: &[CommandSpec] = &[\n",
            c.name,
            subcommands_const(&c.name)
        ));
        for sub in &c.subcommands {
            assert!(
                sub.subcommands.is_empty(),
                "nested subcommands in {}",
                sub.name
            );
            render_command(&mut out, sub);
        }
        out.push_str("];\n");
    }
    out
}

fn subcommands_const(name: &str) -> String {
    assert!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "container name {name:?} is not an identifier"
    );
    format!("{}_SUBCOMMANDS", name.to_ascii_uppercase())
}

fn str_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", quoted.join(", "))
}

fn render_command(out: &mut String, c: &Info) {
    let mut bits = Vec::new();
    for f in &c.flags {
        assert!(
            flags::NAMES.iter().any(|(n, _)| n == f),
            "{}: flag {f:?} has no bit in command::flags; add one (and to flags::NAMES)",
            c.name
        );
    }
    for (name, _) in flags::NAMES {
        if c.flags.iter().any(|f| f == name) {
            bits.push(name.to_ascii_uppercase());
        }
    }
    let flags = if bits.is_empty() {
        "0".to_string()
    } else {
        bits.join(" | ")
    };
    out.push_str(&format!(
        "CommandSpec {{ name: {:?}, arity: {}, flags: {flags}, first_key: {}, last_key: {}, step: {}, tips: {}, key_specs: &[\n",
        c.name,
        c.arity,
        c.first_key,
        c.last_key,
        c.step,
        str_list(&c.tips)
    ));
    for s in &c.key_specs {
        if let Some(notes) = &s.notes {
            for line in wrap(notes, 80) {
                out.push_str(&format!("// {line}\n"));
            }
        }
        let begin = match &s.begin {
            Begin::Index(i) => format!("index({i})"),
            Begin::Keyword(k, from) => format!("keyword({k:?}, {from})"),
            Begin::Unknown => "BeginSearch::Unknown".to_string(),
        };
        let find = match &s.find {
            Find::Range(last, step, limit) => format!("range({last}, {step}, {limit})"),
            Find::Keynum(idx, first, step) => format!("keynum({idx}, {first}, {step})"),
            Find::Unknown => "FindKeys::Unknown".to_string(),
        };
        out.push_str(&format!("ks({begin}, {find}, {}),\n", str_list(&s.flags)));
    }
    let subs = if c.subcommands.is_empty() {
        "&[]".to_string()
    } else {
        subcommands_const(&c.name)
    };
    out.push_str(&format!("], subcommands: {subs} }},\n"));
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
