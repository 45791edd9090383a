//! Cluster names in `/mcp/{cluster}` and where each cluster's ClickHouse lives.

/// RFC 1123 label: `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`.
pub fn is_valid_cluster_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && ok(&b[0])
        && ok(&b[b.len() - 1])
        && b.iter().all(|c| ok(c) || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_rfc1123_labels() {
        for good in ["a", "otel", "a-b", "0", "x".repeat(63).as_str()] {
            assert!(is_valid_cluster_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "x".repeat(64).as_str(),
            "é",
        ] {
            assert!(!is_valid_cluster_name(bad), "{bad}");
        }
    }
}
