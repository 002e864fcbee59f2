//! The RESP3 form of each command's reply, where it differs from RESP2.
//!
//! Redis 7 writes some replies differently to a client that said `HELLO 3`:
//! maps for field/value lists, sets, doubles for scores, verbatim strings
//! for text reports. The proxy speaks RESP2 to the cluster and rewrites
//! those replies for RESP3 clients ([`crate::resp::resp3`]); this table is
//! where it learns which ones. A command not listed keeps its RESP2 types.
//! `tests/proxy_resp3.rs` checks the table against a real redis-server.

use crate::resp::Request;
use crate::resp::resp3::Shape::{self, *};

/// `[member, score]` pairs: ZRANGE ... WITHSCORES and friends.
static WITH_SCORES: Shape = Pairs(&Double);
/// ZPOPMIN without a count: a flat `[member, score]`.
static MEMBER_SCORE: Shape = Tuple(&[Same, Double]);
/// BZPOPMIN: `[key, member, score]`.
static KEY_MEMBER_SCORE: Shape = Tuple(&[Same, Same, Double]);
/// ZMPOP, BZMPOP: `[key, [[member, score]...]]`.
static KEY_AND_SCORED: Shape = Tuple(&[Same, ArrayOf(&MEMBER_SCORE)]);
/// GEOPOS: `[[lon, lat] | nil ...]`.
static POSITIONS: Shape = ArrayOf(&ArrayOf(&Double));
/// GEOSEARCH ... WITHCOORD: each item ends with `[lon, lat]`.
static WITH_COORD: Shape = ArrayOf(&Last(&ArrayOf(&Double)));
static ARRAY_OF_MAPS: Shape = ArrayOf(&Map);
static MAP_OF_MAPS: Shape = MapOf(&Map);
/// XINFO STREAM ... FULL.
static STREAM_FULL: Shape =
    MapWith(&[("groups", ArrayOf(&MapWith(&[("consumers", ArrayOf(&Map))])))]);
/// CLUSTER SHARDS: each shard a map, its nodes maps.
static SHARDS: Shape = ArrayOf(&MapWith(&[("nodes", ArrayOf(&Map))]));
/// FUNCTION LIST: libraries, their functions, the functions' flags.
static LIBRARIES: Shape = ArrayOf(&MapWith(&[(
    "functions",
    ArrayOf(&MapWith(&[("flags", Set)])),
)]));
static FUNCTION_STATS: Shape = MapWith(&[("running_script", Map), ("engines", MapOf(&Map))]);
static LATENCY_HISTOGRAM: Shape = MapOf(&MapWith(&[("histogram_usec", Map)]));
/// One command of COMMAND / COMMAND INFO: flags, ACL categories and tips
/// are sets, key specs a set of maps, subcommands a set of the same shape
/// again.
static COMMAND_INFO: Shape = ArrayOf(&COMMAND_ENTRY);
static COMMAND_ENTRY: Shape = Tuple(&[
    Same,
    Same,
    Set,
    Same,
    Same,
    Same,
    Set,
    Set,
    SetOf(&KEY_SPEC),
    SetOf(&COMMAND_ENTRY),
]);
static KEY_SPEC: Shape = MapWith(&[
    ("flags", Set),
    ("begin_search", MapWith(&[("spec", Map)])),
    ("find_keys", MapWith(&[("spec", Map)])),
]);
/// COMMAND DOCS: a map of commands, each a map; arguments nest.
static COMMAND_DOCS: Shape = MapOf(&COMMAND_DOC);
static COMMAND_DOC: Shape = MapWith(&[
    ("doc_flags", Set),
    ("history", Set),
    ("arguments", ArrayOf(&ARGUMENT)),
    ("subcommands", MapOf(&COMMAND_DOC)),
]);
static ARGUMENT: Shape = MapWith(&[("flags", Set), ("arguments", ArrayOf(&ARGUMENT))]);

/// The RESP3 shape of the reply to `req`, whose table name (lower case,
/// `container|sub`) is `name`.
pub fn reply_shape(name: &str, req: &Request) -> &'static Shape {
    let has = |option: &str| {
        req.args()
            .skip(1)
            .any(|a| a.eq_ignore_ascii_case(option.as_bytes()))
    };
    match name {
        "hgetall" | "config|get" | "hello" | "acl|getuser" | "client|trackinginfo" => &Map,
        "memory|stats" => &MAP_OF_MAPS,
        "lcs" if has("IDX") => &Map,
        "smembers" | "sinter" | "sunion" | "sdiff" => &Set,
        // SPOP with a count: a set; without, one member.
        "spop" if req.len() > 2 => &Set,
        "zscore" | "zincrby" => &Double,
        "zadd" if has("INCR") => &Double,
        "zmscore" => &ArrayOf(&Double),
        "zrange" | "zrevrange" | "zrangebyscore" | "zrevrangebyscore" | "zunion" | "zinter"
        | "zdiff" | "zrandmember"
            if has("WITHSCORES") =>
        {
            &WITH_SCORES
        }
        "zrank" | "zrevrank" if has("WITHSCORE") => &Tuple(&[Same, Double]),
        // With a count, pairs; without, one flat member and score.
        "zpopmin" | "zpopmax" if req.len() > 2 => &WITH_SCORES,
        "zpopmin" | "zpopmax" => &MEMBER_SCORE,
        "bzpopmin" | "bzpopmax" => &KEY_MEMBER_SCORE,
        "zmpop" | "bzmpop" => &KEY_AND_SCORED,
        "hrandfield" if has("WITHVALUES") => &Pairs(&Same),
        "geopos" => &POSITIONS,
        "georadius"
        | "georadius_ro"
        | "georadiusbymember"
        | "georadiusbymember_ro"
        | "geosearch"
            if has("WITHCOORD") =>
        {
            &WITH_COORD
        }
        "xread" | "xreadgroup" => &MapFromPairs,
        "xinfo|stream" if has("FULL") => &STREAM_FULL,
        "xinfo|stream" => &Map,
        "xinfo|groups" | "xinfo|consumers" | "cluster|links" | "module|list" => &ARRAY_OF_MAPS,
        "info"
        | "client|info"
        | "client|list"
        | "cluster|info"
        | "cluster|nodes"
        | "memory|doctor"
        | "memory|malloc-stats"
        | "latency|doctor"
        | "lolwut" => &Verbatim,
        "cluster|shards" => &SHARDS,
        "function|list" => &LIBRARIES,
        "function|stats" => &FUNCTION_STATS,
        "latency|histogram" => &LATENCY_HISTOGRAM,
        "command" | "command|info" => &COMMAND_INFO,
        "command|docs" => &COMMAND_DOCS,
        _ => &Same,
    }
}
