//! Refresh tokens that can be used once (OAuth 2.1 §4.3.1), with a lifetime counted from
//! the original sign-in, and RFC 8707 narrowing on refresh.
//!
//! Each sign-in starts a *grant* (a random id carried in every wrapper of that sign-in)
//! and each refresh hands out the grant's next *generation*. This replica remembers, per
//! live grant, the generation it expects next: a wrapper of an older generation is a
//! replay, refused, and the whole grant is revoked here (the reuse detection OAuth 2.1
//! asks of an authorization server, as Auth0/Okta do it). One entry per live grant, not
//! per refresh, dropped when the grant reaches `refresh_token_max_age`.
//!
//! What this does not cover: the ledger lives in one process. With several replicas, a
//! wrapper replayed at a replica that has not seen its grant is accepted there once.
//! The IdP's own rotation closes that: its new refresh token goes into the new wrapper,
//! so the old upstream token inside a replayed wrapper fails at the IdP and the IdP's
//! reuse detection revokes the family.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use super::error::{invalid_target, OAuthError};
use super::same_resource;

/// Grants remembered at most; past this (after dropping expired ones) refreshes are
/// refused as temporarily unavailable rather than left untracked (fail closed).
pub const MAX_GRANTS: usize = 1_000_000;

/// What the ledger says about a wrapper of `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Proceed; the grant now expects `generation + 1`.
    Granted,
    /// An older generation (a replay), or a revoked grant: refuse.
    Replayed,
    /// The ledger is full of live grants.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// The generation the next refresh must present.
    next: u64,
    revoked: bool,
    /// Unix seconds after which no wrapper of this grant opens: the entry can go.
    until: u64,
}

/// The pure decision for one refresh, given what this replica knows of the grant.
fn decide(known: Option<Entry>, generation: u64) -> Claim {
    match known {
        // First time this replica sees the grant (a fresh sign-in elsewhere, or a
        // restart): trust the generation presented.
        None => Claim::Granted,
        Some(e) if e.revoked || e.next != generation => Claim::Replayed,
        Some(_) => Claim::Granted,
    }
}

/// Per-replica memory of each live grant's expected generation.
#[derive(Debug, Default)]
pub struct Ledger {
    grants: Mutex<HashMap<String, Entry>>,
}

impl Ledger {
    /// Claims `generation` of `grant` (atomic: of two concurrent uses one wins). A
    /// replay revokes the grant, so the legitimate holder's newer wrapper stops too.
    pub fn claim(&self, grant: &str, generation: u64, until: u64, now: u64) -> Claim {
        let Ok(mut g) = self.grants.lock() else {
            return Claim::Full;
        };
        let known = g.get(grant).copied();
        match decide(known, generation) {
            Claim::Replayed => {
                if let Some(e) = g.get_mut(grant) {
                    e.revoked = true;
                }
                Claim::Replayed
            }
            Claim::Granted => {
                if known.is_none() && g.len() >= MAX_GRANTS {
                    g.retain(|_, e| e.until > now);
                    if g.len() >= MAX_GRANTS {
                        return Claim::Full;
                    }
                }
                g.insert(
                    grant.to_string(),
                    Entry {
                        next: generation + 1,
                        revoked: false,
                        until,
                    },
                );
                Claim::Granted
            }
            Claim::Full => Claim::Full,
        }
    }

    /// Gives a claimed generation back after a failure that was not the client's (the
    /// IdP unreachable): the same wrapper may be tried again.
    pub fn release(&self, grant: &str, generation: u64) {
        if let Ok(mut g) = self.grants.lock() {
            if let Some(e) = g.get_mut(grant) {
                if !e.revoked && e.next == generation + 1 {
                    e.next = generation;
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.grants.lock().map(|g| g.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether the IdP rotates refresh tokens, as last seen.
#[derive(Debug, Default)]
pub struct Rotation(AtomicU8);

// 0: not seen yet (the Default).
const ROTATES: u8 = 1;
const STATIC: u8 = 2;

impl Rotation {
    /// Records what a refresh showed; true the first time the IdP is seen *not* to
    /// rotate (the caller says once what that leaves open).
    pub fn observe(&self, rotated: bool) -> bool {
        let now = if rotated { ROTATES } else { STATIC };
        let before = self.0.swap(now, Ordering::Relaxed);
        !rotated && before != STATIC
    }

    pub fn rotates(&self) -> bool {
        self.0.load(Ordering::Relaxed) == ROTATES
    }
}

/// Whether the IdP handed back a new refresh token (rotation), rather than none or the
/// same one.
pub fn rotated(old: &str, new: Option<&str>) -> bool {
    new.is_some_and(|n| n != old)
}

/// The resource the refreshed access token is for (RFC 8707 §2.2): the one granted
/// unless the request names another; a named one must be served here and, when the
/// grant had a resource, be that one. A grant for every cluster narrows to one; nothing
/// ever widens.
pub fn narrowed(
    granted: Option<&str>,
    asked: Option<&str>,
    serves: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, OAuthError> {
    let Some(asked) = asked else {
        return Ok(granted.map(str::to_string));
    };
    if !serves(asked) {
        return Err(invalid_target(
            "resource is not served by this authorization server",
        ));
    }
    match granted {
        None => Ok(Some(asked.to_string())),
        Some(g) if same_resource(g, asked) => Ok(Some(g.to_string())),
        Some(_) => Err(invalid_target(
            "resource is not within the grant: a refresh may narrow to the granted resource, never widen",
        )),
    }
}

/// When a grant started at `sign_in` stops, given `max_age`; never moved by use.
pub fn grant_end(sign_in: u64, max_age_secs: u64) -> u64 {
    sign_in.saturating_add(max_age_secs)
}

/// What is said once, when the IdP is first seen not to rotate refresh tokens.
pub const NO_ROTATION_WARNING: &str = "the identity provider does not rotate refresh tokens: \
this gateway refuses a replayed refresh token only on the replica that saw its grant; with several \
replicas a stolen refresh token can be used once more at each replica that has not. Turn on refresh \
token rotation at the IdP (Auth0: Refresh Token Rotation; Okta: 'Rotate token after every use'; \
Keycloak: realm Tokens > 'Revoke Refresh Token'; Entra ID rotates but keeps old tokens valid, so \
keep one replica or shorten refresh_token_max_age)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_used_once_and_a_replay_revokes_the_grant() {
        let l = Ledger::default();
        assert_eq!(l.claim("g", 0, 100, 1), Claim::Granted);
        assert_eq!(l.claim("g", 0, 100, 1), Claim::Replayed, "replay of gen 0");
        // The grant is revoked: the newer wrapper (gen 1) stops as well.
        assert_eq!(l.claim("g", 1, 100, 1), Claim::Replayed);
        // Another grant is unaffected.
        assert_eq!(l.claim("h", 0, 100, 1), Claim::Granted);
        assert_eq!(l.claim("h", 1, 100, 1), Claim::Granted);
        assert_eq!(l.claim("h", 1, 100, 1), Claim::Replayed);
    }

    #[test]
    fn a_released_generation_may_be_tried_again() {
        let l = Ledger::default();
        assert_eq!(l.claim("g", 3, 100, 1), Claim::Granted);
        l.release("g", 3);
        assert_eq!(l.claim("g", 3, 100, 1), Claim::Granted);
        assert_eq!(l.claim("g", 4, 100, 1), Claim::Granted);
    }

    #[test]
    fn narrowing_never_widens() {
        let serves = |r: &str| r.starts_with("https://gw/mcp");
        assert_eq!(narrowed(None, None, &serves).unwrap(), None);
        assert_eq!(
            narrowed(None, Some("https://gw/mcp/a"), &serves)
                .unwrap()
                .as_deref(),
            Some("https://gw/mcp/a"),
            "a grant for every cluster narrows to one"
        );
        assert_eq!(
            narrowed(Some("https://gw/mcp/a"), Some("https://gw/mcp/a/"), &serves)
                .unwrap()
                .as_deref(),
            Some("https://gw/mcp/a")
        );
        assert_eq!(
            narrowed(Some("https://gw/mcp/a"), None, &serves)
                .unwrap()
                .as_deref(),
            Some("https://gw/mcp/a")
        );
        for asked in [
            "https://gw/mcp/b",
            "https://gw/mcp",
            "https://elsewhere/mcp",
        ] {
            assert_eq!(
                narrowed(Some("https://gw/mcp/a"), Some(asked), &serves)
                    .unwrap_err()
                    .code,
                super::super::error::ErrorCode::InvalidTarget,
                "{asked}"
            );
        }
    }

    #[test]
    fn rotation_is_a_different_token_and_the_warning_comes_once() {
        assert!(rotated("a", Some("b")));
        assert!(!rotated("a", Some("a")));
        assert!(!rotated("a", None));
        let r = Rotation::default();
        assert!(r.observe(false), "first sight of no rotation");
        assert!(!r.observe(false), "said once");
        assert!(!r.observe(true));
        assert!(r.rotates());
    }

    #[test]
    fn the_grant_ends_at_a_fixed_time() {
        assert_eq!(grant_end(1_000, 30), 1_030);
        assert_eq!(grant_end(u64::MAX, 30), u64::MAX);
    }
}
