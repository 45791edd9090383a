//! The fair queue in front of catalog discovery (multicluster.md, "Catalog cache").
//!
//! A discovery runs only while it holds three permits, taken in this order:
//! 1. its **caller's** lane ([`MAX_DISCOVERIES_PER_CALLER`]): a caller listing a 100-cluster
//!    fleet queues behind itself, so a caller who arrives later with one cluster is not
//!    stuck behind all 100;
//! 2. its **server's** lane ([`MAX_DISCOVERIES_PER_SERVER`], by `host:port` after
//!    `{cluster}` substitution): many cluster names on one server never open more than
//!    this many discoveries on it at once;
//! 3. the **process** cap ([`MAX_CONCURRENT_DISCOVERIES`]).
//!
//! Tokio's semaphores hand out permits first come, first served, so each lane is a FIFO
//! queue. The order is fixed and a discovery holds its permits only while it runs, so no
//! waiter can hold what another waiter ahead of it needs: the queue always drains. How
//! long a request may wait in it is the caller's choice (the cache's queue budget).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// Discoveries running at once in the whole process: a burst of new tokens must not
/// become a burst of catalog queries against ClickHouse (spec: 16, not configurable).
pub const MAX_CONCURRENT_DISCOVERIES: usize = 16;
/// Discoveries running at once against one ClickHouse endpoint. A discovery sends its
/// two or three system-table queries one after another, so a server sees at most this
/// many discovery queries at once however many cluster names point at it; half the
/// process cap, so two busy servers cannot starve a third.
pub const MAX_DISCOVERIES_PER_SERVER: usize = 8;
/// Discoveries running at once for one caller (one token), over all its clusters: a
/// quarter of the process cap, so at least four callers progress side by side.
pub const MAX_DISCOVERIES_PER_CALLER: usize = 4;

/// One lane per key (caller or server), created on first use and dropped when idle.
struct Lanes<K> {
    width: usize,
    lanes: Mutex<HashMap<K, Arc<Semaphore>>>,
}

impl<K: Eq + Hash + Clone> Lanes<K> {
    fn new(width: usize) -> Self {
        Self {
            width,
            lanes: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<Semaphore>>> {
        // Each mutation is one map operation: a panic elsewhere leaves it consistent.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lane(&self, key: &K) -> Arc<Semaphore> {
        self.map()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.width)))
            .clone()
    }

    /// Drops `key`'s lane when nobody but the map and `held` refers to it.
    fn release(&self, key: &K, held: Arc<Semaphore>) {
        let mut map = self.map();
        if Arc::strong_count(&held) == 2 && held.available_permits() == self.width {
            map.remove(key);
        }
    }

    /// Drops every idle lane (waiters that gave up leave theirs behind).
    fn prune(&self) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < self.width);
        before - map.len()
    }

    fn len(&self) -> usize {
        self.map().len()
    }
}

/// The three-level fair queue. One per catalog cache.
pub struct Admission {
    global: Arc<Semaphore>,
    global_width: usize,
    servers: Lanes<Box<str>>,
    callers: Lanes<[u8; 32]>,
    waiting: AtomicUsize,
}

/// The right to run one discovery; dropping it lets the next waiter in.
pub struct Slot<'a> {
    admission: &'a Admission,
    caller: [u8; 32],
    server: Box<str>,
    permits: Option<[OwnedSemaphorePermit; 3]>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some([global, server, caller]) = self.permits.take() else {
            return;
        };
        let (server_lane, caller_lane) = (server.semaphore().clone(), caller.semaphore().clone());
        drop((global, server, caller));
        self.admission.servers.release(&self.server, server_lane);
        self.admission.callers.release(&self.caller, caller_lane);
    }
}

/// Counts a request as queued while it waits for its permits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(
            MAX_CONCURRENT_DISCOVERIES,
            MAX_DISCOVERIES_PER_SERVER,
            MAX_DISCOVERIES_PER_CALLER,
        )
    }
}

impl Admission {
    pub fn new(global: usize, per_server: usize, per_caller: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(global)),
            global_width: global,
            servers: Lanes::new(per_server),
            callers: Lanes::new(per_caller),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Waits, first come first served, for `caller`'s lane, `server`'s lane, then a
    /// process slot. Cancel-safe: a request that stops waiting holds nothing.
    pub async fn admit(&self, caller: [u8; 32], server: &str) -> Result<Slot<'_>, AcquireError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let server: Box<str> = server.into();
        let c = self.callers.lane(&caller).acquire_owned().await?;
        let s = self.servers.lane(&server).acquire_owned().await?;
        let g = self.global.clone().acquire_owned().await?;
        Ok(Slot {
            admission: self,
            caller,
            server,
            permits: Some([g, s, c]),
        })
    }

    /// Discoveries running now.
    pub fn running(&self) -> usize {
        self.global_width
            .saturating_sub(self.global.available_permits())
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Drops idle lanes; returns how many (run with the cache's sweep).
    pub fn prune(&self) -> usize {
        self.servers.prune() + self.callers.prune()
    }

    /// Lanes held now (callers + servers): what the queue costs in memory.
    pub fn lanes(&self) -> usize {
        self.servers.len() + self.callers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn caller(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[tokio::test]
    async fn each_level_caps_what_runs_at_once() {
        let a = Admission::new(4, 2, 3);
        let s1 = a.admit(caller(1), "x:1").await.expect("open");
        let s2 = a.admit(caller(2), "x:1").await.expect("open");
        // Server x is at its width: a third discovery on it waits.
        let blocked = tokio::time::timeout(Duration::from_millis(20), a.admit(caller(3), "x:1"));
        assert!(blocked.await.is_err(), "server lane must cap at 2");
        assert_eq!(
            a.waiting(),
            0,
            "a request that stopped waiting is not counted"
        );
        let s3 = a.admit(caller(3), "y:1").await.expect("other server");
        let s4 = a.admit(caller(4), "z:1").await.expect("other server");
        assert_eq!(a.running(), 4);
        let blocked = tokio::time::timeout(Duration::from_millis(20), a.admit(caller(5), "w:1"));
        assert!(blocked.await.is_err(), "process cap must hold at 4");
        drop((s1, s2, s3, s4));
        assert_eq!(a.running(), 0);
        // One caller: at most 3 at once, even on idle servers.
        let mine: Vec<_> =
            futures::future::join_all(["p:1", "q:1", "r:1"].map(|s| a.admit(caller(9), s))).await;
        let blocked = tokio::time::timeout(Duration::from_millis(20), a.admit(caller(9), "s:1"));
        assert!(blocked.await.is_err(), "caller lane must cap at 3");
        drop(mine);
    }

    #[tokio::test]
    async fn lanes_go_away_when_idle() {
        let a = Admission::new(4, 2, 2);
        let s = a.admit(caller(1), "x:1").await.expect("open");
        assert_eq!(a.lanes(), 2);
        drop(s);
        assert_eq!(a.lanes(), 0, "a released slot leaves no lane behind");
        let hold = a.admit(caller(1), "x:1").await.expect("open");
        let hold2 = a.admit(caller(2), "x:1").await.expect("open");
        let gave_up = tokio::time::timeout(Duration::from_millis(10), a.admit(caller(3), "x:1"));
        assert!(gave_up.await.is_err());
        drop((hold, hold2));
        // Caller 3's lane was left by a waiter that gave up; the prune takes it.
        assert_eq!(a.prune(), 1);
        assert_eq!(a.lanes(), 0);
    }
}
