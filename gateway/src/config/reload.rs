//! What a reload may change while running, and what needs a restart.

use serde_json::Value;

use super::Config;

/// Keys whose new values only take effect after a restart (docs/spec-notes.md, "Reload").
const RESTART_ONLY: [&str; 11] = [
    "server.transport",
    "server.address",
    "server.port",
    // The listener's connection bounds are read once, when it starts.
    "server.header_read_timeout",
    "server.body_read_timeout",
    "server.idle_timeout",
    "server.max_connections",
    // The runtime's threads are started once, with the process.
    "server.worker_threads",
    "multicluster",
    "watch",
    // The exporter is started once, with the process.
    "telemetry",
];

/// `new` with every restart-only key at its running value in `running`: the
/// configuration a reload actually puts into service. Driven by `RESTART_ONLY` itself,
/// so a key added to the list is kept without another line here.
pub fn keep_restart_only(running: &Config, new: Config) -> Config {
    let (old_tree, mut tree) = (to_value(running), to_value(&new));
    for key in RESTART_ONLY {
        let path: Vec<&str> = key.split('.').collect();
        if let Some(v) = get_path(&old_tree, &path) {
            set_path(&mut tree, &path, v.clone());
        }
    }
    serde_json::from_value(tree).unwrap_or(new)
}

fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn set_path(v: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(obj) = cur.as_object_mut() {
        obj.insert((*last).to_string(), value);
    }
}

/// The restart-only keys (dotted paths; a key covers everything below it). Shared with
/// the operator, whose config hash must cover exactly these.
pub fn restart_only_keys() -> &'static [&'static str] {
    &RESTART_ONLY
}

/// The restart-only keys whose values differ between `old` and `new`, by full path.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", &to_value(old), &mut a);
    flatten("", &to_value(new), &mut b);
    let mut changed: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.iter().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(
            b.iter()
                .filter(|(k, _)| !a.iter().any(|(k2, _)| k2 == k))
                .map(|(k, _)| k.clone()),
        )
        .filter(|k| {
            RESTART_ONLY
                .iter()
                .any(|p| k == p || k.starts_with(&format!("{p}.")))
        })
        .collect();
    changed.sort();
    changed.dedup();
    // An empty map that gained entries shows as both `m` and `m.k`; name only the deeper key.
    let deeper = changed.clone();
    changed.retain(|k| !deeper.iter().any(|d| d.starts_with(&format!("{k}."))));
    changed
}

fn to_value(c: &Config) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// Leaf paths of a JSON tree (`a.b.c`), arrays and scalars being leaves.
pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, child, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_restart_only_restores_every_listed_key() {
        let running = Config::default();
        let mut new = Config::default();
        new.server.address = "10.1.2.3".into();
        new.server.port = 9999;
        new.multicluster.enabled = !running.multicluster.enabled;
        new.watch = !running.watch;
        new.clickhouse.max_result_rows = 7;
        assert!(!restart_only_changes(&running, &new).is_empty());
        let kept = keep_restart_only(&running, new);
        assert!(restart_only_changes(&running, &kept).is_empty());
        assert_eq!(
            kept.clickhouse.max_result_rows, 7,
            "reloadable keys take the new value"
        );
    }
    use crate::config::{ClusterOverride, HumanDuration};

    #[test]
    fn limits_reload_but_listener_and_multicluster_do_not() {
        let old = Config::default();
        let mut new = old.clone();
        new.clickhouse.max_result_rows = 10;
        new.server.port = 9000;
        new.server.idle_timeout = HumanDuration::from_secs(5);
        new.multicluster.catalog_negative_ttl = HumanDuration::from_secs(30);
        new.multicluster.clusters.insert(
            "a".into(),
            ClusterOverride {
                host: Some("h".into()),
                port: None,
                ..Default::default()
            },
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            vec![
                "multicluster.catalog_negative_ttl",
                "multicluster.clusters.a.host",
                "server.idle_timeout",
                "server.port"
            ]
        );
    }

    #[test]
    fn identical_configs_have_no_restart_only_changes() {
        assert!(restart_only_changes(&Config::default(), &Config::default()).is_empty());
    }
}
