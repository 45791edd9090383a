//! `clickhouse.query_budget` (and its per-cluster override) and `clickhouse.workload`:
//! what one tool query may make ClickHouse read, and the workload class it runs in.

use serde::{Deserialize, Serialize};

use super::validate::ConfigIssue;
use super::Config;

/// A scan budget. At the gateway level an absent (null) limit means none, and an absent
/// `estimate` means `auto`; in a cluster's override an absent field keeps the gateway's
/// value. Absent fields are written as `null` so that `--set` and `CHMCP_*` know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct QueryBudget {
    /// Rows ClickHouse may read for one query (`max_rows_to_read`).
    pub max_rows_to_read: Option<u64>,
    /// Uncompressed bytes ClickHouse may read for one query (`max_bytes_to_read`).
    pub max_bytes_to_read: Option<u64>,
    /// Pre-flight `EXPLAIN ESTIMATE` where the server has it (default `auto`).
    pub estimate: Option<EstimateMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EstimateMode {
    /// Ask the server's estimate first when it has `EXPLAIN ESTIMATE`.
    #[default]
    Auto,
    /// Only ClickHouse's running limit applies.
    Off,
}

/// The budget one query runs under, after the cluster's override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EffectiveBudget {
    pub max_rows_to_read: Option<u64>,
    pub max_bytes_to_read: Option<u64>,
    pub estimate: EstimateMode,
}

impl EffectiveBudget {
    /// Whether any limit is set (else nothing is sent and nothing is estimated).
    pub fn is_set(&self) -> bool {
        self.max_rows_to_read.is_some() || self.max_bytes_to_read.is_some()
    }
}

impl QueryBudget {
    /// This budget with `over`'s fields where `over` sets them.
    pub fn overridden_by(&self, over: &QueryBudget) -> QueryBudget {
        QueryBudget {
            max_rows_to_read: over.max_rows_to_read.or(self.max_rows_to_read),
            max_bytes_to_read: over.max_bytes_to_read.or(self.max_bytes_to_read),
            estimate: over.estimate.or(self.estimate),
        }
    }

    fn effective(&self) -> EffectiveBudget {
        EffectiveBudget {
            max_rows_to_read: self.max_rows_to_read,
            max_bytes_to_read: self.max_bytes_to_read,
            estimate: self.estimate.unwrap_or_default(),
        }
    }
}

impl Config {
    /// The budget for queries on `cluster` (multi-cluster mode applies its override).
    pub fn query_budget(&self, cluster: &str) -> EffectiveBudget {
        let base = &self.clickhouse.query_budget;
        let over = self
            .multicluster
            .enabled
            .then(|| self.multicluster.clusters.get(cluster))
            .flatten()
            .and_then(|c| c.query_budget.as_ref());
        match over {
            Some(o) => base.overridden_by(o).effective(),
            None => base.effective(),
        }
    }
}

/// Every problem with the budgets and the workload, named by key.
pub(super) fn budget_issues(c: &Config) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    let mut check = |key: String, b: &QueryBudget| {
        for (name, v) in [
            ("max_rows_to_read", b.max_rows_to_read),
            ("max_bytes_to_read", b.max_bytes_to_read),
        ] {
            if v == Some(0) {
                out.push(ConfigIssue::new(
                    format!("{key}.{name}"),
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
        }
    };
    check("clickhouse.query_budget".into(), &c.clickhouse.query_budget);
    for (name, cluster) in &c.multicluster.clusters {
        if let Some(b) = &cluster.query_budget {
            check(format!("multicluster.clusters.{name}.query_budget"), b);
        }
    }
    let w = &c.clickhouse.workload;
    if !w.is_empty()
        && !w
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        out.push(ConfigIssue::new(
            "clickhouse.workload",
            format!("`{w}` is not a workload name (letters, digits, _ and - only)"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterOverride;

    fn budget(rows: Option<u64>, bytes: Option<u64>, e: Option<EstimateMode>) -> QueryBudget {
        QueryBudget {
            max_rows_to_read: rows,
            max_bytes_to_read: bytes,
            estimate: e,
        }
    }

    #[test]
    fn a_cluster_override_replaces_only_the_fields_it_sets() {
        let mut c = Config::default();
        c.clickhouse.query_budget = budget(Some(1000), Some(5000), None);
        c.multicluster.enabled = true;
        c.multicluster.clusters.insert(
            "prod".into(),
            ClusterOverride {
                query_budget: Some(budget(Some(10), None, Some(EstimateMode::Off))),
                ..Default::default()
            },
        );
        let prod = c.query_budget("prod");
        assert_eq!(
            (prod.max_rows_to_read, prod.max_bytes_to_read, prod.estimate),
            (Some(10), Some(5000), EstimateMode::Off)
        );
        let other = c.query_budget("dev");
        assert_eq!(
            (other.max_rows_to_read, other.estimate),
            (Some(1000), EstimateMode::Auto)
        );
        // Overrides are multi-cluster only.
        c.multicluster.enabled = false;
        assert_eq!(c.query_budget("prod").max_rows_to_read, Some(1000));
        assert!(!Config::default().query_budget("x").is_set());
    }

    #[test]
    fn zero_limits_and_odd_workload_names_are_named() {
        let mut c = Config::default();
        c.clickhouse.query_budget = budget(Some(0), None, None);
        c.clickhouse.workload = "ai traffic".into();
        c.multicluster.clusters.insert(
            "b".into(),
            ClusterOverride {
                query_budget: Some(budget(None, Some(0), None)),
                ..Default::default()
            },
        );
        let keys: Vec<String> = budget_issues(&c).into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "clickhouse.query_budget.max_rows_to_read",
                "multicluster.clusters.b.query_budget.max_bytes_to_read",
                "clickhouse.workload"
            ]
        );
        c.clickhouse.query_budget = budget(Some(1), Some(1), None);
        c.clickhouse.workload = "ai_agents".into();
        c.multicluster.clusters.clear();
        assert!(budget_issues(&c).is_empty());
    }

    #[test]
    fn the_yaml_layout_reads() {
        let c: Config = serde_yaml_ng::from_str(
            "clickhouse:\n  workload: ai\n  query_budget: {max_rows_to_read: 100000000, estimate: off}\n",
        )
        .expect("parses");
        assert_eq!(
            c.clickhouse.query_budget.max_rows_to_read,
            Some(100_000_000)
        );
        assert_eq!(c.clickhouse.query_budget.estimate, Some(EstimateMode::Off));
        assert!(
            serde_yaml_ng::from_str::<Config>("clickhouse:\n  query_budget: {max_rows: 1}\n")
                .is_err()
        );
        // Every field has a settable path, even when unset (`--set`, `CHMCP_*`).
        let mut paths = Vec::new();
        crate::config::flatten(
            "",
            &serde_json::to_value(Config::default()).expect("serializes"),
            &mut paths,
        );
        for key in ["max_rows_to_read", "max_bytes_to_read", "estimate"] {
            let path = format!("clickhouse.query_budget.{key}");
            assert!(paths.iter().any(|(p, _)| *p == path), "{path}");
        }
    }
}
