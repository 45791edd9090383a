//! Reading the configuration: file, then environment, then flags; strictly.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{reload::flatten, validate, Config, ConfigIssue, Secret, Warning};

/// Where configuration comes from, in increasing precedence.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub file: Option<PathBuf>,
    /// Environment variables (all of them; only `CHMCP_*` are read).
    pub env: Vec<(String, String)>,
    /// `--set key.path=value` flags, already split at the first `=`.
    pub overrides: Vec<(String, String)>,
}

impl LoadOptions {
    pub fn from_process_env(file: Option<PathBuf>, overrides: Vec<(String, String)>) -> Self {
        Self {
            file,
            env: std::env::vars().collect(),
            overrides,
        }
    }
}

#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not valid YAML: {message}")]
    Syntax { origin: String, message: String },
    #[error("{key}: unknown key{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{key}: cannot read {path}: {source}")]
    SecretFile {
        key: String,
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration:\n  {}", super::join_issues(.0, "\n  "))]
    Rejected(Vec<ConfigIssue>),
}

/// Name of the environment variable that may carry the config file path.
pub const CONFIG_ENV: &str = "CHMCP_CONFIG";
const ENV_PREFIX: &str = "CHMCP_";

pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut tree = match &opts.file {
        Some(path) => read_file(path)?,
        None => Value::Object(Map::new()),
    };
    let known = known_paths();
    for (name, raw) in &opts.env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if name == CONFIG_ENV {
            continue;
        }
        let Some((path, default)) = known.iter().find(|(p, _)| env_name(p) == rest) else {
            let names: Vec<String> = known
                .iter()
                .map(|(p, _)| format!("{ENV_PREFIX}{}", env_name(p)))
                .collect();
            return Err(ConfigError::UnknownKey {
                key: name.clone(),
                suggestion: closest(name, names.iter().map(String::as_str)),
            });
        };
        set_path(
            &mut tree,
            &path.split('.').collect::<Vec<_>>(),
            typed(raw, default, name)?,
        );
    }
    for (key, raw) in &opts.overrides {
        let parts: Vec<&str> = key.split('.').collect();
        // A key is known when it is a leaf, or lies inside a map-valued leaf (headers, clusters).
        let default = known.iter().find(|(p, _)| {
            p == key
                || (key.starts_with(&format!("{p}."))
                    && matches!(known_default(p), Some(Value::Object(_))))
        });
        let Some((path, default)) = default else {
            return Err(ConfigError::UnknownKey {
                key: key.clone(),
                suggestion: closest(key, known.iter().map(|(p, _)| p.as_str())),
            });
        };
        let default = if path == key {
            default.clone()
        } else {
            Value::String(String::new())
        };
        set_path(&mut tree, &parts, typed(raw, &default, key)?);
    }
    let mut config = parse_tree(tree)?;
    resolve_secret_files(&mut config)?;
    let warnings = validate(&config).map_err(ConfigError::Rejected)?;
    Ok(Loaded { config, warnings })
}

/// Parses one YAML document strictly (no environment, no validation). Used by the
/// operator's tests to read back what it rendered.
pub fn parse_document(text: &str) -> Result<Config, ConfigError> {
    parse_tree(parse_yaml(text, "config")?)
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_yaml(&text, &path.display().to_string())
}

fn parse_yaml(text: &str, origin: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    match v {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(v),
        _ => Err(ConfigError::Syntax {
            origin: origin.to_string(),
            message: "the top level must be a mapping".into(),
        }),
    }
}

fn parse_tree(tree: Value) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize::<_, Config>(tree).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if let Some((field, expected)) = unknown_field(&message) {
            let parent = path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
            let parent = if path.ends_with(&field) {
                parent
            } else {
                path.as_str()
            };
            let key = if parent.is_empty() || parent == "." {
                field.clone()
            } else {
                format!("{parent}.{field}")
            };
            return ConfigError::UnknownKey {
                key,
                suggestion: closest(&field, expected.iter().map(String::as_str)),
            };
        }
        ConfigError::Invalid { key: path, message }
    })
}

/// serde's "unknown field `x`, expected one of `a`, `b`" → (x, [a, b]). Searched for, not
/// matched at the start: serde_yaml_ng (the verifier's parser) wraps it in a path prefix
/// and a position suffix.
pub(crate) fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    const MARK: &str = "unknown field `";
    let (_, rest) = message.split_once(MARK)?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

fn resolve_secret_files(c: &mut Config) -> Result<(), ConfigError> {
    let read = |key: &str, path: &str| -> Result<Secret, ConfigError> {
        std::fs::read_to_string(path)
            .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
            .map_err(|source| ConfigError::SecretFile {
                key: key.into(),
                path: path.into(),
                source,
            })
    };
    if !c.clickhouse.password_file.is_empty() && !c.clickhouse.password.is_empty() {
        return Err(ConfigError::Invalid {
            key: "clickhouse.password_file".into(),
            message: "set either password or password_file, not both".into(),
        });
    }
    if !c.clickhouse.password_file.is_empty() {
        c.clickhouse.password = read("clickhouse.password_file", &c.clickhouse.password_file)?;
    }
    let o = &mut c.server.oauth;
    if !o.client_secret_file.is_empty() {
        o.client_secret = read("server.oauth.client_secret_file", &o.client_secret_file)?;
    }
    if !o.signing_secret_file.is_empty() {
        o.signing_secret = read("server.oauth.signing_secret_file", &o.signing_secret_file)?;
    }
    Ok(())
}

/// Every settable key path with its default value.
fn known_paths() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    flatten(
        "",
        &serde_json::to_value(Config::default()).unwrap_or(Value::Null),
        &mut out,
    );
    out
}

fn known_default(path: &str) -> Option<Value> {
    known_paths()
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v)
}

fn env_name(path: &str) -> String {
    path.replace('.', "_").to_ascii_uppercase()
}

/// Environment and flag values are strings; give them the type the key expects.
fn typed(raw: &str, default: &Value, key: &str) -> Result<Value, ConfigError> {
    if default.is_string() {
        return Ok(Value::String(raw.to_string()));
    }
    serde_yaml_ng::from_str(raw).map_err(|e| ConfigError::Invalid {
        key: key.to_string(),
        message: format!("cannot parse `{raw}`: {e}"),
    })
}

fn set_path(tree: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for part in parents {
        let Value::Object(m) = node else {
            return;
        };
        let child = m
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child;
    }
    if let Value::Object(m) = node {
        m.insert((*last).to_string(), value);
    }
}

/// The candidate closest to `word` by edit distance, when it is close enough to help.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let word_l = word.to_ascii_lowercase();
    candidates
        .map(|c| (levenshtein(&word_l, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        // Per column: `diag` = prev[j], `up` = prev[j + 1], `left` = cur[j].
        for ((cb, diag), up) in b.iter().zip(&prev).zip(prev.iter().skip(1)) {
            let left = cur.last().copied().unwrap_or(i + 1);
            cur.push((diag + usize::from(ca != *cb)).min(up + 1).min(left + 1));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(
        text: &str,
        env: &[(&str, &str)],
        sets: &[(&str, &str)],
    ) -> Result<Loaded, ConfigError> {
        let dir = std::env::temp_dir().join(format!("chmcp-cfg-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, text).unwrap();
        let r = load(&LoadOptions {
            file: Some(file),
            env: env
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            overrides: sets
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        });
        std::fs::remove_dir_all(dir).ok();
        r
    }

    #[test]
    fn misspelt_key_is_named_with_a_suggestion() {
        let err = load_text("clickhouse:\n  hots: x\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "clickhouse.hots: unknown key (did you mean `host`?)");
        let err = load_text("sever:\n  port: 1\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "sever: unknown key (did you mean `server`?)");
        let err = load_text(
            "server:\n  tools:\n  - type: read\n    view_regex: x\n",
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "server.tools[0].view_regex: unknown key (did you mean `view_regexp`?)"
            ),
            "{err}"
        );
    }

    #[test]
    fn flags_override_env_which_overrides_file() {
        let text = "clickhouse:\n  port: 1000\n  max_result_rows: 1\n  database: file\n";
        let l = load_text(
            text,
            &[
                ("CHMCP_CLICKHOUSE_PORT", "2000"),
                ("CHMCP_CLICKHOUSE_MAX_RESULT_ROWS", "2"),
                ("HOME", "/x"),
            ],
            &[("clickhouse.port", "3000")],
        )
        .unwrap();
        assert_eq!(l.config.clickhouse.port, 3000);
        assert_eq!(l.config.clickhouse.max_result_rows, 2);
        assert_eq!(l.config.clickhouse.database, "file");
    }

    #[test]
    fn string_keys_keep_env_text_verbatim() {
        let l = load_text(
            "",
            &[
                ("CHMCP_CLICKHOUSE_PASSWORD", "123"),
                ("CHMCP_SERVER_OAUTH_SIGNING_SECRET", "true"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(l.config.clickhouse.password.expose(), "123");
        assert_eq!(l.config.server.oauth.signing_secret.expose(), "true");
    }

    #[test]
    fn unknown_env_var_is_an_error_with_suggestion() {
        let err = load_text("", &[("CHMCP_CLICKHOUSE_PASWORD", "x")], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "CHMCP_CLICKHOUSE_PASWORD: unknown key (did you mean `CHMCP_CLICKHOUSE_PASSWORD`?)"
        );
    }

    #[test]
    fn map_keys_can_be_set_by_flag() {
        let l = load_text("", &[], &[("clickhouse.http_headers.X-Team", "data")]).unwrap();
        assert_eq!(l.config.clickhouse.http_headers["X-Team"], "data");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load_text("clickhouse:\n  port: lots\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("clickhouse.port: invalid type"), "{err}");
        let err = load_text("server:\n  transport: htp\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("server.transport: unknown variant `htp`"),
            "{err}"
        );
        let err = load_text("server:\n  oauth:\n    token_mode: opaque\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("server.oauth.token_mode: unknown variant `opaque`"),
            "{err}"
        );
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("chmcp-sec-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let l = load_text(
            &format!("clickhouse:\n  password_file: {}\n", f.display()),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(l.config.clickhouse.password.expose(), "s3cret");
        let err = load_text("clickhouse:\n  password_file: /nonexistent/pw\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("clickhouse.password_file: cannot read /nonexistent/pw"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn validation_errors_are_all_listed() {
        let err = load_text(
            "clickhouse:\n  port: 0\n  max_execution_time: 0\n",
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("clickhouse.port") && err.contains("clickhouse.max_execution_time"),
            "{err}"
        );
    }

    #[test]
    fn telemetry_keys_are_strict_validated_and_their_headers_redacted() {
        let err = load_text(
            "telemetry:\n  otlp:\n    endpont: http://c:4318\n",
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "telemetry.otlp.endpont: unknown key (did you mean `endpoint`?)"
        );
        let err = load_text(
            "telemetry:\n  otlp:\n    endpoint: c:4318\n    sample_ratio: 1.5\n    headers: {\"bad header\": k3y-value}\n",
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("telemetry.otlp.endpoint: must be an http(s) URL"),
            "{err}"
        );
        assert!(
            err.contains("telemetry.otlp.sample_ratio: 1.5 is outside 0 to 1"),
            "{err}"
        );
        assert!(err.contains("telemetry.otlp.headers.bad header"), "{err}");
        assert!(
            !err.contains("k3y-value"),
            "a header value is a secret: {err}"
        );
        let ok = load_text(
            "telemetry:\n  otlp:\n    endpoint: http://c:4318\n    headers: {x-api-key: k3y-value}\n",
            &[],
            &[],
        )
        .expect("valid");
        let otlp = ok.config.telemetry.otlp.clone().expect("otlp set");
        assert_eq!(
            (otlp.sample_ratio, otlp.service_name.as_str()),
            (1.0, "chmcp-gateway")
        );
        let printed = format!(
            "{:?} {}",
            ok.config,
            serde_yaml_ng::to_string(&ok.config.redacted()).unwrap_or_default()
        );
        assert!(!printed.contains("k3y-value"), "{printed}");
    }
}
