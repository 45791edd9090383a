//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1): challenges are a scheme followed by
//! `name=value` parameters, the value a token or a quoted-string. Walked by characters,
//! so no header a server sends can make it slice a string in the middle of a character.

use std::collections::BTreeMap;

/// One challenge: its scheme (as sent) and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Every challenge in one header value. Malformed parts are skipped, not fatal: the
/// judge then reports what is missing.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut chars = header.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| is_tchar(*c) || *c == '/') {
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            // Not a token: skip one character (or stop at the end).
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                // A token, or the `=` padding of a token68 (`Basic abc==`).
                while let Some(c) = chars.peek().copied().filter(|c| is_tchar(*c) || *c == '=') {
                    value.push(c);
                    chars.next();
                }
            }
            if let Some(current) = out.last_mut() {
                current.params.insert(name.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: name,
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// The first `Bearer` challenge (scheme names are case-insensitive).
pub fn bearer(header: &str) -> Option<Challenge> {
    parse(header)
        .into_iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gateway_challenge_with_escapes() {
        let c = bearer(r#"Bearer error="invalid_token", error_description="No \"token\", sign in", resource_metadata="https://gw.example.net/mcp/.well-known/oauth-protected-resource", scope="openid email""#).unwrap();
        assert_eq!(c.param("error"), Some("invalid_token"));
        assert_eq!(c.param("error_description"), Some(r#"No "token", sign in"#));
        assert_eq!(
            c.param("resource_metadata"),
            Some("https://gw.example.net/mcp/.well-known/oauth-protected-resource")
        );
        assert_eq!(c.param("scope"), Some("openid email"));
    }

    #[test]
    fn finds_bearer_among_several_challenges_in_any_case() {
        let all = parse(r#"Basic realm="x", BEARER realm=api, resource_metadata="u""#);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].param("realm"), Some("x"));
        let b = bearer(r#"Basic realm="x", BEARER realm=api, resource_metadata="u""#).unwrap();
        assert_eq!(b.param("realm"), Some("api"));
        assert_eq!(b.param("resource_metadata"), Some("u"));
    }

    #[test]
    fn no_bearer_and_garbage_are_none_not_a_panic() {
        assert_eq!(bearer(r#"Basic realm="x""#), None);
        assert_eq!(bearer(""), None);
        assert_eq!(bearer("=,\"\u{e9}\\"), None);
        assert_eq!(bearer("Bearer").unwrap().params.len(), 0);
        // An unterminated quoted string ends at the end of the header.
        assert_eq!(
            bearer(r#"Bearer realm="abc"#).unwrap().param("realm"),
            Some("abc")
        );
    }
}
