//! ClickHouse error bodies and what they mean to the gateway.
//!
//! Two shapes exist: modern `Code: 516. DB::Exception: msg. (NAME) (version ...)` and
//! the older `Code: 193, e.displayText() = DB::Exception: msg, e.what() = DB::Exception`.

use std::fmt;

/// Longest message shown to a caller (docs/spec-notes.md, "Results": cut at 2 000 characters).
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// A failure reported by ClickHouse (or by whatever answered on its port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// HTTP status of the response (0 when the error came in-band in a 200 stream).
    pub status: u16,
    pub code: Option<u32>,
    /// The exception name, e.g. `UNKNOWN_TABLE` (modern servers only).
    pub name: Option<String>,
    pub message: String,
}

impl ServerError {
    /// Parses a response body; anything unrecognised is kept verbatim as the message.
    pub fn parse(status: u16, body: &str) -> Self {
        let body = body.trim();
        let Some((_, rest)) = body.split_once("Code: ") else {
            return Self {
                status,
                code: None,
                name: None,
                message: cut(body),
            };
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let code = digits.parse().ok();
        let mut msg = rest
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start_matches(['.', ','])
            .trim_start();
        msg = msg.strip_prefix("e.displayText() = ").unwrap_or(msg);
        msg = msg.strip_prefix("DB::Exception: ").unwrap_or(msg);
        // Older servers append ", e.what() = DB::Exception"; modern ones "(NAME) (version x)".
        let mut msg = msg.to_string();
        if let Some(i) = msg.rfind(", e.what() = ") {
            msg.truncate(i);
        }
        if let Some(i) = msg.rfind(" (version ") {
            msg.truncate(i);
        }
        let mut name = None;
        // A trailing " (NAME)" is the exception name.
        let named = msg
            .strip_suffix(')')
            .and_then(|m| m.rsplit_once(" ("))
            .filter(|(_, candidate)| {
                !candidate.is_empty()
                    && candidate
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(|(head, candidate)| (head.to_string(), candidate.to_string()));
        if let Some((head, candidate)) = named {
            name = Some(candidate);
            msg = head;
        }
        Self {
            status,
            code,
            name,
            message: cut(msg.trim_end_matches('.').trim()),
        }
    }

    /// Whether this failure says "who you are" was refused (docs/spec-notes.md, "Identity"), as
    /// opposed to a transient or query problem. Shared by the catalog cache and the probe.
    pub fn is_auth_class(&self) -> bool {
        if matches!(self.status, 401 | 403) {
            return true;
        }
        if matches!(self.code, Some(192 | 193 | 194 | 497 | 516 | 519)) {
            return true;
        }
        let m = self.message.to_ascii_lowercase();
        m.contains("token authentication is not configured")
            || m.contains("no authentication information found")
    }

    /// The setting a server refused, when that is what went wrong: an unknown setting
    /// (code 115) or a read-only profile that forbids changing one (code 164).
    pub fn refused_setting(&self) -> Option<String> {
        if !matches!(self.code, Some(115 | 164)) {
            return None;
        }
        // "Unknown setting log_comment" / "Cannot modify 'readonly' setting in readonly mode"
        let m = &self.message;
        if let Some(rest) = m.split("Unknown setting ").nth(1) {
            return Some(
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()?
                    .to_string(),
            );
        }
        if let Some(rest) = m.split("Cannot modify '").nth(1) {
            return rest.split('\'').next().map(str::to_string);
        }
        // 18.16: "Cannot override setting (readonly) in readonly mode"
        if let Some(rest) = m.split("setting (").nth(1) {
            return rest.split(')').next().map(str::to_string);
        }
        // A read-only profile that names no setting refuses them all.
        Some(String::new())
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, &self.name) {
            (Some(c), Some(n)) => write!(f, "ClickHouse error {c} ({n}): {}", self.message),
            (Some(c), None) => write!(f, "ClickHouse error {c}: {}", self.message),
            _ if self.status > 0 => write!(
                f,
                "ClickHouse answered HTTP {}: {}",
                self.status, self.message
            ),
            _ => write!(f, "ClickHouse error: {}", self.message),
        }
    }
}

fn cut(s: &str) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(MAX_MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modern_error_body() {
        let e = ServerError::parse(
            404,
            "Code: 60. DB::Exception: Table default.nope does not exist. (UNKNOWN_TABLE) (version 24.8.4.13 (official build))\n",
        );
        assert_eq!(e.code, Some(60));
        assert_eq!(e.name.as_deref(), Some("UNKNOWN_TABLE"));
        assert_eq!(e.message, "Table default.nope does not exist");
        assert!(!e.is_auth_class());
    }

    #[test]
    fn parses_old_error_body() {
        let e = ServerError::parse(
            401,
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user alice, e.what() = DB::Exception\n",
        );
        assert_eq!(e.code, Some(193));
        assert_eq!(e.name, None);
        assert_eq!(e.message, "Wrong password for user alice");
        assert!(e.is_auth_class());
    }

    #[test]
    fn auth_class_covers_codes_statuses_and_scheme_refusals() {
        for code in [192, 193, 194, 497, 516, 519] {
            assert!(
                ServerError {
                    status: 500,
                    code: Some(code),
                    name: None,
                    message: String::new()
                }
                .is_auth_class(),
                "{code}"
            );
        }
        assert!(ServerError::parse(403, "forbidden").is_auth_class());
        // 18.16 answers a Bearer header this way.
        assert!(ServerError::parse(500, "Code: 194, e.displayText() = DB::Exception: No authentication information found: Authorization scheme Bearer").is_auth_class());
        assert!(ServerError::parse(
            500,
            "Code: 1. DB::Exception: Token authentication is not configured. (UNSUPPORTED_METHOD)"
        )
        .is_auth_class());
        for transient in [
            ServerError::parse(
                500,
                "Code: 241, e.displayText() = DB::Exception: Memory limit exceeded",
            ),
            ServerError::parse(502, "Bad Gateway"),
            ServerError::parse(400, "Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)"),
        ] {
            assert!(!transient.is_auth_class(), "{transient}");
        }
    }

    #[test]
    fn refused_setting_is_named() {
        let e = ServerError::parse(500, "Code: 115, e.displayText() = DB::Exception: Unknown setting log_comment, e.what() = DB::Exception");
        assert_eq!(e.refused_setting().as_deref(), Some("log_comment"));
        let e = ServerError::parse(500, "Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. (READONLY)");
        assert_eq!(e.refused_setting().as_deref(), Some("readonly"));
        let e = ServerError::parse(500, "Code: 164, e.displayText() = DB::Exception: Cannot override setting (log_comment) in readonly mode, e.what() = DB::Exception");
        assert_eq!(e.refused_setting().as_deref(), Some("log_comment"));
        assert_eq!(
            ServerError::parse(500, "Code: 60. DB::Exception: x").refused_setting(),
            None
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let e = ServerError::parse(
            500,
            &format!("Code: 1. DB::Exception: {}", "x".repeat(5000)),
        );
        assert_eq!(e.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn unstructured_body_is_kept() {
        let e = ServerError::parse(502, "upstream connect error");
        assert_eq!(
            (e.code, e.message.as_str()),
            (None, "upstream connect error")
        );
        assert_eq!(
            e.to_string(),
            "ClickHouse answered HTTP 502: upstream connect error"
        );
    }
}
