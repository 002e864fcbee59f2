// ioredis's `Cluster` pointed at the proxy, which emulates a cluster whose
// every node is the proxy itself.
//
// Usage: node cluster.mjs PORT. Exits non-zero with the failing check on the
// first thing that does not work; prints "ioredis cluster ok" at the end.

import assert from "node:assert/strict";
import Redis from "ioredis";

const port = Number(process.argv[2]);

async function main() {
  const c = new Redis.Cluster([{ host: "127.0.0.1", port }], {
    // Fail fast instead of retrying forever: a test wants the error.
    clusterRetryStrategy: () => null,
    redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 10000 },
  });
  await c.flushall();
  const masters = c.nodes("master").map((n) => `${n.options.host}:${n.options.port}`);
  assert.deepEqual(masters, [`127.0.0.1:${port}`], "masters");
  const keys = Array.from({ length: 50 }, (_, i) => `js:${i}`);
  for (const [i, key] of keys.entries()) assert.equal(await c.set(key, i), "OK", "SET");
  for (const [i, key] of keys.entries()) assert.equal(await c.get(key), String(i), "GET");
  // Every slot is on the one node, so multi-key commands across slots pass
  // the client's own slot check only with a hash tag, as in any cluster.
  assert.deepEqual(await c.mget("{m}1", "{m}2"), [null, null], "MGET");
  const piped = await c.pipeline().incr("pc:{1}a").incr("pc:{1}b").exec();
  assert.deepEqual(piped, [[null, 1], [null, 1]], "pipeline");
  const tx = await c.multi().set("{t}a", 1).incr("{t}a").exec();
  assert.deepEqual(tx, [[null, "OK"], [null, 2]], "MULTI/EXEC");
  await c.rpush("l", "a");
  assert.deepEqual(await c.blpop("l", 1), ["l", "a"], "BLPOP");
  const seen = [];
  for (const node of c.nodes("master")) {
    for await (const batch of node.scanStream({ match: "js:*", count: 100 })) seen.push(...batch);
  }
  assert.deepEqual([...new Set(seen)].sort(), [...keys].sort(), "SCAN");
  assert.equal(await c.dbsize(), 53, "DBSIZE");
  c.disconnect();
  console.log("ioredis cluster ok");
}

main().catch((e) => {
  console.error("ioredis cluster:", e);
  process.exit(1);
});
