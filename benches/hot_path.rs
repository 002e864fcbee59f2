//! Criterion benchmarks for the proxy's hot paths: decoding requests,
//! scanning replies, routing, and splitting/merging a multi-key command.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use slotway::proxy::multikey::{merge, split};
use slotway::proxy::router::{Merge, route};
use slotway::resp::reply::reply_len;
use slotway::resp::{Request, RequestDecoder};

fn pipeline(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:012}");
        let value = "x".repeat(64);
        out.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    out
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for n in [1usize, 16] {
        let input = pipeline(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("set_pipeline", n), &input, |b, input| {
            let mut decoder = RequestDecoder::default();
            b.iter(|| {
                let mut buf = BytesMut::from(&input[..]);
                let mut count = 0;
                while let Ok(Some(req)) = decoder.decode(&mut buf) {
                    black_box(&req);
                    count += 1;
                }
                assert_eq!(count, n);
            })
        });
    }
    let reply = b"*3\r\n$64\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n$-1\r\n:42\r\n";
    group.bench_function("reply_len_array", |b| {
        b.iter(|| reply_len(black_box(reply)))
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let get = Request::from_args(&["GET", "key:000000012345"]);
    let set = Request::from_args(&["SET", "key:000000012345", "value"]);
    c.bench_function("route/get", |b| b.iter(|| route(black_box(&get))));
    c.bench_function("route/lookup_get", |b| {
        b.iter(|| slotway::command::lookup(black_box(&get)))
    });
    c.bench_function("route/key_slot", |b| {
        b.iter(|| slotway::cluster::key_slot(black_box(b"key:000000012345")))
    });
    c.bench_function("route/set", |b| b.iter(|| route(black_box(&set))));
}

fn mget_split_merge(c: &mut Criterion) {
    let keys: Vec<String> = (0..10).map(|i| format!("key:{i:012}")).collect();
    let mut args = vec!["MGET".to_string()];
    args.extend(keys.iter().cloned());
    let req = Request::from_args(&args);
    c.bench_function("mget10/split", |b| b.iter(|| split(black_box(&req), 1, 1)));
    let parts = split(&req, 1, 1);
    let replies: Vec<Bytes> = parts
        .iter()
        .map(|p| {
            let mut r = format!("*{}\r\n", p.key_indices.len());
            for _ in &p.key_indices {
                r.push_str("$3\r\nval\r\n");
            }
            Bytes::from(r)
        })
        .collect();
    c.bench_function("mget10/merge", |b| {
        b.iter(|| merge(Merge::Values, black_box(&parts), black_box(&replies)))
    });
}

criterion_group!(benches, decode, routing, mget_split_merge);
criterion_main!(benches);
