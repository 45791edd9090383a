//! The IdP's signing keys, and the pure JWT validation that uses them.
//!
//! Two halves that meet only through [`KeySet`]:
//! - [`validate_jwt`] decides: signature, `iss`, `aud`, `exp`/`nbf`, required scopes. No
//!   I/O and no clock of its own (the caller passes `now`), so every rejection is
//!   unit-tested without an IdP.
//! - [`JwksCache`] does the I/O: OIDC discovery when no JWKS URL is configured, the
//!   cached key set, and a refetch when a token names a `kid` the cache does not know —
//!   rate-limited, with concurrent callers sharing one in-flight fetch, so a flood of
//!   tokens with random `kid`s costs the IdP at most one request per interval.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::identity::claims::Claims;
use crate::telemetry::metrics::CounterFamily;
use crate::telemetry::Metrics;

/// Clock skew tolerated on `exp` and `nbf` (the spec's 60 s).
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// At most one `kid`-triggered refetch per this interval: enough to pick up a key
/// rotation promptly, too rare for a flood of made-up `kid`s to load the IdP.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// An IdP that does not answer within this is treated as down; requests must not queue
/// behind it for longer than ClickHouse waits for the verifier.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Real JWKS documents are a few KiB; anything this large is not one.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Keys

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    Ec,
    Ed,
}

/// The key family an algorithm needs; `None` for HMAC, which a JWKS can never vouch for
/// (a shared secret published in a key set would let anyone sign).
fn family_of(alg: Algorithm) -> Option<KeyFamily> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(KeyFamily::Rsa),
        ES256 | ES384 => Some(KeyFamily::Ec),
        EdDSA => Some(KeyFamily::Ed),
        HS256 | HS384 | HS512 => None,
    }
}

#[derive(Clone)]
struct VerificationKey {
    kid: Option<String>,
    /// When the JWK pins an algorithm, a token must use exactly that one.
    alg: Option<Algorithm>,
    family: KeyFamily,
    key: DecodingKey,
}

/// The usable signing keys of one JWKS document.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.keys
                    .iter()
                    .map(|k| k.kid.as_deref().unwrap_or("<no kid>")),
            )
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document. Keys this verifier cannot use (encryption keys, symmetric
    /// keys, unknown algorithms or curves) are skipped rather than failing the whole set:
    /// IdPs publish such keys next to their signing keys.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let doc: Document =
            serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
        Ok(Self {
            keys: doc.keys.into_iter().filter_map(verification_key).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Keys that may have signed a token with this header: same family and (when pinned)
    /// same algorithm; with a `kid`, only that key.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerificationKey> + 'a {
        let family = family_of(alg);
        self.keys.iter().filter(move |k| {
            Some(k.family) == family
                && k.alg.is_none_or(|a| a == alg)
                && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid))
        })
    }
}

fn verification_key(raw: Value) -> Option<VerificationKey> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        // An encryption algorithm (RSA-OAEP...) does not parse as a signing one: skip.
        Some(ka) => Some(Algorithm::from_str(&ka.to_string()).ok()?),
    };
    if alg.is_some_and(|a| family_of(a) != Some(family)) {
        return None;
    }
    // An EC key's curve fixes its algorithm (RFC 7518 §3.4); P-521 (ES512) is not
    // supported by the signature library, so such a key could never verify anything.
    let alg = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), alg) => {
            let by_curve = match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                EllipticCurve::P521 | EllipticCurve::Ed25519 => return None,
            };
            if alg.is_some_and(|a| a != by_curve) {
                return None;
            }
            Some(by_curve)
        }
        (_, alg) => alg,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerificationKey {
        kid: jwk.common.key_id,
        alg,
        family,
        key,
    })
}

// ---------------------------------------------------------------------------------------
// Validation

/// What a token must say to be accepted. Independent of any configuration file so the
/// gateway's gate and the verifier build it from their own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// Compared exactly (no trailing-slash normalisation: the IdP's `iss` is a fixed string).
    pub issuer: String,
    /// `aud` must equal it, or contain it when `aud` is an array.
    pub audience: String,
    pub leeway_secs: u64,
    /// Every one must be granted.
    pub required_scopes: Vec<String>,
}

/// Why a token was refused. `code()` is the stable, short form for responses and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm {0} is not accepted (asymmetric signatures only)")]
    UnsupportedAlgorithm(String),
    #[error("no key of the IdP matches the token's kid")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("iss is not the configured issuer")]
    WrongIssuer,
    #[error("aud is not the configured audience")]
    WrongAudience,
    #[error("the token has no exp")]
    MissingExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token lacks the required scope `{0}`")]
    MissingScope(String),
}

impl TokenRejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed_token",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingExpiry => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingScope(_) => "missing_scope",
        }
    }
}

/// The token's `kid` (if any), read without verifying anything, to pick or fetch keys.
pub fn peek_kid(token: &str) -> Result<Option<String>, TokenRejection> {
    jsonwebtoken::decode_header(token)
        .map(|h| h.kid)
        .map_err(|_| TokenRejection::Malformed)
}

/// Validates a JWT against the IdP's keys, in the spec's order: signature, `iss`, `aud`,
/// `exp`/`nbf` (with leeway), required scopes. `now` is Unix seconds.
pub fn validate_jwt(
    token: &str,
    keys: &KeySet,
    expect: &Expectations,
    now: u64,
) -> Result<Claims, TokenRejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
    if family_of(header.alg).is_none() {
        return Err(TokenRejection::UnsupportedAlgorithm(format!(
            "{:?}",
            header.alg
        )));
    }

    // Signature only: the claim checks below run in the spec's order with our own reasons.
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;

    let mut claims = None;
    let mut any_candidate = false;
    for key in keys.candidates(header.kid.as_deref(), header.alg) {
        any_candidate = true;
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => {
                claims = Some(Claims::from_map(data.claims));
                break;
            }
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::Crypto(_) => continue,
                // The signature held (or could not even be decoded) but the payload is
                // not a JSON object: not a JWT we can judge.
                _ => return Err(TokenRejection::Malformed),
            },
        }
    }
    let claims = match claims {
        Some(c) => c,
        None if any_candidate => return Err(TokenRejection::BadSignature),
        None => return Err(TokenRejection::UnknownKey),
    };

    if claims.get_str("iss") != Some(expect.issuer.as_str()) {
        return Err(TokenRejection::WrongIssuer);
    }
    if !claims.audience_contains(&expect.audience) {
        return Err(TokenRejection::WrongAudience);
    }
    // Without exp a token (and its cached verdict) would be valid forever.
    let exp = claims.exp().ok_or(TokenRejection::MissingExpiry)?;
    if exp.saturating_add(expect.leeway_secs) < now {
        return Err(TokenRejection::Expired);
    }
    if claims
        .nbf()
        .is_some_and(|nbf| nbf > now.saturating_add(expect.leeway_secs))
    {
        return Err(TokenRejection::NotYetValid);
    }
    let granted = claims.scopes();
    if let Some(missing) = expect.required_scopes.iter().find(|s| !granted.contains(s)) {
        return Err(TokenRejection::MissingScope(missing.clone()));
    }
    Ok(claims)
}

// ---------------------------------------------------------------------------------------
// The cache

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A configured JWKS URL.
    Url(String),
    /// `jwks_uri` from the issuer's `/.well-known/openid-configuration`.
    Discovery { issuer: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    Ok,
    Error,
}

impl FetchOutcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Told about every fetch attempt (for metrics).
pub type FetchObserver = Arc<dyn Fn(FetchOutcome) + Send + Sync>;

/// Counts each fetch in `family` by outcome (`chmcp_jwks_fetches_total`).
pub fn counting_observer(family: &CounterFamily) -> FetchObserver {
    let family = family.clone();
    Arc::new(move |outcome: FetchOutcome| {
        Metrics::inc(&family, &[("outcome", outcome.label())]);
    })
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot fetch {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Invalid { url: String, message: String },
    #[error("the IdP's keys are not loaded yet (the last attempt was under {0:?} ago)")]
    NotLoaded(Duration),
}

struct FetchState {
    /// Discovered `jwks_uri`, remembered until a fetch from it fails.
    jwks_uri: Option<String>,
    /// The last fetch a request caused (unknown `kid`, or keys not loaded yet).
    last_on_demand: Option<Instant>,
}

/// The IdP's current key set, shared by all requests.
pub struct JwksCache {
    source: JwksSource,
    http: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Bumped on every successful fetch, so a caller that waited for the fetch lock can
    /// tell that someone else already fetched while it waited.
    generation: AtomicU64,
    /// Held for the whole of a fetch: concurrent callers queue here and then share its result.
    fetch: tokio::sync::Mutex<FetchState>,
    min_refetch_interval: Duration,
    observer: Option<FetchObserver>,
}

impl JwksCache {
    pub fn new(source: JwksSource, http: reqwest::Client) -> Self {
        Self {
            source,
            http,
            keys: RwLock::new(None),
            generation: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchState {
                jwks_uri: None,
                last_on_demand: None,
            }),
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            observer: None,
        }
    }

    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    pub fn with_observer(mut self, observer: FetchObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The keys as last fetched, if any fetch has succeeded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc: the value
        // inside is still a whole key set.
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_loaded(&self) -> bool {
        self.current().is_some()
    }

    /// Fetches now (startup and periodic refresh), unless another caller's fetch
    /// finished while this one waited for it. Not rate-limited: only the verifier's own
    /// timers call this.
    pub async fn refresh(&self) -> Result<Arc<KeySet>, JwksError> {
        let seen = self.generation.load(Ordering::SeqCst);
        let mut state = self.fetch.lock().await;
        if self.generation.load(Ordering::SeqCst) != seen {
            if let Some(keys) = self.current() {
                return Ok(keys);
            }
        }
        self.fetch_locked(&mut state).await
    }

    /// Keys able to judge a token naming `kid`. The cached set when it has that kid (or
    /// the token names none); otherwise one refetch — at most one per
    /// `min_refetch_interval` across all callers, concurrent callers sharing it. When a
    /// refetch is not allowed or fails, the cached set is returned and the token will be
    /// refused for its unknown kid.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        let seen = self.generation.load(Ordering::SeqCst);
        if let Some(keys) = self.current() {
            if kid.is_none_or(|kid| keys.has_kid(kid)) {
                return Ok(keys);
            }
        }
        let mut state = self.fetch.lock().await;
        if self.generation.load(Ordering::SeqCst) != seen {
            if let Some(keys) = self.current() {
                return Ok(keys);
            }
        }
        let now = Instant::now();
        if let Some(last) = state.last_on_demand {
            if now.duration_since(last) < self.min_refetch_interval {
                return self
                    .current()
                    .ok_or(JwksError::NotLoaded(self.min_refetch_interval));
            }
        }
        state.last_on_demand = Some(now);
        match self.fetch_locked(&mut state).await {
            Ok(keys) => Ok(keys),
            Err(e) => self.current().ok_or(e),
        }
    }

    async fn fetch_locked(&self, state: &mut FetchState) -> Result<Arc<KeySet>, JwksError> {
        let result = self.download(state).await;
        if let Some(observe) = &self.observer {
            observe(if result.is_ok() {
                FetchOutcome::Ok
            } else {
                FetchOutcome::Error
            });
        }
        match result {
            Ok(set) => {
                let set = Arc::new(set);
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!(keys = set.len(), kids = ?set, "JWKS loaded");
                Ok(set)
            }
            Err(e) => {
                // The IdP may have moved its keys: discover again next time.
                state.jwks_uri = None;
                tracing::warn!(error = ?e.to_string(), "JWKS fetch failed");
                Err(e)
            }
        }
    }

    async fn download(&self, state: &mut FetchState) -> Result<KeySet, JwksError> {
        let url = match (&self.source, &state.jwks_uri) {
            (JwksSource::Url(url), _) => url.clone(),
            (JwksSource::Discovery { .. }, Some(url)) => url.clone(),
            (JwksSource::Discovery { issuer }, None) => {
                let url = self.discover(issuer).await?;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let body = self.get(&url).await?;
        let set = KeySet::from_json(&body).map_err(|message| JwksError::Invalid {
            url: url.clone(),
            message,
        })?;
        if set.is_empty() {
            return Err(JwksError::Invalid {
                url,
                message: "no usable signing key (RSA, EC or OKP)".into(),
            });
        }
        Ok(set)
    }

    async fn discover(&self, issuer: &str) -> Result<String, JwksError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.get(&url).await?;
        let invalid = |message: String| JwksError::Invalid {
            url: url.clone(),
            message,
        };
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| invalid(format!("not JSON: {e}")))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(invalid(format!("its issuer is not `{issuer}`")));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no jwks_uri".into()))?;
        require_https_or_loopback(jwks_uri).map_err(|m| invalid(format!("jwks_uri {m}")))?;
        Ok(jwks_uri.to_string())
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, JwksError> {
        let unreachable = |e: reqwest::Error| JwksError::Unreachable {
            url: url.to_string(),
            message: e.to_string(),
        };
        let response = self
            .http
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let body = response.bytes().await.map_err(unreachable)?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(JwksError::Invalid {
                url: url.to_string(),
                message: format!("{} bytes is too large", body.len()),
            });
        }
        Ok(body.to_vec())
    }
}

/// Keys must come over TLS, except from this machine (tests, a sidecar IdP proxy):
/// anyone on the path of a plain-http fetch could substitute their own keys.
pub fn require_https_or_loopback(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::net::is_loopback_url(&parsed) => Ok(()),
        "http" => Err(format!(
            "`{url}` must use https (plain http is allowed only on loopback)"
        )),
        other => Err(format!(
            "`{url}`: scheme {other} is not supported (use https)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const ISS: &str = "https://idp.example.com";
    const AUD: &str = "https://mcp.example.com/";

    /// An ES256 key made with ring, as (signing key, public JWK).
    fn es256_key(kid: &str) -> (EncodingKey, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        });
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn keyset(jwks: &[&Value]) -> KeySet {
        KeySet::from_json(json!({ "keys": jwks }).to_string().as_bytes()).unwrap()
    }

    fn expect() -> Expectations {
        Expectations {
            issuer: ISS.into(),
            audience: AUD.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            required_scopes: vec!["mcp:read".into()],
        }
    }

    fn good_claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "exp": NOW + 600, "iat": NOW, "scope": "openid mcp:read", "email": "a@example.com"})
    }

    fn sign(key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    #[test]
    fn valid_token_yields_its_claims() {
        let (key, jwk) = es256_key("k1");
        let claims = validate_jwt(
            &sign(&key, Some("k1"), &good_claims()),
            &keyset(&[&jwk]),
            &expect(),
            NOW,
        )
        .unwrap();
        assert_eq!(claims.get_str("email"), Some("a@example.com"));
        assert_eq!(claims.exp(), Some(NOW + 600));
    }

    #[test]
    fn each_claim_rejection_alone() {
        let (key, jwk) = es256_key("k1");
        let keys = keyset(&[&jwk]);
        let cases = [
            (
                with(good_claims(), "iss", json!("https://idp.example.com/")),
                TokenRejection::WrongIssuer,
            ),
            (without(good_claims(), "iss"), TokenRejection::WrongIssuer),
            (
                with(good_claims(), "aud", json!("https://other.example.com/")),
                TokenRejection::WrongAudience,
            ),
            (
                with(good_claims(), "aud", json!(["https://other.example.com/"])),
                TokenRejection::WrongAudience,
            ),
            (without(good_claims(), "aud"), TokenRejection::WrongAudience),
            (without(good_claims(), "exp"), TokenRejection::MissingExpiry),
            (
                with(good_claims(), "exp", json!(NOW - 61)),
                TokenRejection::Expired,
            ),
            (
                with(good_claims(), "nbf", json!(NOW + 61)),
                TokenRejection::NotYetValid,
            ),
            (
                with(good_claims(), "scope", json!("openid mcp:write")),
                TokenRejection::MissingScope("mcp:read".into()),
            ),
            (
                without(good_claims(), "scope"),
                TokenRejection::MissingScope("mcp:read".into()),
            ),
        ];
        for (claims, want) in cases {
            let got = validate_jwt(&sign(&key, Some("k1"), &claims), &keys, &expect(), NOW);
            assert_eq!(got.unwrap_err(), want, "{claims}");
        }
    }

    #[test]
    fn leeway_is_sixty_seconds_both_ways() {
        let (key, jwk) = es256_key("k1");
        let keys = keyset(&[&jwk]);
        let ok =
            |claims: Value| validate_jwt(&sign(&key, Some("k1"), &claims), &keys, &expect(), NOW);
        ok(with(good_claims(), "exp", json!(NOW - 60))).unwrap();
        ok(with(good_claims(), "nbf", json!(NOW + 60))).unwrap();
        // Fractional NumericDates are legal.
        ok(with(good_claims(), "exp", json!((NOW + 10) as f64 + 0.5))).unwrap();
    }

    #[test]
    fn audience_array_containing_ours_is_accepted() {
        let (key, jwk) = es256_key("k1");
        let claims = with(
            good_claims(),
            "aud",
            json!(["https://idp.example.com/userinfo", AUD]),
        );
        validate_jwt(
            &sign(&key, Some("k1"), &claims),
            &keyset(&[&jwk]),
            &expect(),
            NOW,
        )
        .unwrap();
    }

    #[test]
    fn scopes_are_read_from_scope_or_scp() {
        let (key, jwk) = es256_key("k1");
        let keys = keyset(&[&jwk]);
        for scopes in [json!(["mcp:read", "x"]), json!("x mcp:read")] {
            let claims = with(without(good_claims(), "scope"), "scp", scopes);
            validate_jwt(&sign(&key, Some("k1"), &claims), &keys, &expect(), NOW).unwrap();
        }
        let c = Claims::from_map(json!({"scope": "  a\tb  c "}).as_object().unwrap().clone());
        assert_eq!(c.scopes(), ["a", "b", "c"]);
    }

    /// One token, one scope answer: the gate (JWKS check, then `check_required_scopes`)
    /// and the verifier (`validate_jwt` with required scopes) read scopes by the same rule.
    #[test]
    fn gate_and_verifier_agree_on_scopes() {
        use crate::config::OAuthConfig;
        use crate::oauth::gate::{check_required_scopes, ServingContext};
        use crate::routing::Cluster;

        let (key, jwk) = es256_key("k1");
        let keys = keyset(&[&jwk]);
        let gate_config = OAuthConfig {
            required_scopes: vec!["mcp:read".into()],
            ..OAuthConfig::default()
        };
        let ctx = ServingContext {
            request_scheme: "https",
            host: "gw.example.com",
            cluster: Cluster::Implicit,
        };
        let variants = [
            (json!({"scope": "openid mcp:read"}), true),
            (json!({"scope": "openid"}), false),
            (json!({"scp": ["openid", "mcp:read"]}), true),
            (json!({"scp": ["openid"]}), false),
            (json!({"scp": "openid mcp:read"}), true),
            (json!({"scope": "openid", "scp": ["mcp:read"]}), true),
            (json!({"scope": "mcp:read", "scp": "openid"}), true),
            (json!({"scope": "openid", "scp": "email"}), false),
        ];
        for (scopes, granted) in variants {
            let mut claims = without(good_claims(), "scope");
            for (k, v) in scopes.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let token = sign(&key, Some("k1"), &claims);
            let verifier = validate_jwt(&token, &keys, &expect(), NOW).is_ok();
            let gate_expect = Expectations {
                required_scopes: Vec::new(),
                ..expect()
            };
            let verified = validate_jwt(&token, &keys, &gate_expect, NOW).unwrap();
            let gate = check_required_scopes(&gate_config, &ctx, &verified).is_ok();
            assert_eq!((gate, verifier), (granted, granted), "{scopes}");
        }
    }

    #[test]
    fn signature_by_another_key_with_the_same_kid_is_refused() {
        let (_, jwk) = es256_key("k1");
        let (impostor, _) = es256_key("k1");
        let got = validate_jwt(
            &sign(&impostor, Some("k1"), &good_claims()),
            &keyset(&[&jwk]),
            &expect(),
            NOW,
        );
        assert_eq!(got.unwrap_err(), TokenRejection::BadSignature);
    }

    #[test]
    fn unknown_kid_is_refused() {
        let (key, jwk) = es256_key("k1");
        let got = validate_jwt(
            &sign(&key, Some("k2"), &good_claims()),
            &keyset(&[&jwk]),
            &expect(),
            NOW,
        );
        assert_eq!(got.unwrap_err(), TokenRejection::UnknownKey);
    }

    #[test]
    fn token_without_kid_is_tried_against_every_compatible_key() {
        let (key, jwk) = es256_key("k1");
        let (_, other) = es256_key("k0");
        validate_jwt(
            &sign(&key, None, &good_claims()),
            &keyset(&[&other, &jwk]),
            &expect(),
            NOW,
        )
        .unwrap();
    }

    #[test]
    fn symmetric_and_garbage_tokens_are_refused() {
        let (_, jwk) = es256_key("k1");
        let keys = keyset(&[&jwk]);
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert_eq!(
            validate_jwt(&hs, &keys, &expect(), NOW).unwrap_err(),
            TokenRejection::UnsupportedAlgorithm("HS256".into())
        );
        for garbage in ["", "abc", "a.b.c", "hunter2"] {
            assert_eq!(
                validate_jwt(garbage, &keys, &expect(), NOW).unwrap_err(),
                TokenRejection::Malformed,
                "{garbage}"
            );
        }
        // alg "none" does not even parse as a header.
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(good_claims().to_string())
        );
        assert_eq!(
            validate_jwt(&none, &keys, &expect(), NOW).unwrap_err(),
            TokenRejection::Malformed
        );
    }

    #[test]
    fn key_set_skips_keys_it_cannot_use() {
        let (_, jwk) = es256_key("sig");
        let doc = json!({"keys": [
            jwk,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "weird"},
        ]});
        let set = KeySet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(set.has_kid("sig"));
        assert!(KeySet::from_json(b"{}").is_err());
    }

    #[test]
    fn a_key_pinned_to_one_algorithm_verifies_no_other() {
        // A P-256 key that claims ES384 is inconsistent and dropped.
        let (key, mut jwk) = es256_key("k1");
        jwk["alg"] = json!("ES384");
        let keys = keyset(&[&jwk]);
        assert!(keys.is_empty());
        let got = validate_jwt(
            &sign(&key, Some("k1"), &good_claims()),
            &keys,
            &expect(),
            NOW,
        );
        assert_eq!(got.unwrap_err(), TokenRejection::UnknownKey);
        // An RSA-pinned key is no candidate for an EC token.
        let (key, _) = es256_key("k1");
        let rsa = json!({"kty": "RSA", "kid": "k1", "alg": "RS256", "n": "AQAB", "e": "AQAB"});
        let got = validate_jwt(
            &sign(&key, Some("k1"), &good_claims()),
            &keyset(&[&rsa]),
            &expect(),
            NOW,
        );
        assert_eq!(got.unwrap_err(), TokenRejection::UnknownKey);
    }

    #[test]
    fn keys_must_come_over_https_unless_loopback() {
        assert!(require_https_or_loopback("https://idp.example.com").is_ok());
        assert!(require_https_or_loopback("http://127.0.0.1:8080/jwks").is_ok());
        assert!(require_https_or_loopback("http://[::1]/jwks").is_ok());
        assert!(require_https_or_loopback("http://LOCALHOST/jwks").is_ok());
        assert!(require_https_or_loopback("http://idp.example.com").is_err());
        assert!(require_https_or_loopback("http://127.0.0.1.nip.io").is_err());
        assert!(require_https_or_loopback("ftp://idp.example.com").is_err());
        assert!(require_https_or_loopback("not a url").is_err());
    }

    // --- JwksCache against a small in-process IdP double that counts requests.

    struct FakeIdp {
        issuer: String,
        jwks_hits: Arc<AtomicU64>,
    }

    async fn fake_idp(jwk: Value) -> FakeIdp {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
        let counter = hits.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/keys",
                get(move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that concurrent callers really overlap.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    axum::Json(json!({ "keys": [jwk] }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeIdp {
            issuer,
            jwks_hits: hits,
        }
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_fetch() {
        let (_, jwk) = es256_key("k1");
        let idp = fake_idp(jwk).await;
        let cache = Arc::new(JwksCache::new(
            JwksSource::Discovery {
                issuer: idp.issuer.clone(),
            },
            reqwest::Client::new(),
        ));
        assert!(!cache.is_loaded());
        // Keys not loaded yet: the first request fetches them; 20 concurrent ones share it.
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.keys_for(Some("k1")).await.map(|k| k.len()) })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), 1);
        }
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 1);

        // That first load was itself on demand, so the rate limit is already running.
        cache.keys_for(Some("random-0")).await.unwrap();
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_flood_of_unknown_kids_causes_exactly_one_refetch() {
        let (_, jwk) = es256_key("k1");
        let idp = fake_idp(jwk).await;
        let fetches = Arc::new(AtomicU64::new(0));
        let observed = fetches.clone();
        let observer: FetchObserver = Arc::new(move |_| {
            observed.fetch_add(1, Ordering::SeqCst);
        });
        let cache = Arc::new(
            JwksCache::new(
                JwksSource::Discovery {
                    issuer: idp.issuer.clone(),
                },
                reqwest::Client::new(),
            )
            .with_observer(observer),
        );
        // As at startup: the background load is not an on-demand fetch.
        cache.refresh().await.unwrap();
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 1);
        // Made-up kids, concurrent and then sequential: one refetch in all.
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let c = cache.clone();
                tokio::spawn(async move { c.keys_for(Some(&format!("random-{i}"))).await.is_ok() })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap(), "the cached keys are still returned");
        }
        for i in 0..50 {
            cache.keys_for(Some(&format!("later-{i}"))).await.unwrap();
        }
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // A known kid never fetches.
        cache.keys_for(Some("k1")).await.unwrap();
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refetch_is_allowed_again_after_the_interval() {
        let (_, jwk) = es256_key("k1");
        let idp = fake_idp(jwk).await;
        let cache = JwksCache::new(
            JwksSource::Url(format!("{}/keys", idp.issuer)),
            reqwest::Client::new(),
        )
        .with_min_refetch_interval(Duration::from_millis(100));
        cache.refresh().await.unwrap();
        cache.keys_for(Some("nope-1")).await.unwrap();
        cache.keys_for(Some("nope-2")).await.unwrap();
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(150)).await;
        cache.keys_for(Some("nope-3")).await.unwrap();
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unreachable_idp_is_an_error_until_keys_load() {
        // Port 1 on loopback: connection refused at once.
        let cache = JwksCache::new(
            JwksSource::Discovery {
                issuer: "http://127.0.0.1:1".into(),
            },
            reqwest::Client::new(),
        );
        assert!(matches!(
            cache.keys_for(Some("k")).await,
            Err(JwksError::Unreachable { .. })
        ));
        // The next request within the interval does not try again.
        assert!(matches!(
            cache.keys_for(Some("k")).await,
            Err(JwksError::NotLoaded(_))
        ));
    }

    #[tokio::test]
    async fn discovery_document_for_another_issuer_is_refused() {
        let (_, jwk) = es256_key("k1");
        let idp = fake_idp(jwk).await;
        // The document names `http://127.0.0.1:PORT`; configured with a trailing slash,
        // the issuer differs and must not be trusted for its keys.
        let cache = JwksCache::new(
            JwksSource::Discovery {
                issuer: format!("{}/", idp.issuer),
            },
            reqwest::Client::new(),
        );
        let err = cache.refresh().await.unwrap_err();
        assert!(matches!(err, JwksError::Invalid { .. }), "{err}");
        assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 0);
    }
}
