//! One checklist line and the rendering of the whole list, for people (✔/✘) and for
//! machines (`--json`, stable field names: `id`, `ok`, `level`, `detail`, `cause`, `fix`).

use serde::Serialize;
use serde_json::json;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Pass,
    /// Works for the named clients, with a caveat worth fixing; does not fail the run.
    Warn,
    Fail,
    /// Does not apply here (TLS on an http URL).
    Skip,
    /// Could not be checked because an earlier link is broken; fails the run.
    Blocked,
}

impl Level {
    /// What `ok` means in the JSON and for the exit code.
    pub fn ok(self) -> bool {
        matches!(self, Level::Pass | Level::Warn | Level::Skip)
    }

    fn mark(self) -> &'static str {
        match self {
            Level::Pass => "✔",
            Level::Warn => "!",
            Level::Fail => "✘",
            Level::Skip | Level::Blocked => "–",
        }
    }
}

/// One checklist line. `cause` and `fix` are set whenever the level is not `Pass`/`Skip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub id: &'static str,
    pub level: Level,
    pub detail: String,
    pub cause: Option<String>,
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(id: &'static str, detail: impl Into<String>) -> Self {
        Self {
            id,
            level: Level::Pass,
            detail: detail.into(),
            cause: None,
            fix: None,
        }
    }

    pub fn skip(id: &'static str, detail: impl Into<String>) -> Self {
        Self {
            level: Level::Skip,
            ..Self::pass(id, detail)
        }
    }

    pub fn fail(
        id: &'static str,
        detail: impl Into<String>,
        cause: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            id,
            level: Level::Fail,
            detail: detail.into(),
            cause: Some(cause.into()),
            fix: Some(fix.into()),
        }
    }

    /// The same finding, cause and fix, as a warning: worth fixing, but the clients still
    /// get through, so the run does not fail on it.
    pub fn warning(self) -> Self {
        self.with_level(Level::Warn)
    }

    /// A check that depends on `needs`, which failed.
    pub fn blocked(id: &'static str, needs: &str) -> Self {
        Self::fail(
            id,
            format!("not checked: needs {needs}"),
            format!("it needs {needs}, which failed above"),
            "fix the first ✘ above and run the doctor again",
        )
        .with_level(Level::Blocked)
    }

    fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

/// The whole run: the URL as pasted and every check in the order the clients walk them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub url: String,
    pub checks: Vec<Check>,
    /// Lines `--login` printed after the checks (authorization URL, tool count).
    pub notes: Vec<String>,
}

impl Report {
    /// True when nothing failed: the process exits 0 only then.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.level.ok())
    }

    fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }

    pub fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut out = format!("chmcp-gateway doctor {}\n", self.url);
        for c in &self.checks {
            out.push_str(&format!(
                "{} {:<width$}  {}\n",
                c.level.mark(),
                c.id,
                c.detail
            ));
            // A blocked line's cause and fix are the first ✘'s: said once, there.
            if c.level == Level::Blocked {
                continue;
            }
            if let Some(cause) = &c.cause {
                out.push_str(&format!("  {:<width$}  cause: {cause}\n", ""));
            }
            if let Some(fix) = &c.fix {
                out.push_str(&format!("  {:<width$}  fix:   {fix}\n", ""));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("{n}\n"));
        }
        let failed = self.count(Level::Fail);
        let blocked = self.count(Level::Blocked);
        out.push_str(&format!(
            "{} passed, {} warning(s), {failed} failed{}{}\n",
            self.count(Level::Pass),
            self.count(Level::Warn),
            if blocked == 0 {
                String::new()
            } else {
                format!(", {blocked} not checked")
            },
            if failed + blocked == 0 {
                ": a client should connect"
            } else {
                ": fix the first ✘ first, the later ones often follow from it"
            }
        ));
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "url": self.url,
            "ok": self.ok(),
            "checks": self.checks.iter().map(|c| json!({
                "id": c.id,
                "ok": c.level.ok(),
                "level": c.level,
                "detail": c.detail,
                "cause": c.cause,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            url: "https://mcp.example.com/mcp".into(),
            checks,
            notes: vec![],
        }
    }

    #[test]
    fn warnings_and_skips_pass_the_run_but_failures_and_blocked_checks_do_not() {
        assert!(report(vec![
            Check::pass("a", "x"),
            Check::fail("b", "x", "c", "f").warning(),
            Check::skip("tls", "http")
        ])
        .ok());
        assert!(!report(vec![Check::pass("a", "x"), Check::fail("b", "x", "c", "f")]).ok());
        assert!(!report(vec![Check::blocked("pkce", "the metadata")]).ok());
    }

    #[test]
    fn text_shows_cause_and_fix_under_each_failed_line() {
        let text = report(vec![
            Check::pass("challenge", "401"),
            Check::fail("pkce", "no S256", "the cause", "the fix"),
        ])
        .to_text();
        assert!(text.contains("✔ challenge  401"), "{text}");
        assert!(text.contains("✘ pkce       no S256"), "{text}");
        assert!(text.contains("cause: the cause"), "{text}");
        assert!(text.contains("fix:   the fix"), "{text}");
        assert!(text.contains("1 passed, 0 warning(s), 1 failed"), "{text}");
        let blocked = report(vec![Check::blocked("pkce", "the metadata")]).to_text();
        assert!(
            blocked.contains("– pkce  not checked: needs the metadata\n"),
            "{blocked}"
        );
        assert!(!blocked.contains("cause:"), "{blocked}");
        assert!(
            blocked.contains("0 passed, 0 warning(s), 0 failed, 1 not checked"),
            "{blocked}"
        );
    }

    #[test]
    fn json_has_the_stable_field_names() {
        let j = report(vec![Check::fail("pkce", "d", "c", "f")]).to_json();
        assert_eq!(j["ok"], false);
        let c = &j["checks"][0];
        assert_eq!(c["id"], "pkce");
        assert_eq!(c["ok"], false);
        assert_eq!(c["level"], "fail");
        assert_eq!(c["detail"], "d");
        assert_eq!(c["cause"], "c");
        assert_eq!(c["fix"], "f");
        let p = report(vec![Check::pass("a", "d")]).to_json();
        assert_eq!(p["checks"][0]["cause"], serde_json::Value::Null);
    }
}
