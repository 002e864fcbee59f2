"""redis-py's plain client (`redis.Redis`, not `RedisCluster`) through the proxy.

Usage: plain.py PORT [--no-scripts] [--resp3]. Exits non-zero with the
failing check on the first thing that does not work; prints "redis-py plain
ok" at the end. --no-scripts leaves out EVAL and friends (Slotway's built-in
node has none); --resp3 runs every check with `protocol=3` (HELLO 3).
"""

import sys
import threading
import time

import redis

PORT = int(sys.argv[1])
SCRIPTS = "--no-scripts" not in sys.argv[2:]
PROTOCOL = 3 if "--resp3" in sys.argv[2:] else 2


def client(**kwargs):
    return redis.Redis(
        host="127.0.0.1",
        port=PORT,
        decode_responses=True,
        socket_timeout=10,
        protocol=PROTOCOL,
        **kwargs,
    )


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def pairs(reply):
    """redis-py gives scored members as tuples on RESP2 and as lists on RESP3."""
    return [tuple(p) for p in reply]


def strings(r):
    check("SET", r.set("s:a", "1"), True)
    check("GET", r.get("s:a"), "1")
    check("INCRBY", r.incrby("s:a", 41), 42)
    check("SET NX on an existing key", r.set("s:a", "x", nx=True), None)
    check("APPEND", r.append("s:b", "ab"), 2)
    check("MSET", r.mset({f"s:m{i}": i for i in range(20)}), True)
    check("MGET", r.mget([f"s:m{i}" for i in range(20)] + ["s:none"]),
          [str(i) for i in range(20)] + [None])
    check("SETEX", r.setex("s:ttl", 100, "v"), True)
    ttl = r.ttl("s:ttl")
    check("TTL in range", 0 < ttl <= 100, True)
    check("EXISTS", r.exists("s:a", "s:b", "s:none"), 2)
    check("DEL across masters", r.delete(*[f"s:m{i}" for i in range(20)]), 20)
    check("GET of a deleted key", r.get("s:m1"), None)


def hashes(r):
    check("HSET", r.hset("h", mapping={"a": "1", "b": "2"}), 2)
    check("HGET", r.hget("h", "a"), "1")
    check("HINCRBY", r.hincrby("h", "a", 9), 10)
    check("HGETALL", r.hgetall("h"), {"a": "10", "b": "2"})
    check("HMGET", r.hmget("h", ["a", "x"]), ["10", None])
    check("HDEL", r.hdel("h", "b"), 1)
    check("HLEN", r.hlen("h"), 1)


def lists(r):
    check("RPUSH", r.rpush("l", "a", "b", "c"), 3)
    check("LPUSH", r.lpush("l", "z"), 4)
    check("LRANGE", r.lrange("l", 0, -1), ["z", "a", "b", "c"])
    check("LPOP", r.lpop("l"), "z")
    check("RPOP count", r.rpop("l", 2), ["c", "b"])
    check("LLEN", r.llen("l"), 1)


def sets(r):
    check("SADD", r.sadd("set:{1}a", "x", "y", "z"), 3)
    check("SADD", r.sadd("set:{1}b", "y", "z", "w"), 3)
    check("SISMEMBER", r.sismember("set:{1}a", "x"), True)
    check("SINTER", r.sinter("set:{1}a", "set:{1}b"), {"y", "z"})
    check("SUNION", r.sunion("set:{1}a", "set:{1}b"), {"w", "x", "y", "z"})
    check("SREM", r.srem("set:{1}a", "x"), 1)
    check("SCARD", r.scard("set:{1}a"), 2)


def sorted_sets(r):
    check("ZADD", r.zadd("z", {"a": 1, "b": 2, "c": 3}), 3)
    check("ZRANGE WITHSCORES", pairs(r.zrange("z", 0, -1, withscores=True)),
          [("a", 1.0), ("b", 2.0), ("c", 3.0)])
    check("ZINCRBY", r.zincrby("z", 10, "a"), 11.0)
    check("ZREVRANGE", r.zrevrange("z", 0, 0), ["a"])
    check("ZRANGEBYSCORE", r.zrangebyscore("z", 2, 3), ["b", "c"])
    check("ZSCORE", r.zscore("z", "b"), 2.0)
    check("ZRANK", r.zrank("z", "c"), 1)
    zpopmin = r.zpopmin("z")
    # RESP3 without a count: one flat [member, score].
    check("ZPOPMIN", pairs(zpopmin) if PROTOCOL == 2 else [tuple(zpopmin)], [("b", 2.0)])


def pipelines(r):
    # A plain pipeline spans keys on every master.
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"p:{i}", i)
    for i in range(50):
        pipe.incr(f"p:{i}")
    pipe.get("p:49")
    pipe.get("p:none")
    got = pipe.execute()
    check("pipeline SETs", got[:50], [True] * 50)
    check("pipeline INCRs", got[50:100], list(range(1, 51)))
    check("pipeline GETs", got[100:], ["50", None])
    # An error in the middle does not stop the rest.
    pipe = r.pipeline(transaction=False)
    pipe.set("p:str", "x").incr("p:str").get("p:str")
    got = pipe.execute(raise_on_error=False)
    check("pipeline error in the middle", (got[0], type(got[1]).__name__, got[2]),
          (True, "ResponseError", "x"))


def transactions(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("{t}a", 1).incr("{t}a").rpush("{t}l", "x").lrange("{t}l", 0, -1)
    check("MULTI/EXEC", pipe.execute(), [True, 2, 1, ["x"]])

    # WATCH: a change by another client aborts the transaction.
    other = client()
    with r.pipeline(transaction=True) as pipe:
        pipe.watch("{t}a")
        value = int(pipe.get("{t}a"))
        other.set("{t}a", 100)
        pipe.multi()
        pipe.set("{t}a", value + 1)
        try:
            pipe.execute()
            raise AssertionError("EXEC after a watched key changed: want WatchError")
        except redis.WatchError:
            pass
    check("watched key keeps the other client's write", r.get("{t}a"), "100")

    # The helper that retries on WatchError.
    def bump(pipe):
        value = int(pipe.get("{t}a"))
        pipe.multi()
        pipe.set("{t}a", value + 1)

    r.transaction(bump, "{t}a")
    check("transaction() helper", r.get("{t}a"), "101")
    other.close()


def pubsub(r):
    ps = r.pubsub()
    ps.subscribe("chan")
    ps.psubscribe("pat.*")
    kinds = []
    deadline = time.monotonic() + 5
    while len(kinds) < 2 and time.monotonic() < deadline:
        message = ps.get_message(timeout=1)
        if message:
            kinds.append((message["type"], message["channel"]))
    check("subscribe confirmations", sorted(kinds),
          [("psubscribe", "pat.*"), ("subscribe", "chan")])
    # PUBLISH counts every subscriber of the proxy, as one server does.
    check("PUBLISH chan", r.publish("chan", "hello"), 1)
    check("PUBLISH pat.x", r.publish("pat.x", "world"), 1)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        message = ps.get_message(ignore_subscribe_messages=True, timeout=1)
        if message:
            got.append((message["type"], message["channel"], message["data"]))
    check("messages received", got,
          [("message", "chan", "hello"), ("pmessage", "pat.x", "world")])
    ps.unsubscribe("chan")
    ps.punsubscribe("pat.*")
    ps.close()

    # Sharded pub/sub: SPUBLISH reaches the master owning the channel, where
    # the subscription is, so its count is exact.
    ps = r.pubsub()
    ps.ssubscribe("shard:{1}")
    got = None
    deadline = time.monotonic() + 5
    while got is None and time.monotonic() < deadline:
        got = ps.get_sharded_message(timeout=1)
    check("SSUBSCRIBE confirmation", (got or {}).get("type"), "ssubscribe")
    check("SPUBLISH", r.spublish("shard:{1}", "sharded"), 1)
    got = None
    deadline = time.monotonic() + 5
    while got is None and time.monotonic() < deadline:
        got = ps.get_sharded_message(ignore_subscribe_messages=True, timeout=1)
    check("sharded message", (got or {}).get("data"), "sharded")
    ps.sunsubscribe("shard:{1}")
    ps.close()
    # The client's other connections still answer plain commands.
    check("PING after pub/sub", r.ping(), True)


def blocking_pops(r):
    check("BLPOP on an empty list times out", r.blpop(["b:empty"], timeout=0.2), None)
    r.rpush("b:ready", "now")
    check("BLPOP on a filled list", tuple(r.blpop(["b:ready"], timeout=1)), ("b:ready", "now"))

    def push_later():
        time.sleep(0.3)
        client().rpush("b:later", "late")

    pusher = threading.Thread(target=push_later)
    pusher.start()
    started = time.monotonic()
    got = tuple(r.brpop(["b:later"], timeout=5))
    pusher.join()
    check("BRPOP woken by another client's push", got, ("b:later", "late"))
    check("BRPOP waited for the push", time.monotonic() - started >= 0.2, True)
    r.zadd("b:z", {"m": 1})
    check("BZPOPMIN", tuple(r.bzpopmin(["b:z"], timeout=1)), ("b:z", "m", 1.0))


def scripts(r):
    check("EVAL", r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "sc:a", "v"), "OK")
    check("EVAL reads back", r.eval("return redis.call('GET', KEYS[1])", 1, "sc:a"), "v")
    sha = r.script_load("return tonumber(ARGV[1]) * 2")
    check("EVALSHA", r.evalsha(sha, 0, 21), 42)
    check("SCRIPT EXISTS", r.script_exists(sha), [True])
    # register_script tries EVALSHA first and falls back to EVAL on
    # NOSCRIPT; a fresh body proves the fallback.
    incr_by = r.register_script(
        "return redis.call('INCRBY', KEYS[1], ARGV[1]) -- " + str(time.time()))
    check("registered script (NOSCRIPT then EVAL)", incr_by(keys=["sc:n"], args=[5]), 5)
    check("registered script (EVALSHA)", incr_by(keys=["sc:n"], args=[5]), 10)
    pipe = r.pipeline()
    incr_by(keys=["sc:n"], args=[1], client=pipe)
    check("registered script in a pipeline", pipe.execute(), [11])


def scan_iteration(r):
    keys = {f"scan:{i}" for i in range(300)}
    r.mset({k: 1 for k in keys})
    check("SCAN walks every master", set(r.scan_iter(match="scan:*", count=50)), keys)
    check("SCAN with a type", set(r.scan_iter(match="scan:1?", _type="string")),
          {f"scan:{i}" for i in range(10, 20)})
    r.hset("scan:h", mapping={f"f{i}": i for i in range(200)})
    check("HSCAN", len(dict(r.hscan_iter("scan:h", count=20))), 200)
    r.sadd("scan:s", *range(200))
    check("SSCAN", len(set(r.sscan_iter("scan:s", count=20))), 200)
    r.zadd("scan:z", {f"m{i}": i for i in range(200)})
    check("ZSCAN", len(list(r.zscan_iter("scan:z", count=20))), 200)


def main():
    r = client()
    check("PING", r.ping(), True)
    hello = r.execute_command("HELLO")
    # A map on RESP3, a flat list on RESP2.
    if isinstance(hello, list):
        hello = dict(zip(hello[::2], hello[1::2]))
    check("protocol", hello["proto"], PROTOCOL)
    r.flushall()
    checks = [strings, hashes, lists, sets, sorted_sets, pipelines, transactions,
              pubsub, blocking_pops, scan_iteration]
    if SCRIPTS:
        checks.append(scripts)
    for run in checks:
        try:
            run(r)
        except Exception as e:
            print(f"redis-py plain: {run.__name__} failed: {e!r}", file=sys.stderr)
            raise
        print(f"redis-py plain: {run.__name__} ok")
    print("redis-py plain ok")


if __name__ == "__main__":
    main()
