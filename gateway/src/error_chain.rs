//! The text of an error with every error beneath it ("client error (Connect): tcp connect
//! error: Connection refused (os error 111)"): HTTP clients' top lines name no cause. One
//! home for the ClickHouse transport's messages and the doctor's.

/// `e` and its causes joined by ": ", a cause whose text is already there left out
/// (`io::Error` wrapping a TLS error repeats it).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn every_cause_once_in_order() {
        let inner = Layer("Connection refused", None);
        let mid = Layer("tcp connect error", Some(Box::new(inner)));
        let top = Layer("client error (Connect)", Some(Box::new(mid)));
        assert_eq!(
            error_chain(&top),
            "client error (Connect): tcp connect error: Connection refused"
        );
        let repeat = Layer(
            "invalid peer certificate: UnknownIssuer",
            Some(Box::new(Layer(
                "invalid peer certificate: UnknownIssuer",
                None,
            ))),
        );
        assert_eq!(
            error_chain(&repeat),
            "invalid peer certificate: UnknownIssuer"
        );
    }
}
