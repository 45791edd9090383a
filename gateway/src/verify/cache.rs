//! Verdicts remembered by sha256(token) + Basic username, so ClickHouse asking about the
//! same session's every query costs a hash lookup, not a signature check. An accepted
//! token is never remembered past its `exp`; a refused one only briefly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::checks::{Denial, Settings, TokenDigest};

/// Enough for every active session of a large cluster; bounds memory (a few hundred
/// bytes per entry) when someone sprays random tokens.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allowed(Arc<Settings>),
    Denied(Denial),
}

/// How long to remember an accepted token: the configured TTL, cut to the time left
/// before `exp` (no leeway: the cache must never extend a token's life). `None`: do not
/// cache. `now` and `exp` are Unix seconds.
pub fn positive_ttl(configured: Duration, exp: u64, now: u64) -> Option<Duration> {
    let left = Duration::from_secs(exp.saturating_sub(now));
    let ttl = configured.min(left);
    (!ttl.is_zero()).then_some(ttl)
}

#[derive(PartialEq, Eq, Hash)]
struct Key {
    token: TokenDigest,
    username: String,
}

struct Entry {
    verdict: Verdict,
    expires: Instant,
}

pub struct ResultCache {
    entries: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

impl ResultCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, token: TokenDigest, username: &str, now: Instant) -> Option<Verdict> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = Key {
            token,
            username: username.to_string(),
        };
        match entries.get(&key) {
            Some(e) if e.expires > now => Some(e.verdict.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn insert(
        &self,
        token: TokenDigest,
        username: &str,
        verdict: Verdict,
        ttl: Duration,
        now: Instant,
    ) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: skip rather than evict, so a spray of bad
                // tokens cannot push out the sessions that are actually in use.
                return;
            }
        }
        entries.insert(
            Key {
                token,
                username: username.to_string(),
            },
            Entry {
                verdict,
                expires: now + ttl,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::TokenRejection;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn positive_ttl_never_reaches_past_exp() {
        let now = 1_000_000;
        assert_eq!(positive_ttl(30 * S, now + 3600, now), Some(30 * S));
        assert_eq!(positive_ttl(30 * S, now + 10, now), Some(10 * S));
        assert_eq!(positive_ttl(30 * S, now, now), None);
        // Within the 60 s leeway the token is still accepted, but not cached.
        assert_eq!(positive_ttl(30 * S, now - 20, now), None);
        assert_eq!(positive_ttl(Duration::ZERO, now + 3600, now), None);
    }

    #[test]
    fn entries_expire() {
        let cache = ResultCache::new(10);
        let t0 = Instant::now();
        let d = TokenDigest::of("t");
        cache.insert(d, "alice", Verdict::Allowed(Arc::default()), 5 * S, t0);
        assert!(cache.get(d, "alice", t0 + 4 * S).is_some());
        assert!(cache.get(d, "alice", t0 + 5 * S).is_none());
        assert!(cache.is_empty(), "an expired entry is dropped when found");
    }

    #[test]
    fn the_username_is_part_of_the_key() {
        let cache = ResultCache::new(10);
        let t0 = Instant::now();
        let d = TokenDigest::of("t");
        cache.insert(
            d,
            "alice@example.com",
            Verdict::Allowed(Arc::default()),
            5 * S,
            t0,
        );
        assert!(cache.get(d, "admin", t0).is_none());
        assert!(cache
            .get(TokenDigest::of("u"), "alice@example.com", t0)
            .is_none());
    }

    #[test]
    fn a_full_cache_keeps_live_entries() {
        let cache = ResultCache::new(2);
        let t0 = Instant::now();
        let denied = Verdict::Denied(Denial::Token(TokenRejection::Expired));
        cache.insert(TokenDigest::of("a"), "u", denied.clone(), S, t0);
        cache.insert(TokenDigest::of("b"), "u", denied.clone(), 10 * S, t0);
        cache.insert(TokenDigest::of("c"), "u", denied.clone(), 10 * S, t0);
        assert!(
            cache.get(TokenDigest::of("c"), "u", t0).is_none(),
            "no room: not cached"
        );
        // Once "a" has expired its slot is reclaimed.
        cache.insert(TokenDigest::of("c"), "u", denied, 10 * S, t0 + 2 * S);
        assert!(cache.get(TokenDigest::of("c"), "u", t0 + 2 * S).is_some());
        assert!(cache.get(TokenDigest::of("b"), "u", t0 + 2 * S).is_some());
    }
}
