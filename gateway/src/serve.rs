//! `chmcp-gateway serve`: wires configuration, telemetry and transports together.

use crate::config::LoadOptions;

pub fn main(opts: LoadOptions) -> anyhow::Result<()> {
    let loaded = crate::config::load(&opts)?;
    let _ = loaded;
    anyhow::bail!("serve is not built yet")
}
