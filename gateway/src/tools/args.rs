//! Reading a tool's arguments: the schemas are strict, and every refusal names the
//! argument.

use serde_json::{Map, Value};

use super::Entry;

pub(super) fn str_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("argument `{key}` must be a string")),
        None => Err(format!("missing required argument `{key}`")),
    }
}

pub(super) fn opt_str_arg<'a>(
    args: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("argument `{key}` must be a string")),
    }
}

/// Rejects arguments the schema does not declare (the schemas are strict).
pub(super) fn check_known_args(entry: &Entry, args: &Map<String, Value>) -> Result<(), String> {
    let props = entry
        .tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object);
    for k in args.keys() {
        if !props.is_some_and(|p| p.contains_key(k)) {
            return Err(format!(
                "unknown argument `{k}` for tool {}",
                entry.tool.name
            ));
        }
    }
    Ok(())
}
