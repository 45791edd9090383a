//! Sealing of the broker's transient artifacts.
//!
//! The broker keeps no server-side state (docs/spec-notes.md, "Broker mode"): every artifact it hands
//! out — registered client ids and secrets, the upstream `state`, consent tickets,
//! authorization codes, refresh-token wrappers, and in sealed token mode the access
//! tokens themselves — carries its own data, encrypted and
//! authenticated with AES-256-GCM under a key derived (HKDF-SHA256) from
//! `oauth.signing_secret` with one label per kind. Any replica holding the same secret
//! can open what another sealed; nothing else can read or forge it.
//!
//! Wire form (base64url, no padding): `version(1) | kind(1) | nonce(12) | ciphertext+tag`.
//! The two header bytes are also the AEAD's associated data, so flipping the kind byte
//! fails authentication just like any other tampering; they are in clear only so that a
//! token of the wrong kind gets a precise error instead of a generic one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bumped if the wire form or the key derivation ever changes, so old artifacts are
/// refused as malformed rather than misread.
const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 2;
/// HKDF salt: fixed and public; it separates this use of the secret from any other.
const HKDF_SALT: &[u8] = b"chmcp oauth broker v1";
/// Sealed artifacts travel in URLs and form fields; anything longer than this is not
/// one of ours and is refused before any base64 decoding or allocation.
pub const MAX_SEALED_LEN: usize = 8 * 1024;
/// Sealed access tokens carry an upstream JWT and its verified claims (roughly twice
/// the upstream token, plus base64), and IdPs that list groups in tokens issue large ones.
pub const MAX_SEALED_ACCESS_LEN: usize = 32 * 1024;

/// What a sealed artifact is. Each kind has its own key, so an artifact of one kind can
/// never be accepted as another (a `state` replayed as an authorization code, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ClientId,
    ClientSecret,
    State,
    ConsentTicket,
    AuthorizationCode,
    RefreshToken,
    /// The access tokens of `token_mode: sealed` (oauth/sealed.rs).
    AccessToken,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::ClientId,
        Kind::ClientSecret,
        Kind::State,
        Kind::ConsentTicket,
        Kind::AuthorizationCode,
        Kind::RefreshToken,
        Kind::AccessToken,
    ];

    /// The HKDF `info` label of this kind's key.
    pub fn label(self) -> &'static str {
        match self {
            Kind::ClientId => "chmcp/broker/client-id",
            Kind::ClientSecret => "chmcp/broker/client-secret",
            Kind::State => "chmcp/broker/upstream-state",
            Kind::ConsentTicket => "chmcp/broker/consent-ticket",
            Kind::AuthorizationCode => "chmcp/broker/authorization-code",
            Kind::RefreshToken => "chmcp/broker/refresh-token",
            Kind::AccessToken => "chmcp/broker/access-token",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Kind::ClientId => 1,
            Kind::ClientSecret => 2,
            Kind::State => 3,
            Kind::ConsentTicket => 4,
            Kind::AuthorizationCode => 5,
            Kind::RefreshToken => 6,
            Kind::AccessToken => 7,
        }
    }

    /// The longest sealed text of this kind that is opened at all.
    fn max_len(self) -> usize {
        match self {
            Kind::AccessToken => MAX_SEALED_ACCESS_LEN,
            _ => MAX_SEALED_LEN,
        }
    }

    fn index(self) -> usize {
        usize::from(self.tag() - 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed artifact of this gateway (bad encoding or length)")]
    Malformed,
    #[error("a sealed artifact of another kind was presented")]
    WrongKind,
    #[error(
        "the artifact does not authenticate (tampered, or sealed under another signing secret)"
    )]
    Tampered,
    #[error("the artifact has expired")]
    Expired,
    #[error("the sealed payload cannot be encoded or decoded")]
    Payload,
    #[error("the system random generator failed")]
    Random,
    #[error("oauth.signing_secret is empty")]
    NoSecret,
}

/// The sealed envelope: the payload plus its absolute expiry (Unix seconds, 0 = never).
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    exp: u64,
    v: T,
}

/// Keys for every kind, derived once from the signing secret.
pub struct Sealer {
    keys: Vec<LessSafeKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<keys>)")
    }
}

impl Sealer {
    pub fn new(signing_secret: &[u8]) -> Result<Self, SealError> {
        if signing_secret.is_empty() {
            return Err(SealError::NoSecret);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(signing_secret);
        let mut keys = Vec::with_capacity(Kind::ALL.len());
        for kind in Kind::ALL {
            let info = [kind.label().as_bytes()];
            // expand fails only for an output length above 255 hash blocks; 32 bytes is not.
            let okm = prk
                .expand(&info, &AES_256_GCM)
                .map_err(|_| SealError::NoSecret)?;
            keys.push(LessSafeKey::new(UnboundKey::from(okm)));
        }
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The key derived for `kind`.
    // `new` derives one key per `Kind::ALL`, in `index` order: the index is always in range.
    #[allow(clippy::indexing_slicing)]
    fn key(&self, kind: Kind) -> &LessSafeKey {
        &self.keys[kind.index()]
    }

    /// Seals `payload` as `kind`, valid until `exp` (Unix seconds; 0 = no expiry).
    pub fn seal<T: Serialize>(
        &self,
        kind: Kind,
        payload: &T,
        exp: u64,
    ) -> Result<String, SealError> {
        let mut buf =
            serde_json::to_vec(&Envelope { exp, v: payload }).map_err(|_| SealError::Payload)?;
        // Random 96-bit nonces: the collision bound (~2^32 seals per key) is far beyond
        // what a signing-secret generation of an OAuth broker will ever seal.
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let header = [FORMAT_VERSION, kind.tag()];
        self.key(kind)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut buf,
            )
            .map_err(|_| SealError::Payload)?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + buf.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a `kind` artifact and checks its expiry against `now` (Unix seconds).
    pub fn open<T: DeserializeOwned>(
        &self,
        kind: Kind,
        sealed: &str,
        now: u64,
    ) -> Result<T, SealError> {
        if sealed.len() > kind.max_len() {
            return Err(SealError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < HEADER_LEN + NONCE_LEN + aead::AES_256_GCM.tag_len()
            || raw.first() != Some(&FORMAT_VERSION)
        {
            return Err(SealError::Malformed);
        }
        if raw.get(1) != Some(&kind.tag()) {
            return Err(SealError::WrongKind);
        }
        let (header, rest) = raw.split_at(HEADER_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key(kind)
            .open_in_place(nonce, Aad::from(header), &mut buf)
            .map_err(|_| SealError::Tampered)?;
        let env: Envelope<T> = serde_json::from_slice(plain).map_err(|_| SealError::Payload)?;
        if env.exp != 0 && env.exp < now {
            return Err(SealError::Expired);
        }
        Ok(env.v)
    }

    /// `n` random bytes, base64url: PKCE verifiers, browser-binding nonces.
    pub fn random_token(&self, n: usize) -> Result<String, SealError> {
        let mut b = vec![0u8; n];
        self.rng.fill(&mut b).map_err(|_| SealError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(b))
    }
}

/// base64url(SHA-256(input)), no padding: the PKCE S256 transform and our compact
/// binding of long values (client ids) inside sealed payloads.
pub fn sha256_b64(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        input.as_bytes(),
    ))
}

/// Equality that takes the same time wherever the first difference is, for comparing
/// secrets and PKCE values.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct P {
        a: String,
        n: u32,
    }

    fn p() -> P {
        P {
            a: "hello".into(),
            n: 7,
        }
    }

    #[test]
    fn round_trip_between_two_sealers_sharing_only_the_secret() {
        let one = Sealer::new(SECRET).unwrap();
        let other = Sealer::new(SECRET).unwrap();
        let s = one.seal(Kind::AuthorizationCode, &p(), 1000).unwrap();
        assert!(
            !s.contains('=') && !s.contains('+') && !s.contains('/'),
            "base64url without padding: {s}"
        );
        assert_eq!(
            other.open::<P>(Kind::AuthorizationCode, &s, 999).unwrap(),
            p()
        );
    }

    #[test]
    fn each_seal_is_different_and_hides_the_payload() {
        let s = Sealer::new(SECRET).unwrap();
        let a = s.seal(Kind::State, &p(), 0).unwrap();
        let b = s.seal(Kind::State, &p(), 0).unwrap();
        assert_ne!(a, b);
        let raw = URL_SAFE_NO_PAD.decode(&a).unwrap();
        assert!(!raw.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn an_artifact_of_another_kind_is_refused() {
        let s = Sealer::new(SECRET).unwrap();
        let state = s.seal(Kind::State, &p(), 0).unwrap();
        assert_eq!(
            s.open::<P>(Kind::AuthorizationCode, &state, 0).unwrap_err(),
            SealError::WrongKind
        );
    }

    #[test]
    fn a_forged_kind_byte_does_not_authenticate() {
        let s = Sealer::new(SECRET).unwrap();
        let mut raw = URL_SAFE_NO_PAD
            .decode(s.seal(Kind::State, &p(), 0).unwrap())
            .unwrap();
        raw[1] = Kind::AuthorizationCode.tag();
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            s.open::<P>(Kind::AuthorizationCode, &forged, 0)
                .unwrap_err(),
            SealError::Tampered
        );
    }

    #[test]
    fn any_flipped_bit_is_tampering() {
        let s = Sealer::new(SECRET).unwrap();
        let raw = URL_SAFE_NO_PAD
            .decode(s.seal(Kind::RefreshToken, &p(), 0).unwrap())
            .unwrap();
        for i in HEADER_LEN..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            let err = s
                .open::<P>(Kind::RefreshToken, &URL_SAFE_NO_PAD.encode(&t), 0)
                .unwrap_err();
            assert_eq!(err, SealError::Tampered, "byte {i}");
        }
    }

    #[test]
    fn another_signing_secret_cannot_open() {
        let a = Sealer::new(SECRET).unwrap();
        let b = Sealer::new(b"another-secret-of-at-least-32-bytes!").unwrap();
        let sealed = a.seal(Kind::ClientId, &p(), 0).unwrap();
        assert_eq!(
            b.open::<P>(Kind::ClientId, &sealed, 0).unwrap_err(),
            SealError::Tampered
        );
    }

    #[test]
    fn expiry_is_enforced_and_zero_means_never() {
        let s = Sealer::new(SECRET).unwrap();
        let sealed = s.seal(Kind::AuthorizationCode, &p(), 100).unwrap();
        assert!(s.open::<P>(Kind::AuthorizationCode, &sealed, 100).is_ok());
        assert_eq!(
            s.open::<P>(Kind::AuthorizationCode, &sealed, 101)
                .unwrap_err(),
            SealError::Expired
        );
        let forever = s.seal(Kind::ClientId, &p(), 0).unwrap();
        assert!(s.open::<P>(Kind::ClientId, &forever, u64::MAX).is_ok());
    }

    #[test]
    fn garbage_is_malformed() {
        let s = Sealer::new(SECRET).unwrap();
        for g in ["", "not base64!", "AAAA", &"A".repeat(MAX_SEALED_LEN + 1)] {
            assert_eq!(
                s.open::<P>(Kind::State, g, 0).unwrap_err(),
                SealError::Malformed,
                "{g:.20}"
            );
        }
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Kind::ALL.iter().map(|k| k.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Kind::ALL.len());
    }

    #[test]
    fn sha256_b64_matches_the_rfc7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            sha256_b64("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
