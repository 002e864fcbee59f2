// ioredis's plain client (`Redis`, not `Cluster`) through the proxy.
//
// Usage: node plain.mjs PORT [--no-scripts]. Exits non-zero with the failing
// check on the first thing that does not work; prints "ioredis plain ok" at
// the end. --no-scripts leaves out EVAL and friends (Slotway's built-in node
// has none).

import assert from "node:assert/strict";
import Redis from "ioredis";

const port = Number(process.argv[2]);
const scripts = !process.argv.slice(3).includes("--no-scripts");

function client() {
  return new Redis({
    host: "127.0.0.1",
    port,
    // Fail fast instead of retrying forever: a test wants the error.
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    commandTimeout: 10000,
    lazyConnect: true,
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function strings(r) {
  assert.equal(await r.set("s:a", "1"), "OK", "SET");
  assert.equal(await r.get("s:a"), "1", "GET");
  assert.equal(await r.incrby("s:a", 41), 42, "INCRBY");
  assert.equal(await r.set("s:a", "x", "NX"), null, "SET NX on an existing key");
  const keys = Array.from({ length: 20 }, (_, i) => `s:m${i}`);
  assert.equal(await r.mset(Object.fromEntries(keys.map((k, i) => [k, i]))), "OK", "MSET");
  assert.deepEqual(
    await r.mget(...keys, "s:none"),
    [...keys.map((_, i) => String(i)), null],
    "MGET across masters",
  );
  assert.equal(await r.setex("s:ttl", 100, "v"), "OK", "SETEX");
  const ttl = await r.ttl("s:ttl");
  assert.ok(ttl > 0 && ttl <= 100, `TTL ${ttl}`);
  assert.equal(await r.exists("s:a", "s:ttl", "s:none"), 2, "EXISTS");
  assert.equal(await r.del(...keys), 20, "DEL across masters");
}

async function hashes(r) {
  assert.equal(await r.hset("h", { a: "1", b: "2" }), 2, "HSET");
  assert.equal(await r.hincrby("h", "a", 9), 10, "HINCRBY");
  assert.deepEqual(await r.hgetall("h"), { a: "10", b: "2" }, "HGETALL");
  assert.deepEqual(await r.hmget("h", "a", "x"), ["10", null], "HMGET");
  assert.equal(await r.hdel("h", "b"), 1, "HDEL");
  assert.equal(await r.hlen("h"), 1, "HLEN");
}

async function lists(r) {
  assert.equal(await r.rpush("l", "a", "b", "c"), 3, "RPUSH");
  assert.equal(await r.lpush("l", "z"), 4, "LPUSH");
  assert.deepEqual(await r.lrange("l", 0, -1), ["z", "a", "b", "c"], "LRANGE");
  assert.equal(await r.lpop("l"), "z", "LPOP");
  assert.deepEqual(await r.rpop("l", 2), ["c", "b"], "RPOP count");
  assert.equal(await r.llen("l"), 1, "LLEN");
}

async function sets(r) {
  assert.equal(await r.sadd("set:{1}a", "x", "y", "z"), 3, "SADD");
  assert.equal(await r.sadd("set:{1}b", "y", "z", "w"), 3, "SADD");
  assert.equal(await r.sismember("set:{1}a", "x"), 1, "SISMEMBER");
  assert.deepEqual((await r.sinter("set:{1}a", "set:{1}b")).sort(), ["y", "z"], "SINTER");
  assert.equal(await r.srem("set:{1}a", "x"), 1, "SREM");
  assert.equal(await r.scard("set:{1}a"), 2, "SCARD");
}

async function sortedSets(r) {
  assert.equal(await r.zadd("z", 1, "a", 2, "b", 3, "c"), 3, "ZADD");
  assert.deepEqual(
    await r.zrange("z", 0, -1, "WITHSCORES"),
    ["a", "1", "b", "2", "c", "3"],
    "ZRANGE WITHSCORES",
  );
  assert.equal(await r.zincrby("z", 10, "a"), "11", "ZINCRBY");
  assert.deepEqual(await r.zrangebyscore("z", 2, 3), ["b", "c"], "ZRANGEBYSCORE");
  assert.equal(await r.zscore("z", "b"), "2", "ZSCORE");
  assert.equal(await r.zrank("z", "c"), 1, "ZRANK");
  assert.deepEqual(await r.zpopmin("z"), ["b", "2"], "ZPOPMIN");
}

async function pipelines(r) {
  const pipe = r.pipeline();
  for (let i = 0; i < 50; i++) pipe.set(`p:${i}`, i);
  for (let i = 0; i < 50; i++) pipe.incr(`p:${i}`);
  pipe.get("p:49").get("p:none");
  const got = await pipe.exec();
  assert.ok(got.every(([err]) => err === null), `pipeline errors: ${got}`);
  const values = got.map(([, v]) => v);
  assert.deepEqual(values.slice(0, 50), Array(50).fill("OK"), "pipeline SETs");
  assert.deepEqual(values.slice(50, 100), Array.from({ length: 50 }, (_, i) => i + 1), "pipeline INCRs");
  assert.deepEqual(values.slice(100), ["50", null], "pipeline GETs");
  // An error in the middle does not stop the rest.
  const mixed = await r.pipeline().set("p:str", "x").incr("p:str").get("p:str").exec();
  assert.equal(mixed[0][1], "OK");
  assert.match(String(mixed[1][0]), /not an integer/, "pipeline error in the middle");
  assert.equal(mixed[2][1], "x");
}

async function transactions(r) {
  const got = await r.multi().set("{t}a", 1).incr("{t}a").rpush("{t}l", "x").lrange("{t}l", 0, -1).exec();
  assert.deepEqual(got, [[null, "OK"], [null, 2], [null, 1], [null, ["x"]]], "MULTI/EXEC");

  // WATCH: a change by another client aborts the transaction (EXEC: null).
  const other = client();
  await other.connect();
  assert.equal(await r.watch("{t}a"), "OK", "WATCH");
  await other.set("{t}a", 100);
  assert.equal(await r.multi().set("{t}a", 3).exec(), null, "EXEC after a watched key changed");
  assert.equal(await r.get("{t}a"), "100", "watched key keeps the other client's write");
  // An unchanged watched key lets EXEC through.
  await r.watch("{t}a");
  assert.deepEqual(await r.multi().incr("{t}a").exec(), [[null, 101]], "EXEC with WATCH, no change");
  other.disconnect();
}

async function pubsub(r) {
  const sub = client();
  await sub.connect();
  const got = [];
  sub.on("message", (channel, message) => got.push(["message", channel, message]));
  sub.on("pmessage", (pattern, channel, message) => got.push(["pmessage", channel, message]));
  assert.equal(await sub.subscribe("chan"), 1, "SUBSCRIBE");
  assert.equal(await sub.psubscribe("pat.*"), 2, "PSUBSCRIBE");
  // PUBLISH counts every subscriber of the proxy, as one server does.
  assert.equal(await r.publish("chan", "hello"), 1, "PUBLISH chan");
  assert.equal(await r.publish("pat.x", "world"), 1, "PUBLISH pat.x");
  for (let i = 0; i < 50 && got.length < 2; i++) await sleep(100);
  assert.deepEqual(
    got,
    [["message", "chan", "hello"], ["pmessage", "pat.x", "world"]],
    "messages received",
  );
  await sub.unsubscribe("chan");
  await sub.punsubscribe("pat.*");
  // Sharded pub/sub: SPUBLISH reaches the master owning the channel.
  const sharded = [];
  sub.on("smessage", (channel, message) => sharded.push([channel, message]));
  assert.equal(await sub.ssubscribe("shard:{1}"), 1, "SSUBSCRIBE");
  assert.equal(await r.spublish("shard:{1}", "sharded"), 1, "SPUBLISH");
  for (let i = 0; i < 50 && sharded.length < 1; i++) await sleep(100);
  assert.deepEqual(sharded, [["shard:{1}", "sharded"]], "sharded message");
  sub.disconnect();
  assert.equal(await r.ping(), "PONG", "PING after pub/sub");
}

async function blockingPops(r) {
  assert.equal(await r.blpop("b:empty", 0.2), null, "BLPOP on an empty list times out");
  await r.rpush("b:ready", "now");
  assert.deepEqual(await r.blpop("b:ready", 1), ["b:ready", "now"], "BLPOP on a filled list");
  const pusher = client();
  await pusher.connect();
  const started = Date.now();
  setTimeout(() => pusher.rpush("b:later", "late"), 300);
  assert.deepEqual(await r.brpop("b:later", 5), ["b:later", "late"], "BRPOP woken by a push");
  assert.ok(Date.now() - started >= 200, "BRPOP waited for the push");
  pusher.disconnect();
  await r.zadd("b:z", 1, "m");
  assert.deepEqual(await r.bzpopmin("b:z", 1), ["b:z", "m", "1"], "BZPOPMIN");
}

async function scriptsCheck(r) {
  assert.equal(await r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "sc:a", "v"), "OK", "EVAL");
  const sha = await r.script("LOAD", "return tonumber(ARGV[1]) * 2");
  assert.equal(await r.evalsha(sha, 0, 21), 42, "EVALSHA");
  assert.deepEqual(await r.script("EXISTS", sha), [1], "SCRIPT EXISTS");
  // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT; a
  // fresh body proves the fallback.
  r.defineCommand("incrByScript", {
    numberOfKeys: 1,
    lua: `return redis.call('INCRBY', KEYS[1], ARGV[1]) -- ${Date.now()}`,
  });
  assert.equal(await r.incrByScript("sc:n", 5), 5, "defined command (NOSCRIPT then EVAL)");
  assert.equal(await r.incrByScript("sc:n", 5), 10, "defined command (EVALSHA)");
  const piped = await r.pipeline().incrByScript("sc:n", 1).exec();
  assert.deepEqual(piped, [[null, 11]], "defined command in a pipeline");
}

function collect(stream) {
  return new Promise((resolve, reject) => {
    const all = [];
    stream.on("data", (batch) => all.push(...batch));
    stream.on("end", () => resolve(all));
    stream.on("error", reject);
  });
}

async function scanIteration(r) {
  const keys = Array.from({ length: 300 }, (_, i) => `scan:${i}`);
  await r.mset(Object.fromEntries(keys.map((k) => [k, 1])));
  const seen = await collect(r.scanStream({ match: "scan:*", count: 50 }));
  assert.deepEqual([...new Set(seen)].sort(), keys.sort(), "SCAN walks every master");
  await r.hset("scan:h", Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, i])));
  const fields = await collect(r.hscanStream("scan:h", { count: 20 }));
  assert.equal(new Set(fields.filter((_, i) => i % 2 === 0)).size, 200, "HSCAN");
  await r.sadd("scan:s", ...Array.from({ length: 200 }, (_, i) => i));
  assert.equal(new Set(await collect(r.sscanStream("scan:s", { count: 20 }))).size, 200, "SSCAN");
  await r.zadd("scan:z", ...Array.from({ length: 200 }, (_, i) => [i, `m${i}`]).flat());
  const members = await collect(r.zscanStream("scan:z", { count: 20 }));
  assert.equal(new Set(members.filter((_, i) => i % 2 === 0)).size, 200, "ZSCAN");
}

async function main() {
  const r = client();
  await r.connect();
  assert.equal(await r.ping(), "PONG", "PING");
  await r.flushall();
  const checks = [strings, hashes, lists, sets, sortedSets, pipelines, transactions, pubsub, blockingPops, scanIteration];
  if (scripts) checks.push(scriptsCheck);
  for (const run of checks) {
    try {
      await run(r);
    } catch (e) {
      console.error(`ioredis plain: ${run.name} failed:`, e);
      process.exit(1);
    }
    console.log(`ioredis plain: ${run.name} ok`);
  }
  r.disconnect();
  console.log("ioredis plain ok");
}

main().catch((e) => {
  console.error("ioredis plain:", e);
  process.exit(1);
});
