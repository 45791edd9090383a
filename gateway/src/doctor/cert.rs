//! The validity period of an X.509 certificate (RFC 5280 §4.1.2.5), read from its DER
//! with a reader of just the fields in front of it. Why not an x509 crate: see
//! docs/decisions.md ("The doctor reads notAfter itself").

/// `notBefore` and `notAfter`, as Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION_TAG: u8 = 0xa0; // [0] EXPLICIT, constructed
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER tag-length-value: (tag, contents, what follows). Only single-byte tags, which
/// is all a certificate uses up to its validity field.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits count the length bytes (at most 4 here: 4 GiB).
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, contents, rest) = tlv(input)?;
    (tag == want).then_some((contents, rest))
}

/// The validity of a DER certificate, or `None` when the bytes are not one.
pub fn validity(der: &[u8]) -> Option<Validity> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if let Some((VERSION_TAG, _, after)) = tlv(rest) {
        rest = after;
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_signature_algorithm, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, _) = expect(rest, SEQUENCE)?;
    let (t1, c1, rest) = tlv(validity)?;
    let (t2, c2, _) = tlv(rest)?;
    Some(Validity {
        not_before: time(t1, c1)?,
        not_after: time(t2, c2)?,
    })
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049, RFC 5280) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, as Unix seconds.
fn time(tag: u8, contents: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(contents).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match tag {
        UTC_TIME if digits.len() == 12 => {
            let (yy, rest) = digits.split_at_checked(2)?;
            let yy: i64 = yy.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
        }
        GENERALIZED_TIME if digits.len() == 14 => {
            let (yyyy, rest) = digits.split_at_checked(4)?;
            (yyyy.parse().ok()?, rest)
        }
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(unix_seconds(year, month, day, hour, minute, second))
}

/// Seconds since 1970-01-01T00:00:00Z of a proleptic Gregorian UTC date and time
/// (days counted in 400-year eras, which repeat exactly).
pub fn unix_seconds(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0, so the leap day ends the year
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate made once with `openssl req -x509 -newkey ec -pkeyopt
    /// ec_paramgen_curve:P-256 -nodes -subj /CN=doctor.test -days 10000 -outform DER`
    /// (`openssl x509 -dates`: Dec 2 00:30:02 2026 GMT, Apr 19 00:30:02 2054 GMT): notBefore
    /// is a UTCTime, notAfter (after 2049) a GeneralizedTime, as RFC 5280 requires.
    const CERT_B64: &str = include_str!("testdata/cert.der.b64");

    fn cert() -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(CERT_B64.split_whitespace().collect::<String>())
            .unwrap()
    }

    #[test]
    fn reads_both_time_forms_of_a_real_certificate() {
        let v = validity(&cert()).unwrap();
        assert_eq!(v.not_before, unix_seconds(2026, 12, 2, 0, 30, 2));
        assert_eq!(v.not_after, unix_seconds(2054, 4, 19, 0, 30, 2));
    }

    #[test]
    fn unix_seconds_matches_known_instants() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2024, 2, 29, 12, 0, 0), 1_709_208_000);
        assert_eq!(unix_seconds(1994, 11, 6, 8, 49, 37), 784_111_777);
    }

    #[test]
    fn utctime_years_fold_at_1950() {
        assert_eq!(
            time(UTC_TIME, b"491231235959Z"),
            Some(unix_seconds(2049, 12, 31, 23, 59, 59))
        );
        assert_eq!(
            time(UTC_TIME, b"500101000000Z"),
            Some(unix_seconds(1950, 1, 1, 0, 0, 0))
        );
        assert_eq!(time(UTC_TIME, b"5001010000Z"), None);
        assert_eq!(time(UTC_TIME, b"501301000000Z"), None);
        assert_eq!(time(GENERALIZED_TIME, b"20500101000000+0100"), None);
    }

    #[test]
    fn every_truncation_of_a_certificate_is_none_not_a_panic() {
        let der = cert();
        for n in 0..der.len() {
            // The validity field ends early in the certificate; beyond it, prefixes are
            // still unreadable because the outer lengths no longer fit.
            assert_eq!(validity(&der[..n]), None, "prefix of {n} bytes");
        }
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x80]), None);
    }
}
