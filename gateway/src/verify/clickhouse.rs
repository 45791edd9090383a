//! The ClickHouse side of the contract: the `http_authentication_servers` fragment that
//! points ClickHouse at this verifier, and the `CREATE USER` that uses it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The server name ClickHouse users are created with (`... HTTP SERVER 'chmcp_verify'`).
pub const SERVER_NAME: &str = "chmcp_verify";

/// The URI ClickHouse should call: a wildcard listen address is not dialable, so it
/// becomes loopback (the verifier runs beside ClickHouse).
pub fn verify_uri(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    // SocketAddr's Display brackets IPv6 hosts, as a URI needs.
    format!("http://{}/verify", SocketAddr::new(host, listen.port()))
}

/// The fragment for ClickHouse's `config.d/`, with the matching `CREATE USER` as a comment.
pub fn fragment(listen: SocketAddr) -> String {
    fragment_for_uri(&verify_uri(listen))
}

/// [`fragment`] for a verifier ClickHouse reaches at `uri` (e.g. a Kubernetes Service
/// in front of it rather than a sidecar on loopback).
pub fn fragment_for_uri(uri: &str) -> String {
    format!(
        r#"<!-- chmcp verifier: ClickHouse asks it whether a user's password (their JWT) is valid.
     Put this file in config.d/, then create each user with:
       CREATE USER `alice@example.com` IDENTIFIED WITH http SERVER '{SERVER_NAME}' SCHEME 'BASIC';
     (the user name must equal the token's username claim, email by default). -->
<clickhouse>
    <http_authentication_servers>
        <{SERVER_NAME}>
            <uri>{uri}</uri>
            <connection_timeout_ms>1000</connection_timeout_ms>
            <receive_timeout_ms>5000</receive_timeout_ms>
            <send_timeout_ms>1000</send_timeout_ms>
            <max_tries>3</max_tries>
            <retry_initial_backoff_ms>50</retry_initial_backoff_ms>
            <retry_max_backoff_ms>1000</retry_max_backoff_ms>
        </{SERVER_NAME}>
    </http_authentication_servers>
</clickhouse>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_becomes_loopback_in_the_uri() {
        assert_eq!(
            verify_uri("0.0.0.0:9999".parse().unwrap()),
            "http://127.0.0.1:9999/verify"
        );
        assert_eq!(
            verify_uri("[::]:9999".parse().unwrap()),
            "http://[::1]:9999/verify"
        );
        assert_eq!(
            verify_uri("10.1.2.3:8000".parse().unwrap()),
            "http://10.1.2.3:8000/verify"
        );
    }

    #[test]
    fn fragment_names_the_server_and_the_create_user_line() {
        let f = fragment("0.0.0.0:9999".parse().unwrap());
        assert!(f.contains("<http_authentication_servers>\n        <chmcp_verify>\n            <uri>http://127.0.0.1:9999/verify</uri>"), "{f}");
        assert!(
            f.contains("IDENTIFIED WITH http SERVER 'chmcp_verify' SCHEME 'BASIC'"),
            "{f}"
        );
        assert!(f.trim_end().ends_with("</clickhouse>"));
    }
}
