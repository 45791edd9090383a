//! Log-safe and key-safe names for a credential: digests, never the credential itself.
//! One home for every module that has to name a token (the gate, the catalog key, the
//! ClickHouse client's identity class, the transport's cancellation scope).

use ring::digest::{digest, SHA256};

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// A short log-safe token name (first 8 hex digits of its sha256).
pub fn token_fingerprint(raw_bearer: &str) -> String {
    short_fingerprint(&sha256(raw_bearer.as_bytes()))
}

/// The first 8 hex digits of a digest already computed.
pub(crate) fn short_fingerprint(digest: &[u8; 32]) -> String {
    hex(digest.get(..4).unwrap_or_default())
}

/// The full sha256 of `bytes` in hex: an identity key that never collides in practice
/// (a short fingerprint may, and must then only ever name, never decide).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

/// Lower-case hex in a new buffer.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    push_hex(&mut out, bytes);
    out
}

/// Lower-case hex, digit by digit, onto `out`: it runs on hot paths (every ClickHouse
/// request's traceparent, the cancellation scope of every request with a bearer), where
/// a `format!` per byte cost a String each (docs/decisions.md, "The ClickHouse client on
/// hyper-util" and "Hop cost").
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    let digit = |n: u8| char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 });
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0xf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_first_eight_hex_digits_of_the_sha256() {
        // sha256("abc") is a published test vector.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_fingerprint("abc"), "ba7816bf");
    }
}
