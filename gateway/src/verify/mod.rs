//! The ClickHouse-side token verifier (`chmcp-gateway verify`). See oauth.md.

/// Flags of `chmcp-gateway verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Verifier configuration file (YAML).
    #[arg(long, short = 'c')]
    pub config: Option<std::path::PathBuf>,
    /// Print the ClickHouse `http_authentication_servers` fragment and exit.
    #[arg(long)]
    pub print_clickhouse_config: bool,
}

pub fn main(_args: VerifyArgs) -> anyhow::Result<()> {
    anyhow::bail!("the verifier is not built yet")
}
