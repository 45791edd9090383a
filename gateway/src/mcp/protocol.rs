//! Protocol versions, the two eras, and the header rules of the stateless era. Pure.
//!
//! The `initialize` era (2025-03-26 .. 2025-11-25) negotiates once per connection; the
//! stateless 2026-07-28 era carries the version in every request's `_meta` and in the
//! `MCP-Protocol-Version` header, with `Mcp-Method`/`Mcp-Name` headers that must match
//! the body (SEP-2243) so proxies can route without parsing.

use axum::http::HeaderMap;
use base64::Engine;
use serde_json::{json, Value};

pub const INITIALIZE_ERA: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
pub const STATELESS_ERA: &str = "2026-07-28";
/// Newest version that still has `initialize`: the answer to an unknown request.
pub const LATEST_WITH_INITIALIZE: &str = "2025-11-25";

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
pub const HEADER_METHOD: &str = "mcp-method";
pub const HEADER_NAME: &str = "mcp-name";

/// How long clients may cache list results (2026 era `ttlMs`). Catalogs are per user
/// and can change with grants, so keep it short.
pub const LIST_TTL_MS: u64 = 60_000;

pub fn supported_versions() -> Vec<&'static str> {
    let mut v = INITIALIZE_ERA.to_vec();
    v.push(STATELESS_ERA);
    v
}

pub fn is_supported(v: &str) -> bool {
    INITIALIZE_ERA.contains(&v) || v == STATELESS_ERA
}

/// What `initialize` answers for a requested version.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    match requested {
        Some(v) => INITIALIZE_ERA
            .iter()
            .copied()
            .find(|s| *s == v)
            .unwrap_or(LATEST_WITH_INITIALIZE),
        None => LATEST_WITH_INITIALIZE,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Initialize,
    /// 2026-07-28: per-request `_meta`, `resultType`, caching hints.
    Stateless,
}

/// A protocol-level refusal before dispatch: JSON-RPC code, message, data, HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolRefusal {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
    pub status: u16,
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

fn refusal(
    code: i64,
    status: u16,
    message: impl Into<String>,
    data: Option<Value>,
) -> ProtocolRefusal {
    ProtocolRefusal {
        code,
        message: message.into(),
        data,
        status,
    }
}

pub fn unsupported_version(requested: &str) -> ProtocolRefusal {
    refusal(
        UNSUPPORTED_PROTOCOL_VERSION,
        400,
        format!(
            "Unsupported protocol version `{requested}`; this server supports {}",
            supported_versions().join(", ")
        ),
        Some(json!({"requested": requested, "supported": supported_versions()})),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ProtocolRefusal> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(refusal(
            HEADER_MISMATCH,
            400,
            format!("duplicate {name} header"),
            None,
        ));
    }
    first.to_str().map(|v| Some(v.trim())).map_err(|_| {
        refusal(
            HEADER_MISMATCH,
            400,
            format!("{name} header is not valid text"),
            None,
        )
    })
}

/// `=?base64?...?=` values carry names that are not plain header text.
fn decode_header_value(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|i| i.strip_suffix("?="))
    {
        Some(inner) => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(inner)
                .ok()?,
        )
        .ok(),
        None => Some(v.to_string()),
    }
}

/// The body value `Mcp-Name` must equal, for methods that have one.
fn expected_name<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return None,
    };
    params?.get(key)?.as_str()
}

/// Decides the era of one request and checks the version and standard headers.
/// A request whose `params._meta` names a protocol version is stateless-era, whatever
/// its method (so `initialize` in a modern envelope is an unknown method there).
pub fn classify(
    headers: &HeaderMap,
    method: &str,
    params: Option<&Value>,
    is_request: bool,
) -> Result<Era, ProtocolRefusal> {
    let header_version = header(headers, HEADER_PROTOCOL_VERSION)?;
    let meta = params.and_then(|p| p.get("_meta"));
    let meta_version = meta
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let Some(meta_version) = meta_version else {
        if let Some(v) = header_version {
            if !is_supported(v) {
                return Err(unsupported_version(v));
            }
        }
        let modern_header = header_version == Some(STATELESS_ERA);
        if is_request && (modern_header || method == "server/discover") {
            return Err(refusal(
                INVALID_PARAMS,
                400,
                format!("Invalid params: request _meta is missing `{META_PROTOCOL_VERSION}`, which protocol {STATELESS_ERA} requires"),
                None,
            ));
        }
        if method == "initialize" {
            // The handshake may omit the standard headers, but one that is sent must agree.
            if let Some(m) = header(headers, HEADER_METHOD)? {
                if m != "initialize" {
                    return Err(refusal(
                        HEADER_MISMATCH,
                        400,
                        format!("Mcp-Method header `{m}` does not match body method `initialize`"),
                        None,
                    ));
                }
            }
        }
        return Ok(if modern_header {
            Era::Stateless
        } else {
            Era::Initialize
        });
    };
    // Header and body must agree before the version itself is judged.
    match header_version {
        None => return Err(refusal(HEADER_MISMATCH, 400, "request _meta protocolVersion requires the MCP-Protocol-Version header", None)),
        Some(h) if h != meta_version => {
            return Err(refusal(
                HEADER_MISMATCH,
                400,
                format!("MCP-Protocol-Version header ({h}) does not match request _meta protocolVersion ({meta_version})"),
                None,
            ))
        }
        Some(_) => {}
    }
    if !is_supported(meta_version) {
        return Err(unsupported_version(meta_version));
    }
    if meta_version != STATELESS_ERA {
        // An initialize-era version in _meta: served as that era.
        return Ok(Era::Initialize);
    }
    if is_request
        && meta
            .and_then(|m| m.get(META_CLIENT_CAPABILITIES))
            .is_none_or(|c| !c.is_object())
    {
        return Err(refusal(
            INVALID_PARAMS,
            400,
            format!("Invalid params: request _meta is missing `{META_CLIENT_CAPABILITIES}` (use {{}} for none)"),
            None,
        ));
    }
    match header(headers, HEADER_METHOD)? {
        None => {
            return Err(refusal(
                HEADER_MISMATCH,
                400,
                "missing required Mcp-Method header",
                None,
            ))
        }
        Some(m) if m != method => {
            return Err(refusal(
                HEADER_MISMATCH,
                400,
                format!("Mcp-Method header `{m}` does not match body method `{method}`"),
                None,
            ))
        }
        Some(_) => {}
    }
    if let Some(expected) = expected_name(method, params) {
        match header(headers, HEADER_NAME)? {
            None => {
                return Err(refusal(
                    HEADER_MISMATCH,
                    400,
                    format!("missing required Mcp-Name header for `{method}`"),
                    None,
                ))
            }
            Some(raw) => match decode_header_value(raw) {
                None => {
                    return Err(refusal(
                        HEADER_MISMATCH,
                        400,
                        "Mcp-Name header is not valid Base64",
                        None,
                    ))
                }
                Some(d) if d != expected => {
                    return Err(refusal(
                        HEADER_MISMATCH,
                        400,
                        format!("Mcp-Name header `{d}` does not match body value `{expected}`"),
                        None,
                    ))
                }
                Some(_) => {}
            },
        }
    }
    Ok(Era::Stateless)
}

/// HTTP status for a JSON-RPC error answered in the stateless era (initialize-era
/// errors stay 200, as that era's clients expect).
pub fn error_status(era: Era, code: i64) -> u16 {
    match (era, code) {
        (Era::Initialize, _) => 200,
        (_, UNSUPPORTED_PROTOCOL_VERSION | HEADER_MISMATCH) => 400,
        (_, METHOD_NOT_FOUND) => 404,
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn meta_params(extra: Value) -> Value {
        let mut p =
            json!({"_meta": {META_PROTOCOL_VERSION: STATELESS_ERA, META_CLIENT_CAPABILITIES: {}}});
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        p
    }

    #[test]
    fn initialize_negotiates_supported_or_latest() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2024-11-05")), LATEST_WITH_INITIALIZE);
        assert_eq!(negotiate(Some("2026-07-28")), LATEST_WITH_INITIALIZE);
        assert_eq!(negotiate(None), LATEST_WITH_INITIALIZE);
    }

    #[test]
    fn unsupported_header_version_is_400_listing_supported() {
        let r = classify(
            &headers(&[("mcp-protocol-version", "1999-01-01")]),
            "tools/list",
            None,
            true,
        )
        .unwrap_err();
        assert_eq!((r.status, r.code), (400, UNSUPPORTED_PROTOCOL_VERSION));
        assert!(
            r.message.contains("2025-06-18") && r.message.contains("2026-07-28"),
            "{}",
            r.message
        );
    }

    #[test]
    fn legacy_requests_need_no_headers() {
        assert_eq!(
            classify(&HeaderMap::new(), "tools/list", None, true),
            Ok(Era::Initialize)
        );
        assert_eq!(
            classify(
                &headers(&[("mcp-protocol-version", "2025-06-18")]),
                "tools/call",
                Some(&json!({"name": "x"})),
                true
            ),
            Ok(Era::Initialize)
        );
    }

    #[test]
    fn stateless_request_with_matching_headers_passes() {
        let p = meta_params(json!({"name": "execute_query"}));
        let h = headers(&[
            ("mcp-protocol-version", STATELESS_ERA),
            ("mcp-method", "tools/call"),
            ("mcp-name", "execute_query"),
        ]);
        assert_eq!(
            classify(&h, "tools/call", Some(&p), true),
            Ok(Era::Stateless)
        );
        let b64 = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("execute_query")
        );
        let h = headers(&[
            ("mcp-protocol-version", STATELESS_ERA),
            ("mcp-method", "tools/call"),
            ("mcp-name", &b64),
        ]);
        assert_eq!(
            classify(&h, "tools/call", Some(&p), true),
            Ok(Era::Stateless)
        );
    }

    #[test]
    fn stateless_header_mismatches_are_400_32020() {
        let p = meta_params(json!({"name": "execute_query"}));
        for h in [
            headers(&[
                ("mcp-protocol-version", STATELESS_ERA),
                ("mcp-method", "tools/list"),
                ("mcp-name", "execute_query"),
            ]),
            headers(&[
                ("mcp-protocol-version", STATELESS_ERA),
                ("mcp-name", "execute_query"),
            ]),
            headers(&[
                ("mcp-protocol-version", STATELESS_ERA),
                ("mcp-method", "tools/call"),
                ("mcp-name", "other"),
            ]),
            headers(&[
                ("mcp-protocol-version", STATELESS_ERA),
                ("mcp-method", "tools/call"),
            ]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "execute_query")]),
            headers(&[
                ("mcp-protocol-version", "2025-06-18"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "execute_query"),
            ]),
        ] {
            let r = classify(&h, "tools/call", Some(&p), true).unwrap_err();
            assert_eq!(
                (r.status, r.code),
                (400, HEADER_MISMATCH),
                "{h:?}: {}",
                r.message
            );
        }
    }

    #[test]
    fn header_body_mismatch_is_judged_before_the_version() {
        let p = json!({"_meta": {META_PROTOCOL_VERSION: "v999.0.0", META_CLIENT_CAPABILITIES: {}}});
        let h = headers(&[
            ("mcp-protocol-version", STATELESS_ERA),
            ("mcp-method", "tools/list"),
        ]);
        assert_eq!(
            classify(&h, "tools/list", Some(&p), true).unwrap_err().code,
            HEADER_MISMATCH
        );
    }

    #[test]
    fn modern_envelope_wins_over_legacy_method_names() {
        let p = meta_params(json!({}));
        let h = headers(&[
            ("mcp-protocol-version", STATELESS_ERA),
            ("mcp-method", "initialize"),
        ]);
        assert_eq!(
            classify(&h, "initialize", Some(&p), true),
            Ok(Era::Stateless)
        );
    }

    #[test]
    fn missing_client_capabilities_is_invalid_params() {
        let p = json!({"_meta": {META_PROTOCOL_VERSION: STATELESS_ERA}});
        let h = headers(&[
            ("mcp-protocol-version", STATELESS_ERA),
            ("mcp-method", "server/discover"),
        ]);
        let r = classify(&h, "server/discover", Some(&p), true).unwrap_err();
        assert_eq!((r.status, r.code), (400, INVALID_PARAMS));
    }

    #[test]
    fn stateless_header_without_meta_is_invalid_params() {
        let h = headers(&[
            ("mcp-protocol-version", STATELESS_ERA),
            ("mcp-method", "tools/list"),
        ]);
        let r = classify(&h, "tools/list", Some(&json!({})), true).unwrap_err();
        assert_eq!((r.status, r.code), (400, INVALID_PARAMS));
    }

    #[test]
    fn unsupported_meta_version_is_refused() {
        let p = json!({"_meta": {META_PROTOCOL_VERSION: "2030-01-01"}});
        let h = headers(&[
            ("mcp-protocol-version", "2030-01-01"),
            ("mcp-method", "tools/list"),
        ]);
        let r = classify(&h, "tools/list", Some(&p), true).unwrap_err();
        assert_eq!(r.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(r.data.unwrap()["requested"], "2030-01-01");
    }
}
