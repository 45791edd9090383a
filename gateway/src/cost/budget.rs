//! The settings that make ClickHouse itself stop a query reading past the budget.

use crate::config::EffectiveBudget;

/// The settings a budget (and the workload class) adds to a tool query. ClickHouse
/// checks them while it reads (18.16 already does, and refuses up front when the parts
/// it would read are already past the limit); `throw` makes the stop an error the
/// gateway can explain, never a silently partial answer.
pub fn settings(budget: &EffectiveBudget, workload: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(4);
    if let Some(rows) = budget.max_rows_to_read {
        out.push(("max_rows_to_read", rows.to_string()));
    }
    if let Some(bytes) = budget.max_bytes_to_read {
        out.push(("max_bytes_to_read", bytes.to_string()));
    }
    if budget.is_set() {
        out.push(("read_overflow_mode", "throw".into()));
    }
    if !workload.is_empty() {
        out.push(("workload", workload.to_string()));
    }
    out
}

/// A number as people read it in a message: `1200000` → `1.2M`.
pub fn human(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenth = (n % size) * 10 / size;
            return if whole >= 100 || tenth == 0 {
                format!("{whole}{unit}")
            } else {
                format!("{whole}.{tenth}{unit}")
            };
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EstimateMode;

    #[test]
    fn a_budget_throws_and_the_workload_rides_along() {
        let b = EffectiveBudget {
            max_rows_to_read: Some(1000),
            max_bytes_to_read: None,
            estimate: EstimateMode::Auto,
        };
        assert_eq!(
            settings(&b, "ai"),
            vec![
                ("max_rows_to_read", "1000".to_string()),
                ("read_overflow_mode", "throw".to_string()),
                ("workload", "ai".to_string())
            ]
        );
        assert!(settings(&EffectiveBudget::default(), "").is_empty());
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(human(999), "999");
        assert_eq!(human(1_200_000), "1.2M");
        assert_eq!(human(100_000_000), "100M");
        assert_eq!(human(2_000), "2k");
    }
}
