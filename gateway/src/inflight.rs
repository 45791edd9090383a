//! Requests that `notifications/cancelled` may stop: the cancellation registry the
//! transports (HTTP and stdio) register each running request in.

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

impl Inflight {
    pub fn register(&self, scope: &str, request_id: &str) -> InflightGuard<'_> {
        let (tx, rx) = oneshot::channel();
        let key = (scope.to_string(), request_id.to_string());
        let ticket = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.map.lock() {
            m.entry(key.clone()).or_default().push((ticket, tx));
        }
        InflightGuard {
            owner: self,
            key,
            ticket,
            cancelled: Some(rx),
        }
    }

    /// Tells every running request under this key to stop; returns how many there were.
    pub fn cancel(&self, scope: &str, request_id: &str) -> usize {
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
    key: (String, String),
    ticket: u64,
    /// Resolves with `Ok(())` only when the request is cancelled.
    pub cancelled: Option<oneshot::Receiver<()>>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.owner.map.lock() {
            if let Some(list) = m.get_mut(&self.key) {
                list.retain(|(t, _)| *t != self.ticket);
                if list.is_empty() {
                    m.remove(&self.key);
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
        let mut first = inflight.register("anonymous", "1");
        let mut second = inflight.register("anonymous", "1");
        drop(second.cancelled.take());
        drop(second);
        let mut rx = first.cancelled.take().unwrap();
        assert!(
            rx.try_recv().is_err(),
            "finishing one request must not cancel the other"
        );
        assert_eq!(inflight.cancel("anonymous", "1"), 1);
        assert_eq!(rx.try_recv(), Ok(()));
    }
}
