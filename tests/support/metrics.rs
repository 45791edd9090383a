//! A `/metrics` page read by series. Asking for a series the page does not have fails
//! the test with the names it does have: a misspelt name or label must not read as 0
//! and let an assertion like "no probe happened" pass by accident.

use std::collections::BTreeSet;

/// The `Accept` header that asks for OpenMetrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// One scraped page (OpenMetrics text, as `prometheus-client` renders it).
pub struct Metrics {
    page: String,
}

/// One sample line: its series name, its labels in order, its value.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Metrics {
    pub fn parse(page: impl Into<String>) -> Self {
        Self { page: page.into() }
    }

    /// `GET {base}/metrics` of a running process (the gateway or the verifier).
    pub async fn scrape(base: &str) -> Self {
        // OpenMetrics, as Prometheus asks (without it the gateway answers the classic format).
        let r = reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .header("accept", OPENMETRICS)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {base}/metrics: {e}"));
        assert_eq!(r.status().as_u16(), 200, "GET {base}/metrics");
        Self::parse(r.text().await.unwrap_or_default())
    }

    pub fn page(&self) -> &str {
        &self.page
    }

    /// The value of series `name` (`chmcp_x_total`, `…_count`) summed over the samples
    /// that carry every one of `labels`; labels not named are summed over. A family that
    /// exists with no sample for these labels reads 0 (a counter not yet incremented).
    /// Panics when the page has no such series or family, or when no sample of it
    /// carries one of the label names asked for.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let samples: Vec<Sample<'_>> = self.samples().filter(|s| s.name == name).collect();
        if samples.is_empty() && !self.families().contains(family_of(name)) {
            panic!(
                "no series `{name}` on the metrics page; its series are:\n  {}",
                self.series_names()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            );
        }
        for (key, _) in labels {
            let known = samples
                .iter()
                .any(|s| s.labels.iter().any(|(k, _)| k == key));
            assert!(
                samples.is_empty() || known,
                "no sample of `{name}` has a label `{key}`; its samples:\n{}",
                self.lines_of(name).join("\n")
            );
        }
        samples
            .iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// `value` for counters, which are whole numbers.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.value(name, labels) as u64
    }

    /// Every sample line of series `name`, as printed.
    pub fn lines_of(&self, name: &str) -> Vec<String> {
        self.page
            .lines()
            .filter(|l| sample_name(l) == Some(name))
            .map(str::to_string)
            .collect()
    }

    fn samples(&self) -> impl Iterator<Item = Sample<'_>> {
        self.page.lines().filter_map(parse_sample)
    }

    /// Family names from `# TYPE <family> <kind>` lines.
    fn families(&self) -> BTreeSet<&str> {
        self.page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect()
    }

    fn series_names(&self) -> BTreeSet<&str> {
        self.page.lines().filter_map(sample_name).collect()
    }
}

/// The family a series belongs to: OpenMetrics suffixes a counter's samples with
/// `_total` and a histogram's with `_count`/`_sum`/`_bucket`.
fn family_of(series: &str) -> &str {
    ["_total", "_count", "_sum", "_bucket", "_created"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .unwrap_or(series)
}

fn sample_name(line: &str) -> Option<&str> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    line.split(['{', ' ']).next()
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name = sample_name(line)?;
    let rest = &line[name.len()..];
    let (labels, after) = match rest.strip_prefix('{') {
        Some(inner) => parse_labels(inner)?,
        None => (Vec::new(), rest),
    };
    let value = after.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `k="v",k2="v2"} rest` → the pairs (escapes `\"`, `\\`, `\n` undone) and `rest`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP chmcp_tool_calls Tool calls.\n# TYPE chmcp_tool_calls counter\nchmcp_tool_calls_total{tool=\"execute_query\",outcome=\"ok\"} 2\nchmcp_tool_calls_total{tool=\"list_tables\",outcome=\"ok\"} 1\n# TYPE chmcp_probes counter\n# TYPE chmcp_up gauge\nchmcp_up{note=\"a \\\"b\\\", c\"} 1.5\n# EOF\n";

    #[test]
    fn labels_named_select_and_the_rest_are_summed() {
        let m = Metrics::parse(PAGE);
        assert_eq!(
            m.count(
                "chmcp_tool_calls_total",
                &[("tool", "execute_query"), ("outcome", "ok")]
            ),
            2
        );
        assert_eq!(m.count("chmcp_tool_calls_total", &[("outcome", "ok")]), 3);
        assert_eq!(m.count("chmcp_tool_calls_total", &[("tool", "x")]), 0);
        assert_eq!(m.value("chmcp_up", &[("note", "a \"b\", c")]), 1.5);
    }

    #[test]
    fn a_family_with_no_samples_yet_reads_zero() {
        assert_eq!(
            Metrics::parse(PAGE).count("chmcp_probes_total", &[("outcome", "ok")]),
            0
        );
    }

    #[test]
    #[should_panic(expected = "chmcp_tool_calls_total")]
    fn a_misspelt_series_fails_and_lists_the_real_ones() {
        Metrics::parse(PAGE).count("chmcp_tool_call_total", &[]);
    }

    #[test]
    #[should_panic(expected = "has a label `tol`")]
    fn a_misspelt_label_fails() {
        Metrics::parse(PAGE).count("chmcp_tool_calls_total", &[("tol", "execute_query")]);
    }
}
