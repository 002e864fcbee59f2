//! A client that keeps reading and writing through the proxy while a test
//! moves slots or kills nodes, and reports what it saw.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Reply, TestClient};
use super::proxy::Proxy;

/// What a [`LoadLoop`] saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every key whose last SET was acknowledged, with that value.
    pub acked: BTreeMap<String, String>,
    pub writes: usize,
    pub reads: usize,
    /// Error replies to writes, by text.
    pub write_errors: BTreeMap<String, usize>,
    /// Error replies to reads (or reads that returned a stale value), by text.
    pub read_errors: BTreeMap<String, usize>,
    /// The longest wait for one reply.
    pub longest: Duration,
}

impl LoadReport {
    /// Asserts what a client is owed through failures: more than 100
    /// writes made, no read failed, no write failed except with an unknown
    /// outcome, and every acknowledged write reads back through `proxy`.
    #[track_caller]
    pub fn assert_nothing_lost(&self, proxy: &Proxy) {
        assert!(self.writes > 100, "{self:?}");
        assert!(
            self.read_errors.is_empty(),
            "reads failed: {:?}",
            self.read_errors
        );
        assert!(
            self.unexpected_write_errors().is_empty(),
            "writes failed: {:?}",
            self.write_errors
        );
        let mut c = proxy.client();
        let lost: Vec<&String> = self
            .acked
            .iter()
            .filter(|(k, v)| c.cmd(&["GET", k]) != Reply::bulk(v))
            .map(|(k, _)| k)
            .collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    }

    /// Write errors other than "outcome unknown", the one error a write may
    /// get when its master dies with it in flight.
    pub fn unexpected_write_errors(&self) -> BTreeMap<String, usize> {
        self.write_errors
            .iter()
            .filter(|(text, _)| !text.starts_with("ERR outcome unknown"))
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }
}

/// A background client: SET `<prefix>:<i>` to a fresh value, GET it back,
/// and GET an older key, over and over, until stopped. Keys cycle through
/// `keys` names so every slot they hash to keeps being used.
pub struct LoadLoop {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<LoadReport>>,
}

impl LoadLoop {
    pub fn start(
        addr: &str,
        key: impl Fn(usize) -> String + Send + 'static,
        keys: usize,
    ) -> LoadLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = addr.to_string();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut client = TestClient::connect(&addr);
            // Longer than any failover deadline: a reply must come.
            client.set_timeout(Duration::from_secs(30));
            let mut report = LoadReport::default();
            let mut i = 0usize;
            while !flag.load(Ordering::Relaxed) && i < 10_000_000 {
                let name = key(i % keys);
                let value = format!("v{i}");
                let started = Instant::now();
                let reply = client.cmd(&["SET", &name, &value]);
                report.longest = report.longest.max(started.elapsed());
                report.writes += 1;
                match reply {
                    Reply::Simple(ok) if ok == "OK" => {
                        report.acked.insert(name.clone(), value.clone());
                    }
                    other => {
                        // The key's value is now unknown: forget it.
                        report.acked.remove(&name);
                        *report.write_errors.entry(describe(&other)).or_default() += 1;
                    }
                }
                // Read back a key written a while ago.
                let old = key((i + keys / 2) % keys);
                let started = Instant::now();
                let reply = client.cmd(&["GET", &old]);
                report.longest = report.longest.max(started.elapsed());
                report.reads += 1;
                match (&reply, report.acked.get(&old)) {
                    (Reply::Error(e), _) => *report.read_errors.entry(e.clone()).or_default() += 1,
                    (got, Some(want)) if got.as_bulk() != Some(want.as_bytes()) => {
                        *report
                            .read_errors
                            .entry(format!("stale {old}: {got:?} != {want}"))
                            .or_default() += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            report
        });
        LoadLoop {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the loop and returns its report.
    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().expect("the load loop panicked"))
            .unwrap_or_default()
    }
}

impl Drop for LoadLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Error(e) => e.clone(),
        other => format!("{other:?}"),
    }
}
