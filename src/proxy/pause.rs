//! CLIENT PAUSE and CLIENT UNPAUSE, for this proxy's own clients.
//!
//! While a pause lasts, a client's next command is held, not refused,
//! until the pause ends (its timeout, or CLIENT UNPAUSE), as Redis's
//! `blockPostponeClient` does: every command in ALL mode; in WRITE mode the
//! commands Redis counts as may-replicate (writes, EVAL, EVALSHA, FCALL,
//! PUBLISH, SPUBLISH, PFCOUNT, and an EXEC whose transaction holds one).
//! As in Redis, the pausing client is paused too, and commands already
//! running finish. A client in subscribed mode is not paused.
//!
//! The pause is this proxy's alone: other proxies in front of the same
//! cluster, and clients talking to the nodes directly, carry on. (Pausing
//! the nodes themselves is `CLIENT PAUSE` sent to each node.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::command::{CommandSpec, flags};
use crate::resp::Request;
use crate::resp::request::parse_int;

use super::client_commands::too_many_arguments;
use super::local::{LocalReply, OK, error};

/// Commands Redis flags `may-replicate` that are not writes: a WRITE pause
/// holds them too.
const MAY_REPLICATE: &[&str] = &["eval", "evalsha", "fcall", "publish", "spublish", "pfcount"];

/// One pause in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pause {
    until: Instant,
    /// ALL mode (else WRITE).
    all: bool,
}

/// The proxy's pause state, shared by every session.
pub struct ClientPause {
    /// True while a pause may be in effect: the only thing a request
    /// reads when there is none. Changed only under `state`'s lock.
    engaged: AtomicBool,
    state: watch::Sender<Option<Pause>>,
}

impl Default for ClientPause {
    fn default() -> Self {
        ClientPause {
            engaged: AtomicBool::new(false),
            state: watch::channel(None).0,
        }
    }
}

impl ClientPause {
    /// Pauses until `until`. Over a pause still in effect, the longer
    /// deadline and the stricter mode win, as in Redis.
    fn pause(&self, until: Instant, all: bool) {
        let now = Instant::now();
        self.state.send_modify(|state| {
            *state = Some(match *state {
                Some(old) if old.until > now => Pause {
                    until: old.until.max(until),
                    all: old.all || all,
                },
                _ => Pause { until, all },
            });
            self.engaged.store(true, Ordering::Release);
        });
    }

    /// Ends the pause now.
    fn unpause(&self) {
        self.state.send_modify(|state| {
            *state = None;
            self.engaged.store(false, Ordering::Release);
        });
    }

    /// `None` when a command may run now; else a future that completes when
    /// the pause ends or changes (then ask again). `may_replicate` is asked
    /// only while a WRITE pause lasts.
    pub fn hold(&self, may_replicate: impl FnOnce() -> bool) -> Option<BoxFuture<'static, ()>> {
        if !self.engaged.load(Ordering::Acquire) {
            return None;
        }
        let mut changes = self.state.subscribe();
        let pause = (*changes.borrow_and_update())?;
        if pause.until <= Instant::now() {
            self.forget_expired();
            return None;
        }
        if !pause.all && !may_replicate() {
            return None;
        }
        Some(Box::pin(async move {
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(pause.until.into()) => {}
            }
        }))
    }

    /// Drops a pause whose time is up, so requests stop looking at it.
    fn forget_expired(&self) {
        let now = Instant::now();
        self.state.send_if_modified(|state| match *state {
            Some(p) if p.until <= now => {
                *state = None;
                self.engaged.store(false, Ordering::Release);
                true
            }
            _ => false,
        });
    }
}

/// True when a WRITE pause holds `spec` (Redis's
/// `is_may_replicate_command`); `exec_may_replicate` says whether an EXEC's
/// transaction holds such a command.
pub fn may_replicate(spec: Option<&CommandSpec>, exec_may_replicate: bool) -> bool {
    spec.is_some_and(|s| {
        s.has_flag(flags::WRITE)
            || MAY_REPLICATE.contains(&s.name)
            || (s.name == "exec" && exec_may_replicate)
    })
}

/// CLIENT PAUSE timeout [WRITE|ALL], with Redis's checks in Redis's order.
pub fn client_pause(pause: &ClientPause, req: &Request) -> LocalReply {
    let arg = |i| req.arg(i).unwrap_or_default();
    if req.len() > 4 {
        return too_many_arguments(req);
    }
    let all = match req.arg(3) {
        None => true,
        Some(m) if m.eq_ignore_ascii_case(b"all") => true,
        Some(m) if m.eq_ignore_ascii_case(b"write") => false,
        Some(_) => return error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    let ms = match parse_int(arg(2)) {
        None => return error("ERR timeout is not an integer or out of range"),
        Some(ms) if ms < 0 => return error("ERR timeout is negative"),
        Some(ms) => ms,
    };
    // Redis keeps the deadline in Unix milliseconds.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    if ms > i64::MAX - now_ms {
        return error("ERR timeout is out of range");
    }
    let until = Instant::now() + Duration::from_millis(ms.unsigned_abs());
    pause.pause(until, all);
    LocalReply::Now(Bytes::from_static(OK))
}

/// CLIENT UNPAUSE.
pub fn client_unpause(pause: &ClientPause) -> LocalReply {
    pause.unpause();
    LocalReply::Now(Bytes::from_static(OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lookup;

    fn spec(args: &[&str]) -> Option<&'static CommandSpec> {
        lookup(&Request::from_args(args)).ok()
    }

    #[test]
    fn write_pauses_hold_what_may_replicate() {
        assert!(may_replicate(spec(&["SET", "k", "v"]), false));
        assert!(may_replicate(spec(&["EVAL", "return 1", "0"]), false));
        assert!(may_replicate(spec(&["PUBLISH", "c", "m"]), false));
        assert!(may_replicate(spec(&["PFCOUNT", "h"]), false));
        assert!(!may_replicate(spec(&["GET", "k"]), false));
        assert!(!may_replicate(spec(&["EVAL_RO", "return 1", "0"]), false));
        assert!(!may_replicate(spec(&["EXEC"]), false));
        assert!(may_replicate(spec(&["EXEC"]), true));
        assert!(!may_replicate(None, true));
    }

    #[tokio::test]
    async fn the_stricter_mode_and_the_later_deadline_win() {
        let pause = ClientPause::default();
        assert!(pause.hold(|| true).is_none());
        let now = Instant::now();
        pause.pause(now + Duration::from_secs(60), false);
        assert!(pause.hold(|| true).is_some());
        assert!(pause.hold(|| false).is_none());
        pause.pause(now + Duration::from_millis(1), true);
        assert!(pause.hold(|| false).is_some(), "ALL over WRITE holds reads");
        assert_eq!(
            pause.state.borrow().map(|p| p.until),
            Some(now + Duration::from_secs(60))
        );
        pause.unpause();
        assert!(pause.hold(|| true).is_none());
    }

    #[tokio::test]
    async fn an_expired_pause_is_forgotten_and_a_new_one_starts_afresh() {
        let pause = ClientPause::default();
        pause.pause(Instant::now(), true);
        assert!(pause.hold(|| true).is_none());
        assert!(!pause.engaged.load(Ordering::Acquire));
        pause.pause(Instant::now() + Duration::from_secs(60), false);
        assert!(
            pause.hold(|| false).is_none(),
            "the old ALL does not linger"
        );
    }

    #[tokio::test]
    async fn a_held_command_is_released_by_unpause() {
        let pause = std::sync::Arc::new(ClientPause::default());
        pause.pause(Instant::now() + Duration::from_secs(60), true);
        let wait = pause.hold(|| true).unwrap();
        let released = tokio::spawn(wait);
        tokio::task::yield_now().await;
        pause.unpause();
        tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .unwrap()
            .unwrap();
    }
}
