//! Unit tests of the command table, lookup and key positions. The table is
//! checked against a live redis-server in tests/command_table.rs.

use super::lookup::MAX_NAME_LEN;
use super::*;

fn req(args: &[&str]) -> Request {
    Request::from_args(args)
}

fn err(args: &[&str]) -> String {
    lookup(&req(args)).map(|c| c.name).unwrap_err().to_string()
}

fn keys(args: &[&str]) -> Vec<usize> {
    let r = req(args);
    lookup(&r).unwrap().keys(&r).unwrap().as_slice().to_vec()
}

#[test]
fn table_is_sorted_unique_and_lower_case() {
    let check = |list: &[CommandSpec]| {
        for pair in list.windows(2) {
            assert!(
                pair[0].short_name() < pair[1].short_name(),
                "{}",
                pair[1].name
            );
        }
        for c in list {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(!c.name.is_empty() && c.short_name().len() <= MAX_NAME_LEN);
        }
    };
    check(COMMANDS);
    for c in COMMANDS.iter().filter(|c| c.is_container()) {
        check(c.subcommands);
        for sub in c.subcommands {
            assert_eq!(sub.name.split_once('|').unwrap().0, c.name);
            assert!(sub.subcommands.is_empty());
        }
    }
    assert!(COMMANDS.len() > 200);
}

#[test]
fn every_entry_is_found_by_its_name_in_any_case() {
    let mut n = 0;
    for spec in all_commands() {
        n += 1;
        let found = match spec.name.split_once('|') {
            None => lookup_name(spec.name.to_ascii_uppercase().as_bytes()),
            Some((container, sub)) => lookup_name(container.as_bytes())
                .and_then(|c| lookup_subcommand(c, sub.to_ascii_uppercase().as_bytes())),
        };
        assert!(std::ptr::eq(found.unwrap(), spec), "{}", spec.name);
    }
    assert_eq!(
        n,
        COMMANDS.len() + COMMANDS.iter().map(|c| c.subcommands.len()).sum::<usize>()
    );
    assert!(lookup_name(b"nosuchcommand").is_none());
    assert!(lookup_name(&[b'g'; MAX_NAME_LEN + 1]).is_none());
    assert!(lookup_name(b"").is_none());
}

#[test]
fn lookup_resolves_subcommands_and_checks_arity() {
    assert_eq!(lookup(&req(&["gEt", "k"])).unwrap().name, "get");
    assert_eq!(
        lookup(&req(&["Config", "GET", "maxmemory"])).unwrap().name,
        "config|get"
    );
    assert_eq!(
        lookup(&req(&["object", "encoding", "k"])).unwrap().name,
        "object|encoding"
    );
    assert_eq!(
        err(&["get"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err(&["config"]),
        "ERR wrong number of arguments for 'config' command"
    );
    assert_eq!(
        err(&["CONFIG", "get"]),
        "ERR wrong number of arguments for 'config|get' command"
    );
    assert_eq!(
        err(&["config", "xyz"]),
        "ERR unknown subcommand 'xyz'. Try CONFIG HELP."
    );
    assert_eq!(
        err(&["exec", "x"]),
        "EXECABORT Transaction discarded because of: \
         wrong number of arguments for 'exec' command"
    );
}

#[test]
fn unknown_command_error_is_worded_and_truncated_like_redis() {
    assert_eq!(
        err(&["foo", "bar", ""]),
        "ERR unknown command 'foo', with args beginning with: 'bar' '' "
    );
    assert_eq!(
        err(&["foo"]),
        "ERR unknown command 'foo', with args beginning with: "
    );
    // CR and LF become spaces; C strings end at NUL.
    assert_eq!(
        err(&["fo\r\no", "a\0b"]),
        "ERR unknown command 'fo  o', with args beginning with: 'a' "
    );
    // Names and arguments stop at 128 bytes; the list stops once it
    // reaches 128 bytes, and each argument gets what is left.
    let long = "n".repeat(200);
    let text = err(&[&long, &"a".repeat(100), &"b".repeat(100), "c"]);
    let expected = format!(
        "ERR unknown command '{}', with args beginning with: '{}' '{}' ",
        "n".repeat(128),
        "a".repeat(100),
        "b".repeat(128 - 103)
    );
    assert_eq!(text, expected);
    assert_eq!(
        err(&["config", &"s".repeat(200)]),
        format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            "s".repeat(128)
        )
    );
}

#[test]
fn keys_follow_the_key_specs() {
    assert_eq!(keys(&["SET", "k", "v"]), [1]);
    assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), [1, 3]);
    assert_eq!(keys(&["MGET", "a", "b", "c"]), [1, 2, 3]);
    assert_eq!(keys(&["EVAL", "s", "2", "k1", "k2", "a"]), [3, 4]);
    assert_eq!(keys(&["EVAL", "s", "0", "a"]), Vec::<usize>::new());
    assert_eq!(
        keys(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
        [1, 3, 4]
    );
    assert_eq!(
        keys(&["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]),
        [4, 5]
    );
    assert_eq!(keys(&["BLMPOP", "0", "2", "a", "b", "LEFT"]), [3, 4]);
    assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), [2]);
    assert_eq!(keys(&["XINFO", "STREAM", "k"]), [2]);
    assert_eq!(keys(&["BITOP", "AND", "d", "a", "b"]), [2, 3, 4]);
    // The STORE key spec is `unknown` in Redis 7.0.
    assert_eq!(keys(&["SORT", "k", "STORE", "d"]), [1]);
    assert_eq!(
        keys(&["GEORADIUS", "k", "0", "0", "1", "m", "STORE", "d"]),
        [1, 7]
    );
    // Shard channels are `not_key` specs, kept for slot routing.
    assert_eq!(keys(&["SPUBLISH", "ch", "m"]), [1]);
    assert_eq!(keys(&["SUBSCRIBE", "ch"]), Vec::<usize>::new());
    let r = req(&["EVAL", "s", "3", "a"]);
    assert_eq!(lookup(&r).unwrap().keys(&r).unwrap_err(), KeyError::TooMany);
}

#[test]
fn flags_and_their_names() {
    let get = lookup_name(b"get").unwrap();
    assert!(get.has_flag(flags::READONLY) && get.has_flag(flags::FAST));
    assert_eq!(
        flags::names(get.flags).collect::<Vec<_>>(),
        ["readonly", "fast"]
    );
    let all = flags::NAMES.iter().fold(0u32, |acc, (_, bit)| {
        assert_eq!(acc & bit, 0, "bit used twice");
        acc | bit
    });
    assert_eq!(all.count_ones() as usize, flags::NAMES.len());
    assert!(
        lookup_name(b"restore-asking")
            .unwrap()
            .has_flag(flags::ASKING)
    );
    assert!(lookup_name(b"blpop").unwrap().has_flag(flags::BLOCKING));
}
