//! Bounded waits for things that become true eventually (failover,
//! migration, a process getting ready).

use std::fmt::Debug;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The shortest pause between two attempts, so a zero interval cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// What a condition closure may return: `bool`, `Option<T>` or
/// `Result<T, E>`. `Ok`/`Some`/`true` ends the wait with the value inside.
pub trait Attempt {
    type Output;
    /// The value when the condition holds, else why it does not (yet).
    fn outcome(self) -> Result<Self::Output, String>;
}

impl Attempt for bool {
    type Output = ();
    fn outcome(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("condition is still false".to_string())
        }
    }
}

impl<T> Attempt for Option<T> {
    type Output = T;
    fn outcome(self) -> Result<T, String> {
        self.ok_or_else(|| "condition is still None".to_string())
    }
}

impl<T, E: Debug> Attempt for Result<T, E> {
    type Output = T;
    fn outcome(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// Calls `condition` every `interval` until it holds or `timeout` has passed,
/// and returns its value. The condition is always tried at least once.
///
/// # Panics
/// When the condition still does not hold at the deadline; the message gives
/// the caller's location, the number of attempts and the last failure.
#[track_caller]
pub fn eventually<A: Attempt>(
    timeout: Duration,
    interval: Duration,
    condition: impl FnMut() -> A,
) -> A::Output {
    match try_eventually(timeout, interval, condition) {
        Ok(value) => value,
        Err(why) => panic!("not true within {timeout:?}: {why}"),
    }
}

/// [`eventually`] without the panic.
///
/// # Errors
/// When the deadline passes: the number of attempts and the last failure.
pub fn try_eventually<A: Attempt>(
    timeout: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> A,
) -> Result<A::Output, String> {
    let deadline = Instant::now() + timeout;
    let interval = interval.max(MIN_INTERVAL);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let last = match condition().outcome() {
            Ok(value) => return Ok(value),
            Err(why) => why,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("{attempts} attempts, last: {last}"));
        }
        sleep(interval.min(deadline - now));
    }
}
