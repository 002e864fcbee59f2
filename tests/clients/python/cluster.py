"""redis-py's `RedisCluster` pointed at the proxy, which emulates a cluster
whose every node is the proxy itself.

Usage: cluster.py PORT. Exits non-zero with the failing check on the first
thing that does not work; prints "redis-py cluster ok" at the end.
"""

import sys

from redis.cluster import RedisCluster

PORT = int(sys.argv[1])


def check(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


rc = RedisCluster(host="127.0.0.1", port=PORT, decode_responses=True, socket_timeout=10)
check("nodes", [n.name for n in rc.get_nodes()], [f"127.0.0.1:{PORT}"])
rc.flushall()
for i in range(50):
    rc.set(f"py:{i}", i)
check("GET", [rc.get(f"py:{i}") for i in range(50)], [str(i) for i in range(50)])
check("MGET across slots", rc.mget_nonatomic(["py:1", "py:2", "nope"]), ["1", "2", None])
pipe = rc.pipeline()
for i in range(10):
    pipe.incr(f"pc:{i}")
check("pipeline", pipe.execute(), [1] * 10)
check("HSET", rc.hset("h", mapping={"f": "v"}), 1)
check("HGETALL", rc.hgetall("h"), {"f": "v"})
check("RPUSH", rc.rpush("l", "a", "b"), 2)
check("BLPOP", rc.blpop(["l"], timeout=1), ("l", "a"))
check("ZADD", rc.zadd("z", {"m": 2}), 1)
check("ZRANGE", rc.zrange("z", 0, -1, withscores=True), [("m", 2.0)])
check("SCAN", sorted(rc.scan_iter(match="py:*", count=100)),
      sorted(f"py:{i}" for i in range(50)))
check("DBSIZE", rc.dbsize(), 63)
check("DEL", rc.delete("py:1", "py:2"), 2)
check("CLUSTER INFO", rc.cluster_info()["cluster_state"], "ok")
print("redis-py cluster ok")
