use super::*;

use tokio::sync::oneshot;

struct Server {
    addr: std::net::SocketAddr,
    ready: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    start_with(READ_TIMEOUT).await
}

async fn start_with(read_timeout: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = Registry::new();
    let metrics = crate::metrics::Metrics::new(&registry).unwrap();
    metrics.client_connections_total.inc_by(7);
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(
        listener,
        registry,
        Arc::clone(&ready),
        stopped,
        read_timeout,
    ));
    Server {
        addr,
        ready,
        stop: Some(stop),
        task,
    }
}

/// Sends `request` as is and returns everything the server sent back.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
}

fn status(reply: &str) -> &str {
    reply.split(' ').nth(1).unwrap_or("")
}

fn body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    let s = start().await;

    let r = get(s.addr, "/healthz").await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(body(&r), "ok");
    assert!(r.contains("Content-Length: 2\r\n"), "{r}");
    assert!(r.contains("Connection: close\r\n"), "{r}");

    let r = get(s.addr, "/readyz").await;
    assert_eq!((status(&r), body(&r)), ("503", "not ready"), "{r}");
    s.ready.store(true, Ordering::Release);
    let r = get(s.addr, "/readyz?verbose=1").await;
    assert_eq!((status(&r), body(&r)), ("200", "ready"), "{r}");

    let r = get(s.addr, "/metrics").await;
    assert_eq!(status(&r), "200", "{r}");
    assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
    assert!(
        body(&r).contains("slotway_client_connections_total 7"),
        "{r}"
    );
    let len: usize = r
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(len, body(&r).len());
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let s = start().await;
    let r = get(s.addr, "/nope").await;
    assert_eq!(status(&r), "404", "{r}");
    let r = exchange(
        s.addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "405", "{r}");
    assert!(r.contains("Allow: GET\r\n"), "{r}");
    let r = exchange(s.addr, b"HEAD /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(status(&r), "405", "{r}");
}

#[tokio::test]
async fn garbage_gets_an_error_reply_and_the_server_lives_on() {
    let s = start().await;
    let cases: &[&[u8]] = &[
        b"\r\n\r\n",
        b"\x00\xff\xfe garbage\n\n",
        b"GET\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz HTTP/1.1 extra\r\n\r\n",
        b"GET healthz HTTP/1.1\r\n\r\n",
        b"get /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz SPDY/3\r\n\r\n",
        b"GET /\xc3\x28 HTTP/1.1\r\n\r\n",
    ];
    for &case in cases {
        let r = exchange(s.addr, case).await;
        assert_eq!(status(&r), "400", "{case:?} -> {r}");
    }

    // A head that never ends within the limit.
    let mut huge = b"GET /healthz HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 10));
    let r = exchange(s.addr, &huge).await;
    assert_eq!(status(&r), "431", "{r}");

    // A client that connects and leaves.
    drop(TcpStream::connect(s.addr).await.unwrap());
    // A client that sends half a head and leaves.
    let mut half = TcpStream::connect(s.addr).await.unwrap();
    half.write_all(b"GET /hea").await.unwrap();
    drop(half);

    // Lenient line endings and a head split across writes still work.
    let r = exchange(s.addr, b"GET /healthz HTTP/1.0\n\n").await;
    assert_eq!(status(&r), "200", "{r}");
    let mut split = TcpStream::connect(s.addr).await.unwrap();
    for part in [
        &b"GET /hea"[..],
        b"lthz HTTP/1.1\r",
        b"\nHost: a\r\n\r",
        b"\n",
    ] {
        split.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut out = Vec::new();
    split.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn slow_client_times_out() {
    let s = start_with(Duration::from_millis(100)).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let mut s = start().await;
    assert_eq!(status(&get(s.addr, "/healthz").await), "200");
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut s.task)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(s.addr).await.is_err());
}

#[test]
fn head_end_finds_both_terminators() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Some(18));
    assert_eq!(head_end(b"GET / HTTP/1.1\n\n", 0), Some(16));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n", 0), None);
    assert_eq!(head_end(b"ab", 5), None);
}
