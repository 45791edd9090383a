//! What a query may cost and what it did cost (gateway.md, "Cost: budgets, estimates,
//! progress"): the scan budget sent as ClickHouse settings, the refusal that teaches how
//! to read less, the pre-flight `EXPLAIN ESTIMATE`, and progress relayed to the caller
//! while it runs. What a query read is ClickHouse's report (`clickhouse::stats`).
//!
//! Pure: [`budget`], [`refusal`], [`estimate`], [`tables`], and the
//! notification shape in [`progress`], the per-endpoint memory in [`preflight`]. The
//! queries (the estimate, the tables' keys) are in `tools::budget`; the progress poller here.

pub mod budget;
pub mod estimate;
pub mod preflight;
pub mod progress;
pub mod refusal;
pub mod tables;

pub use preflight::ServerAbilities;
