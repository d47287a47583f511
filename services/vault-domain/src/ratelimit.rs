//! A fixed-window rate limiter keyed by principal, on the injected clock. In memory: each
//! replica limits on its own, which bounds the total at replicas × limit.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// Allows `limit` events per `window` per key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    state: Mutex<HashMap<String, (OffsetDateTime, u32)>>,
}

impl RateLimiter {
    /// A limiter of `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt by `key` at `now`; false when over the limit.
    pub fn allow(&self, key: &str, now: OffsetDateTime) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.len() > 10_000 {
            let window = self.window;
            state.retain(|_, (start, _)| now - *start < window);
        }
        let entry = state.entry(key.to_owned()).or_insert((now, 0));
        if now - entry.0 >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_limit_per_window_then_refuses_until_the_window_passes() {
        let rl = RateLimiter::new(2, Duration::minutes(1));
        let t = time::macros::datetime!(2026-11-20 00:00 UTC);
        assert!(rl.allow("a", t));
        assert!(rl.allow("a", t + Duration::seconds(1)));
        assert!(!rl.allow("a", t + Duration::seconds(2)));
        assert!(rl.allow("b", t + Duration::seconds(2)));
        assert!(rl.allow("a", t + Duration::seconds(61)));
    }
}
