//! Commands the proxy's table does not know (a newer server, a module) are
//! learned from the cluster's `COMMAND INFO` and routed by their key specs;
//! one whose key specs do not find its keys is refused, never guessed.
//!
//! The backend is a scripted node (one master owning every slot) that has
//! commands no Redis 7.0 has, so the test needs neither a module nor a newer
//! server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// `COMMAND INFO` entry of a command with the given key specs (RESP2).
fn info_entry(name: &str, arity: i64, flags: &[&str], key_specs: &[String]) -> String {
    let mut out = format!("*10\r\n${}\r\n{name}\r\n:{arity}\r\n", name.len());
    out.push_str(&format!("*{}\r\n", flags.len()));
    for f in flags {
        out.push_str(&format!("+{f}\r\n"));
    }
    out.push_str(":0\r\n:0\r\n:0\r\n*0\r\n*0\r\n");
    out.push_str(&format!("*{}\r\n", key_specs.len()));
    for spec in key_specs {
        out.push_str(spec);
    }
    out.push_str("*0\r\n");
    out
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// A key spec: `begin_search` and `find_keys` as (type, spec pairs).
fn key_spec(begin: (&str, &[(&str, i64)]), find: (&str, &[(&str, i64)])) -> String {
    let part = |(kind, pairs): (&str, &[(&str, i64)])| {
        let mut spec = format!("*{}\r\n", pairs.len() * 2);
        for (k, v) in pairs {
            spec.push_str(&bulk(k));
            spec.push_str(&format!(":{v}\r\n"));
        }
        format!("*4\r\n{}{}{}{spec}", bulk("type"), bulk(kind), bulk("spec"))
    };
    format!(
        "*6\r\n{}*1\r\n+RO\r\n{}{}{}{}",
        bulk("flags"),
        bulk("begin_search"),
        part(begin),
        bulk("find_keys"),
        part(find)
    )
}

/// What the scripted node answers to `COMMAND INFO <name>`.
fn command_info(name: &str) -> Option<String> {
    let first_key = key_spec(
        ("index", &[("index", 1)]),
        ("range", &[("lastkey", 0), ("keystep", 1), ("limit", 0)]),
    );
    let every_key = key_spec(
        ("index", &[("index", 1)]),
        ("range", &[("lastkey", -1), ("keystep", 1), ("limit", 0)]),
    );
    let unknown = key_spec(("unknown", &[]), ("unknown", &[]));
    Some(match name {
        "my.get" => info_entry("my.get", 2, &["readonly"], &[first_key]),
        "my.mget" => info_entry("my.mget", -2, &["readonly"], &[every_key]),
        "my.info" => info_entry("my.info", 1, &["readonly"], &[]),
        "my.guess" => info_entry("my.guess", -2, &["write"], &[first_key, unknown]),
        _ => return None,
    })
}

/// A scripted cluster node: one master owning every slot.
struct ScriptedNode {
    port: u16,
    /// Every request it received, as its arguments.
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedNode {
    fn start() -> ScriptedNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_seen, accept_stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let seen = accept_seen.clone();
                let stop = accept_stop.clone();
                std::thread::spawn(move || serve(stream, port, &seen, &stop));
            }
        });
        ScriptedNode { port, seen, stop }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ScriptedNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr());
    }
}

fn serve(mut stream: TcpStream, port: u16, seen: &Mutex<Vec<Vec<String>>>, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        while let Ok(Some((request, used))) = Reply::parse(&buf) {
            buf.drain(..used);
            let args: Vec<String> = request
                .expect_array()
                .iter()
                .map(|a| a.expect_str().to_string())
                .collect();
            let reply = answer(&args, port);
            seen.lock().unwrap().push(args);
            if stream.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

fn answer(args: &[String], port: u16) -> String {
    let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let words: Vec<&str> = lower.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["ping"] => "+PONG\r\n".into(),
        ["cluster", "nodes"] => bulk(&format!(
            "{} 127.0.0.1:{port}@0 myself,master - 0 0 1 connected 0-16383\n",
            "a".repeat(40)
        )),
        ["command", "list"] => {
            let names = ["get", "set", "my.get", "my.mget", "my.info", "my.guess"];
            let mut out = format!("*{}\r\n", names.len());
            for n in names {
                out.push_str(&bulk(n));
            }
            out
        }
        ["command", "info", names @ ..] => {
            let mut out = format!("*{}\r\n", names.len());
            for name in names {
                out.push_str(&command_info(name).unwrap_or_else(|| "*-1\r\n".into()));
            }
            out
        }
        ["my.get", key] => bulk(&format!("value of {key}")),
        ["my.mget", keys @ ..] => format!(":{}\r\n", keys.len()),
        _ => format!("-ERR the scripted node got {args:?}\r\n"),
    }
}

#[test]
fn commands_missing_from_the_table_are_learned_and_routed_by_key_spec() {
    let node = ScriptedNode::start();
    let proxy = Proxy::start(&node.addr());
    let mut c = proxy.client();
    // Learning follows the first refresh; bounded wait for it.
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || -> Result<(), String> {
            match c.cmd(&["MY.GET", "foo"]) {
                Reply::Bulk(Some(v)) if v == b"value of foo" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert!(
        node.seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == &["MY.GET".to_string(), "foo".to_string()]),
        "forwarded as the client sent it"
    );
    // Its key spec finds every key: keys in one slot go through, keys in two
    // get Redis's own CROSSSLOT.
    assert_eq!(c.cmd(&["my.mget", "{t}a", "{t}b"]), Reply::Int(2));
    assert_eq!(
        c.cmd(&["my.mget", "a", "b"]),
        Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    assert_eq!(
        c.cmd(&["my.get"]),
        Reply::Error("ERR wrong number of arguments for 'my.get' command".into())
    );
    // No key spec, or one that does not find every key: refused, clearly.
    let keyless = c.cmd(&["MY.INFO"]);
    assert!(
        keyless
            .expect_error()
            .starts_with("ERR 'MY.INFO' is not in this proxy's command table"),
        "{keyless:?}"
    );
    let guess = c.cmd(&["my.guess", "k", "x"]);
    assert!(
        guess
            .expect_error()
            .contains("does not say where all its keys are"),
        "{guess:?}"
    );
    // Unknown to the cluster too: Redis's own error. The connection stays
    // usable throughout.
    assert!(
        c.cmd(&["NOPE", "x"])
            .expect_error()
            .starts_with("ERR unknown command 'NOPE'")
    );
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    let forwarded: Vec<String> = node
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r[0].to_ascii_lowercase())
        .collect();
    assert!(!forwarded.iter().any(|n| n == "my.info" || n == "my.guess"));
}
