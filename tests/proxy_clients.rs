//! CLIENT commands about the proxy's own clients: LIST, INFO, KILL across
//! worker threads (blocked and subscribed clients included), SETINFO,
//! NO-EVICT, REPLY, PAUSE/UNPAUSE, UNBLOCK.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

fn setup(backend: Backend) -> Option<(RedisCluster, Proxy)> {
    // Several workers, so a kill must cross threads.
    let opts = ProxyOptions {
        env: vec![("SLOTWAY_WORKERS".into(), "4".into())],
        ..ProxyOptions::default()
    };
    cluster_with_proxy(backend, 0, opts)
}

/// The CLIENT LIST line of client `id`, from `list`.
fn line_of(list: &str, id: i64) -> Option<String> {
    list.lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .map(str::to_string)
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// Waits until `check` holds for CLIENT LIST, bounded.
fn list_until(c: &mut TestClient, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = c.cmd(&["CLIENT", "LIST"]).expect_str().to_string();
        if check(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}; CLIENT LIST:\n{list}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn client_list_and_info(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut a = proxy.client();
    let mut b = proxy.client();
    let mut sub = proxy.client();
    a.cmd(&["CLIENT", "SETNAME", "alpha"]).expect_ok();
    b.cmd(&["CLIENT", "SETNAME", "beta"]).expect_ok();
    a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "slotway-test"])
        .expect_ok();
    a.cmd(&["CLIENT", "SETINFO", "lib-ver", "1.2.3"])
        .expect_ok();
    a.cmd(&["CLIENT", "NO-EVICT", "on"]).expect_ok();
    b.cmd(&["SET", "k", "v"]).expect_ok();
    let (ida, idb) = (
        a.cmd(&["CLIENT", "ID"]).expect_int(),
        b.cmd(&["CLIENT", "ID"]).expect_int(),
    );
    sub.send_raw(&encode_command(&["SUBSCRIBE", "news", "sport"]));
    sub.read_reply();
    sub.read_reply();
    let ids = sub_id(&proxy, &mut a, ida, idb);

    let list = list_until(&mut a, "the subscriber shows sub=2", |l| {
        line_of(l, ids).is_some_and(|s| field(&s, "sub") == "2")
    });
    let la = line_of(&list, ida).unwrap();
    let lb = line_of(&list, idb).unwrap();
    assert_eq!(field(&la, "name"), "alpha");
    assert_eq!(field(&la, "lib-name"), "slotway-test");
    assert_eq!(field(&la, "lib-ver"), "1.2.3");
    assert_eq!(field(&la, "flags"), "e");
    assert_eq!(field(&la, "cmd"), "client|list");
    assert_eq!(field(&lb, "name"), "beta");
    assert_eq!(field(&lb, "flags"), "N");
    assert_eq!(field(&lb, "cmd"), "client|id");
    assert_eq!(field(&lb, "laddr"), proxy.addr());
    let ls = line_of(&list, ids).unwrap();
    assert_eq!(field(&ls, "flags"), "P");
    assert_eq!(field(&ls, "cmd"), "subscribe");

    // CLIENT INFO is the caller's own line.
    let info = b.cmd(&["CLIENT", "INFO"]).expect_str().to_string();
    assert!(info.starts_with(&format!("id={idb} addr=")), "{info}");
    assert!(info.ends_with('\n'), "{info:?}");
    assert_eq!(field(info.trim_end(), "name"), "beta");

    // Filters.
    let normal = a.cmd(&["CLIENT", "LIST", "TYPE", "normal"]);
    let normal = normal.expect_str();
    assert!(line_of(normal, ida).is_some() && line_of(normal, ids).is_none());
    let pubsub = a.cmd(&["CLIENT", "LIST", "TYPE", "PUBSUB"]);
    assert_eq!(pubsub.expect_str().lines().count(), 1);
    let by_id = a.cmd(&["CLIENT", "LIST", "ID", &idb.to_string(), "999999"]);
    assert_eq!(by_id.expect_str().lines().count(), 1);
    assert!(by_id.expect_str().starts_with(&format!("id={idb} ")));

    // Redis's errors.
    for (args, err) in [
        (
            &["CLIENT", "LIST", "TYPE", "bogus"][..],
            "ERR Unknown client type 'bogus'",
        ),
        (&["CLIENT", "LIST", "ID", "x"], "ERR Invalid client ID"),
        (&["CLIENT", "LIST", "FOO"], "ERR syntax error"),
        (
            &["CLIENT", "SETINFO", "lib-color", "x"],
            "ERR Unrecognized option 'lib-color'",
        ),
        (
            &["CLIENT", "SETINFO", "lib-name", "a b"],
            "ERR lib-name cannot contain spaces, newlines or special characters.",
        ),
        (
            &["CLIENT", "SETINFO", "lib-name"],
            "ERR wrong number of arguments for 'client|setinfo' command",
        ),
        (&["CLIENT", "NO-EVICT", "maybe"], "ERR syntax error"),
        (&["CLIENT", "REPLY", "loud"], "ERR syntax error"),
    ] {
        assert_eq!(a.cmd(args).expect_error(), err, "{args:?}");
    }
    // RESET forgets the name; the connection keeps working.
    assert_eq!(a.cmd(&["RESET"]).expect_str(), "RESET");
    let info = a.cmd(&["CLIENT", "INFO"]).expect_str().to_string();
    assert_eq!(field(info.trim_end(), "name"), "");
    assert_eq!(a.cmd(&["GET", "k"]).expect_str(), "v");
}

/// The subscriber's id: the one listed that is neither `a` nor `b`.
fn sub_id(_proxy: &Proxy, a: &mut TestClient, ida: i64, idb: i64) -> i64 {
    let list = list_until(a, "three clients listed", |l| l.lines().count() == 3);
    list.lines()
        .map(|l| field(l, "id").parse::<i64>().unwrap())
        .find(|&id| id != ida && id != idb)
        .unwrap()
}

fn client_kill(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut admin = proxy.client();
    let mut victim = proxy.client();
    let mut bystander = proxy.client();
    let mut blocked = proxy.client();
    let mut sub = proxy.client();
    let victim_id = victim.cmd(&["CLIENT", "ID"]).expect_int();
    bystander.cmd(&["SET", "{k}a", "1"]).expect_ok();

    // By ID: exactly that client goes.
    let reply = admin.cmd(&["CLIENT", "KILL", "ID", &victim_id.to_string()]);
    assert_eq!(reply.expect_int(), 1);
    assert!(victim.read_raw_until_close().is_empty());
    assert_eq!(bystander.cmd(&["GET", "{k}a"]).expect_str(), "1");
    assert_eq!(
        admin
            .cmd(&["CLIENT", "KILL", "ID", &victim_id.to_string()])
            .expect_int(),
        0
    );

    // A blocked client, by its address in the old form: its BLPOP leaves
    // the node with it (a value pushed afterwards stays in the list).
    blocked.send_raw(&encode_command(&["BLPOP", "{k}list", "0"]));
    let blocked_id = {
        let list = list_until(&mut admin, "the BLPOP shows flag b", |l| {
            l.lines().any(|l| field(l, "flags") == "b")
        });
        let line = list
            .lines()
            .find(|l| field(l, "flags") == "b")
            .unwrap()
            .to_string();
        assert_eq!(field(&line, "cmd"), "blpop");
        field(&line, "addr").to_string()
    };
    admin
        .cmd(&["CLIENT", "KILL", blocked_id.as_str()])
        .expect_ok();
    assert!(blocked.read_raw_until_close().is_empty());
    assert_eq!(
        admin
            .cmd(&["CLIENT", "KILL", blocked_id.as_str()])
            .expect_error(),
        "ERR No such client"
    );
    // The node hears of the closed connection a moment later: once it no
    // longer counts a blocked client, a push must stay in the list.
    let master = cluster
        .master_for_slot(slotway::cluster::key_slot(b"{k}list"))
        .unwrap();
    let mut node = cluster.client(master);
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        let info = node.cmd(&["INFO", "clients"]).expect_str().to_string();
        info_field(&info, "blocked_clients") == Some("0")
    });
    admin.cmd(&["RPUSH", "{k}list", "x"]).expect_int();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(admin.cmd(&["LLEN", "{k}list"]).expect_int(), 1);

    // Subscribers, by type.
    sub.send_raw(&encode_command(&["SUBSCRIBE", "news"]));
    sub.read_reply();
    assert_eq!(
        admin
            .cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])
            .expect_int(),
        1
    );
    assert!(sub.read_raw_until_close().is_empty());
    assert_eq!(bystander.cmd(&["GET", "{k}a"]).expect_str(), "1");

    // Filters and errors as Redis words them.
    let laddr = proxy.addr().to_string();
    for (args, err) in [
        (
            &["CLIENT", "KILL", "ID", "0"][..],
            "ERR client-id should be greater than 0",
        ),
        (
            &["CLIENT", "KILL", "TYPE", "odd"],
            "ERR Unknown client type 'odd'",
        ),
        (&["CLIENT", "KILL", "USER", "bob"], "ERR No such user 'bob'"),
        (&["CLIENT", "KILL", "SKIPME", "maybe"], "ERR syntax error"),
        (&["CLIENT", "KILL", "ID", "1", "ADDR"], "ERR syntax error"),
        (&["CLIENT", "KILL", "1.2.3.4:5"], "ERR No such client"),
    ] {
        assert_eq!(admin.cmd(args).expect_error(), err, "{args:?}");
    }
    assert_eq!(
        admin
            .cmd(&["CLIENT", "KILL", "TYPE", "master"])
            .expect_int(),
        0
    );
    // Everyone else on this listener (SKIPME yes by default): the bystander.
    assert_eq!(
        admin
            .cmd(&["CLIENT", "KILL", "LADDR", &laddr, "USER", "default"])
            .expect_int(),
        1
    );
    assert!(bystander.read_raw_until_close().is_empty());
    // SKIPME no: the caller gets its reply, then its connection closes.
    let me = admin.cmd(&["CLIENT", "ID"]).expect_int();
    admin.send_raw(&encode_command(&[
        "CLIENT",
        "KILL",
        "ID",
        &me.to_string(),
        "SKIPME",
        "no",
    ]));
    assert_eq!(admin.read_raw_until_close(), b":1\r\n");
    let mut fresh = proxy.client();
    assert_eq!(fresh.cmd(&["GET", "{k}a"]).expect_str(), "1");
}

fn client_reply(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut c = proxy.client();
    // OFF: nothing comes back, the commands still run; ON answers +OK.
    c.send_raw(&encode_command(&["CLIENT", "REPLY", "OFF"]));
    c.send_raw(&encode_command(&["SET", "r", "1"]));
    c.send_raw(&encode_command(&["INCR", "r"]));
    c.send_raw(&encode_command(&["NOSUCHCOMMAND"]));
    c.send_raw(&encode_command(&["CLIENT", "REPLY", "SKIP"]));
    assert!(c.read_raw_for(Duration::from_millis(200)).is_empty());
    c.cmd(&["CLIENT", "REPLY", "ON"]).expect_ok();
    assert_eq!(c.cmd(&["GET", "r"]).expect_str(), "2");
    // SKIP: only the next command's reply is dropped.
    c.send_raw(&encode_command(&["CLIENT", "REPLY", "SKIP"]));
    c.send_raw(&encode_command(&["INCR", "r"]));
    c.send_raw(&encode_command(&["INCR", "r"]));
    assert_eq!(c.read_reply().expect_int(), 4);
    assert_eq!(c.cmd(&["PING"]).expect_str(), "PONG");
}

/// `c`'s error reply to `args`.
fn error(c: &mut TestClient, args: &[&str]) -> String {
    c.cmd(args).expect_error().to_string()
}

/// How long `c` takes to answer `args`.
fn timed(c: &mut TestClient, args: &[&str]) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = c.cmd(args);
    (reply, started.elapsed())
}

/// CLIENT PAUSE holds (never refuses) the proxy's clients' commands until
/// the pause ends: all of them in ALL mode, the pausing client's too, as in
/// Redis; only writes in WRITE mode. CLIENT UNPAUSE ends it early.
fn client_pause(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let pause = Duration::from_millis(300);
    let early = pause * 4 / 5;
    let mut admin = proxy.client();
    let mut other = proxy.client();
    other.cmd(&["SET", "pk", "0"]).expect_ok();

    admin.cmd(&["CLIENT", "PAUSE", "300"]).expect_ok();
    let (reply, held) = timed(&mut other, &["SET", "pk", "1"]);
    reply.expect_ok();
    assert!(held >= early && held < pause * 4, "SET held {held:?}");

    // WRITE: reads go through at once, writes wait.
    admin.cmd(&["CLIENT", "PAUSE", "300", "WRITE"]).expect_ok();
    let (reply, read) = timed(&mut other, &["GET", "pk"]);
    assert_eq!(reply.expect_str(), "1");
    let (reply, held) = timed(&mut other, &["INCR", "pk"]);
    assert_eq!(reply.expect_int(), 2);
    assert!(read < early, "GET held {read:?} by a WRITE pause");
    assert!(
        held + read >= early && held < pause * 4,
        "INCR held {held:?}"
    );

    // UNPAUSE releases a held write at once (a WRITE pause lets UNPAUSE
    // itself through).
    admin
        .cmd(&["CLIENT", "PAUSE", "20000", "WRITE"])
        .expect_ok();
    let started = Instant::now();
    other.send_raw(&encode_command(&["INCR", "pk"]));
    assert!(other.read_raw_for(Duration::from_millis(300)).is_empty());
    admin.cmd(&["CLIENT", "UNPAUSE"]).expect_ok();
    assert_eq!(other.read_reply().expect_int(), 3);
    assert!(started.elapsed() < Duration::from_secs(3));

    // The pausing client is paused like any other.
    admin.cmd(&["CLIENT", "PAUSE", "300", "ALL"]).expect_ok();
    let (reply, held) = timed(&mut admin, &["PING"]);
    assert_eq!(reply.expect_str(), "PONG");
    assert!(held >= early, "the pausing client's PING held {held:?}");

    // Redis's errors, in Redis's order.
    assert_eq!(
        error(&mut admin, &["CLIENT", "PAUSE", "x"]),
        "ERR timeout is not an integer or out of range"
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "PAUSE", "-1"]),
        "ERR timeout is negative"
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "PAUSE", "x", "SOMETIMES"]),
        "ERR CLIENT PAUSE mode must be WRITE or ALL"
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "PAUSE", "9223372036854775807"]),
        "ERR timeout is out of range"
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "PAUSE", "1", "ALL", "x"]),
        "ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP."
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "UNPAUSE", "x"]),
        "ERR wrong number of arguments for 'client|unpause' command"
    );
}

/// CLIENT UNBLOCK ends a proxy client's blocking command the way Redis
/// does, through the node that holds it blocked: TIMEOUT answers the
/// command's timeout reply, ERROR an `-UNBLOCKED` error; the client's
/// connection stays usable. A client not blocked gets `:0`.
fn client_unblock(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut blocked = proxy.client();
    let mut admin = proxy.client();
    let id = blocked.cmd(&["CLIENT", "ID"]).expect_int().to_string();
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).expect_int(), 0);
    for (mode, list) in [("TIMEOUT", "ub:t"), ("ERROR", "ub:e")] {
        blocked.send_raw(&encode_command(&["BLPOP", list, "0"]));
        // It counts as blocked once the node holds it.
        eventually(Duration::from_secs(5), Duration::from_millis(20), || {
            admin.cmd(&["CLIENT", "UNBLOCK", &id, mode]).expect_int() == 1
        });
        let reply = blocked.read_reply();
        match mode {
            "TIMEOUT" => assert!(reply.is_nil(), "{mode}: {reply:?}"),
            _ => assert_eq!(
                reply.expect_error(),
                "UNBLOCKED client unblocked via CLIENT UNBLOCK"
            ),
        }
        // Still usable, blocking commands included.
        assert_eq!(blocked.cmd(&["RPUSH", list, "x"]).expect_int(), 1);
        let popped = blocked.cmd(&["BLPOP", list, "0"]);
        assert_eq!(
            popped,
            Reply::Array(Some(vec![Reply::bulk(list), Reply::bulk("x")]))
        );
        assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).expect_int(), 0);
    }
    assert_eq!(
        error(&mut admin, &["CLIENT", "UNBLOCK", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "UNBLOCK", "x", "LATER"]),
        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"
    );
    assert_eq!(
        error(&mut admin, &["CLIENT", "UNBLOCK", &id, "TIMEOUT", "x"]),
        "ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT HELP."
    );
}

/// The ids of the node's clients blocked in a command (`b` in their flags).
fn blocked_on_node(node: &mut TestClient) -> Vec<String> {
    let list = node.cmd(&["CLIENT", "LIST"]);
    list.expect_str()
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('b')))
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect()
}

/// The connection a CLIENT UNBLOCK named is closed, not pooled: the next
/// blocking command runs on another one, so an UNBLOCK still on its way
/// could never end someone else's command.
fn an_unblocked_connection_is_not_reused(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend) else {
        return;
    };
    let list = "ub:reuse";
    let master = cluster.master_for_slot(key_slot(list.as_bytes())).unwrap();
    let mut node = cluster.client(master);
    let mut first = proxy.client();
    let mut second = proxy.client();
    let mut admin = proxy.client();
    let blocked_on = |node: &mut TestClient| {
        let mut ids = Vec::new();
        eventually(Duration::from_secs(5), Duration::from_millis(20), || {
            ids = blocked_on_node(node);
            ids.len() == 1
        });
        ids.remove(0)
    };
    let id = first.cmd(&["CLIENT", "ID"]).expect_int().to_string();
    first.send_raw(&encode_command(&["BLPOP", list, "0"]));
    let used = blocked_on(&mut node);
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).expect_int(), 1);
    assert!(first.read_reply().is_nil());
    second.send_raw(&encode_command(&["BLPOP", list, "0"]));
    let next = blocked_on(&mut node);
    assert_ne!(used, next, "the unblocked connection was reused");
    let open = node.cmd(&["CLIENT", "LIST"]);
    assert!(
        !open
            .expect_str()
            .lines()
            .any(|l| l.starts_with(&format!("id={used} "))),
        "the unblocked connection is still open: {open:?}"
    );
    // An ordinary end (a push) pools the connection: the next blocking
    // command reuses it.
    assert_eq!(admin.cmd(&["RPUSH", list, "x"]).expect_int(), 1);
    assert_eq!(second.read_reply().expect_array().len(), 2);
    first.send_raw(&encode_command(&["BLPOP", list, "0"]));
    assert_eq!(blocked_on(&mut node), next);
    admin.cmd(&["RPUSH", list, "y"]);
    assert_eq!(first.read_reply().expect_array().len(), 2);
}

on_both_backends!(
    client_list_and_info,
    client_kill,
    client_reply,
    client_pause,
    client_unblock,
    an_unblocked_connection_is_not_reused
);

/// WAIT counts the replicas that acknowledged this client's writes, on every
/// master it wrote to, without holding up anyone else's requests.
fn wait_counts_replicas(backend: Backend) {
    let Some((mut cluster, proxy)) = cluster_with_proxy(backend, 1, ProxyOptions::default()) else {
        return;
    };
    let mut c = proxy.client();
    // The replicas may still be syncing: the first WAIT may take a while.
    c.cmd(&["SET", "{a}k", "0"]).expect_ok();
    assert_eq!(c.cmd(&["WAIT", "1", "10000"]).expect_int(), 1);
    // Writes to one master, then to all three: one replica each holds them.
    // Acknowledgements are asked for, not waited a second for.
    let started = Instant::now();
    for i in 0..5 {
        let v = i.to_string();
        c.cmd(&["SET", "{a}k", &v]).expect_ok();
        assert_eq!(c.cmd(&["WAIT", "1", "5000"]).expect_int(), 1);
    }
    c.cmd(&["MSET", "{a}x", "1", "{b}x", "2", "{c}x", "3"])
        .expect_ok();
    assert_eq!(c.cmd(&["WAIT", "1", "5000"]).expect_int(), 1);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "6 WAITs took {took:?}");
    // A replica that has not acknowledged this client's last write does not
    // count (a WAIT on a connection that wrote nothing would count it).
    let master = cluster.master_for_slot(key_slot(b"{a}k")).unwrap();
    let replica = cluster.replicas_of(master)[0];
    cluster.stop(replica);
    c.cmd(&["SET", "{a}k", "frozen"]).expect_ok();
    assert_eq!(c.cmd(&["WAIT", "1", "300"]).expect_int(), 0);
    cluster.cont(replica);
    assert_eq!(c.cmd(&["WAIT", "1", "5000"]).expect_int(), 1);
    // More replicas than there are: the timeout, then the count.
    let started = Instant::now();
    assert_eq!(c.cmd(&["WAIT", "2", "300"]).expect_int(), 1);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A WAIT that never ends holds no shared link: another client's
    // requests to the same masters go through meanwhile.
    let mut blocked = proxy.client();
    blocked.cmd(&["SET", "{a}k", "b"]).expect_ok();
    blocked.send_raw(&encode_command(&["WAIT", "5", "0"]));
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    for _ in 0..20 {
        c.cmd(&["INCR", "{a}n"]).expect_int();
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(blocked.read_raw_for(Duration::from_millis(100)).is_empty());
    drop(blocked);

    for (args, err) in [
        (
            &["WAIT", "x", "10"][..],
            "ERR value is not an integer or out of range",
        ),
        (
            &["WAIT", "1", "x"],
            "ERR timeout is not an integer or out of range",
        ),
        (&["WAIT", "1", "-1"], "ERR timeout is negative"),
    ] {
        assert_eq!(c.cmd(args).expect_error(), err, "{args:?}");
    }
    assert_eq!(c.cmd(&["GET", "{a}k"]).expect_str(), "b");
}

on_both_backends!(wait_counts_replicas);
