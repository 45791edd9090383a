//! The gate's `exp` pre-check, decoded once per token: a bearer arrives with every MCP
//! request, and decoding its payload (base64 and a JSON object) each time cost more than
//! the rest of the gate. What a token states is a function of its bytes, so it is kept
//! under the token's full sha256 (the digest the gate computes anyway); the clock is
//! judged on every request, so a remembered token is refused the moment its `exp` +
//! leeway passes, exactly as without the memo. Nothing here is an identity: no claim but
//! `exp` is kept, and with `validate_tokens` the JWKS check still runs every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::gate::{judge_exp, unverified_exp, TokenProblem};

/// What a token states about its expiry: `Ok(None)` for none, `Err` for a bad `exp`.
type Stated = Result<Option<SystemTime>, TokenProblem>;

/// Bounded: at most `capacity` tokens; when full, the expired ones go, and if that frees
/// less than a quarter the memo starts over (a forgotten token only costs one more decode).
pub struct ExpMemo {
    stated: Mutex<HashMap<[u8; 32], Stated>>,
    capacity: usize,
}

/// Enough for every token live at once on a busy gateway; ~80 bytes an entry.
pub const DEFAULT_CAPACITY: usize = 4096;

impl Default for ExpMemo {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ExpMemo {
    pub fn new(capacity: usize) -> Self {
        Self {
            stated: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The gate's `exp` pre-check on `token` (whose sha256 is `digest`) at
    /// `now`, decoding the token only the first time it is seen.
    pub fn check(
        &self,
        digest: &[u8; 32],
        token: &str,
        now: SystemTime,
    ) -> Result<(), TokenProblem> {
        let known = self.stated.lock().ok().and_then(|m| m.get(digest).cloned());
        let stated = match known {
            Some(s) => s,
            None => {
                let s = unverified_exp(token);
                self.remember(*digest, s.clone(), now);
                s
            }
        };
        judge_exp(stated?, now)
    }

    fn remember(&self, digest: [u8; 32], stated: Stated, now: SystemTime) {
        let Ok(mut m) = self.stated.lock() else {
            return;
        };
        if m.len() >= self.capacity {
            m.retain(|_, s| !matches!(s, Ok(exp) if judge_exp(*exp, now).is_err()));
            // Unless a quarter is free now, start over: a scan of the whole map then comes
            // at most once per capacity / 4 new tokens, whatever expiries callers send.
            if m.len() > self.capacity * 3 / 4 {
                m.clear();
            }
        }
        m.insert(digest, stated);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.stated.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;
    use crate::fingerprint::sha256;
    use crate::oauth::gate::EXP_LEEWAY;

    fn jwt(payload: &str) -> String {
        format!("h.{}.s", URL_SAFE_NO_PAD.encode(payload))
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_remembered_token_is_refused_once_its_exp_and_leeway_pass() {
        let memo = ExpMemo::new(8);
        let token = jwt(r#"{"exp":1000}"#);
        let d = sha256(token.as_bytes());
        assert_eq!(memo.check(&d, &token, at(900)), Ok(()));
        assert_eq!(memo.len(), 1);
        // The same token, now from the memo: admitted inside the leeway, refused after.
        let edge = at(1000) + EXP_LEEWAY;
        assert_eq!(memo.check(&d, &token, edge), Ok(()));
        assert_eq!(
            memo.check(&d, &token, edge + Duration::from_secs(1)),
            Err(TokenProblem::Expired)
        );
        // The memo agrees with the undecorated check at every instant.
        for now in [at(0), at(1059), at(1061), at(5000)] {
            assert_eq!(
                memo.check(&d, &token, now),
                crate::oauth::gate::check_token(&token, now).map(|_| ())
            );
        }
    }

    #[test]
    fn bad_exp_and_opaque_tokens_are_remembered_as_what_they_state() {
        let memo = ExpMemo::new(8);
        let bad = jwt(r#"{"exp":"soon"}"#);
        let d = sha256(bad.as_bytes());
        assert_eq!(memo.check(&d, &bad, at(0)), Err(TokenProblem::BadExp));
        assert_eq!(memo.check(&d, &bad, at(0)), Err(TokenProblem::BadExp));
        let opaque = "opaque-token";
        assert_eq!(
            memo.check(&sha256(opaque.as_bytes()), opaque, at(0)),
            Ok(())
        );
    }

    #[test]
    fn the_memo_never_holds_more_than_its_capacity() {
        let memo = ExpMemo::new(4);
        // Four live tokens fill it; expired ones are dropped first when a fifth comes.
        let tokens: Vec<String> = (0..4)
            .map(|i| jwt(&format!(r#"{{"exp":{}}}"#, 100 + i)))
            .collect();
        for t in &tokens {
            memo.check(&sha256(t.as_bytes()), t, at(0)).unwrap();
        }
        assert_eq!(memo.len(), 4);
        let late = jwt(r#"{"exp":100000}"#);
        // At 1000 s every earlier token is past exp + leeway: they make room.
        memo.check(&sha256(late.as_bytes()), &late, at(1000))
            .unwrap();
        assert_eq!(memo.len(), 1);
        // Live tokens beyond the bound: the memo starts over, never grows past it.
        for i in 0..10 {
            let t = jwt(&format!(r#"{{"exp":{}}}"#, 200000 + i));
            memo.check(&sha256(t.as_bytes()), &t, at(1000)).unwrap();
            assert!(memo.len() <= 4, "{} entries", memo.len());
        }
    }
}
