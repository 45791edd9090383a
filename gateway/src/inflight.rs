//! Requests that `notifications/cancelled` may stop: the cancellation registry the
//! transports (HTTP and stdio) register each running request in.
//!
//! A cancellation reaches only requests of the same caller: over HTTP the scope is the
//! full sha256 of the credential — the bearer the OAuth gate admitted (hashed once per
//! request, [`bearer_scope`]), or else the whole `Authorization` header
//! ([`caller_scope`]); a short fingerprint only names, it never decides. A request
//! without credentials has no scope and no notification can reach it (it still stops
//! when its own connection closes). On stdio the one client is the scope.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// One registered request: its ticket number and the sender that cancels it.
type Ticket = (u64, oneshot::Sender<()>);

/// Requests that `notifications/cancelled` may stop, by caller scope and request id.
/// Ids are only unique per client, so several registrations may share a key; each has
/// its own ticket and only removes itself.
#[derive(Default)]
pub struct Inflight {
    map: Mutex<HashMap<(String, String), Vec<Ticket>>>,
    next: std::sync::atomic::AtomicU64,
}

/// The cancellation scope of an HTTP request the gate did not identify by a bearer: the
/// full digest of its `Authorization` header, or None when it has none
/// (docs/decisions.md: no cross-request cancellation without one).
pub fn caller_scope(authorization: Option<&str>) -> Option<String> {
    authorization
        .filter(|a| !a.trim().is_empty())
        .map(|a| scope_text("sha256:", &crate::fingerprint::sha256(a.as_bytes())))
}

/// The cancellation scope of a request the OAuth gate admitted: the full sha256 of the
/// bearer it presented, which the gate computed once. Its own prefix, so it never equals
/// a header scope.
pub fn bearer_scope(presented_sha256: &[u8; 32]) -> String {
    scope_text("bearer-sha256:", presented_sha256)
}

fn scope_text(prefix: &str, digest: &[u8; 32]) -> String {
    let mut out = String::with_capacity(prefix.len() + 64);
    out.push_str(prefix);
    crate::fingerprint::push_hex(&mut out, digest);
    out
}

impl Inflight {
    /// Registers a running request; without a scope nothing can cancel it by id.
    pub fn register(&self, scope: Option<&str>, request_id: &str) -> InflightGuard<'_> {
        let Some(scope) = scope else {
            return InflightGuard {
                owner: self,
                key: None,
                ticket: 0,
                cancelled: None,
            };
        };
        let (tx, rx) = oneshot::channel();
        let key = (scope.to_string(), request_id.to_string());
        let ticket = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.map.lock() {
            m.entry(key.clone()).or_default().push((ticket, tx));
        }
        InflightGuard {
            owner: self,
            key: Some(key),
            ticket,
            cancelled: Some(rx),
        }
    }

    /// Tells every running request under this key to stop; returns how many there were.
    pub fn cancel(&self, scope: Option<&str>, request_id: &str) -> usize {
        let Some(scope) = scope else {
            return 0;
        };
        let senders = self
            .map
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&(scope.to_string(), request_id.to_string())));
        senders
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, tx)| !tx.is_closed())
            .map(|(_, tx)| tx.send(()))
            .filter(Result::is_ok)
            .count()
    }
}

pub struct InflightGuard<'a> {
    owner: &'a Inflight,
    key: Option<(String, String)>,
    ticket: u64,
    /// Resolves with `Ok(())` only when the request is cancelled.
    pub cancelled: Option<oneshot::Receiver<()>>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let Some(key) = &self.key else {
            return;
        };
        if let Ok(mut m) = self.owner.map.lock() {
            if let Some(list) = m.get_mut(key) {
                list.retain(|(t, _)| *t != self.ticket);
                if list.is_empty() {
                    m.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_sharing_an_id_do_not_cancel_each_other() {
        let inflight = Inflight::default();
        let mut first = inflight.register(Some("stdio"), "1");
        let mut second = inflight.register(Some("stdio"), "1");
        drop(second.cancelled.take());
        drop(second);
        let mut rx = first.cancelled.take().unwrap();
        assert!(
            rx.try_recv().is_err(),
            "finishing one request must not cancel the other"
        );
        assert_eq!(inflight.cancel(Some("stdio"), "1"), 1);
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn only_the_same_credential_cancels_and_no_credential_cancels_nothing() {
        let inflight = Inflight::default();
        let alice = caller_scope(Some("Bearer alice"));
        let mut theirs = inflight.register(alice.as_deref(), "7");
        let mut rx = theirs.cancelled.take().unwrap();
        // Another caller, or one without credentials, guessing the id reaches nothing.
        assert_eq!(
            inflight.cancel(caller_scope(Some("Bearer bob")).as_deref(), "7"),
            0
        );
        assert_eq!(inflight.cancel(caller_scope(None).as_deref(), "7"), 0);
        assert!(rx.try_recv().is_err());
        assert_eq!(inflight.cancel(alice.as_deref(), "7"), 1);
        assert_eq!(rx.try_recv(), Ok(()));
        // The scope is the whole digest, not a fingerprint.
        assert_eq!(alice.map(|s| s.len()), Some("sha256:".len() + 64));
        // A bearer's scope is its whole digest too, apart from any header scope.
        let bearer = bearer_scope(&crate::fingerprint::sha256(b"alice"));
        assert_eq!(bearer.len(), "bearer-sha256:".len() + 64);
        assert_ne!(Some(&bearer), caller_scope(Some("alice")).as_ref());
        assert_ne!(
            bearer,
            bearer_scope(&crate::fingerprint::sha256(b"bob")),
            "two bearers, two scopes"
        );
        // A request without credentials is not registered at all.
        let anonymous = inflight.register(None, "7");
        assert!(anonymous.cancelled.is_none());
    }
}
