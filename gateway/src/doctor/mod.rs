//! `chmcp-gateway doctor URL`: walks the sign-in chain the way claude.ai, ChatGPT and
//! Claude Code do, from the outside and with no configuration, and prints a checklist
//! whose every ✘ names the cause and the fix. Nothing in it assumes the server is chmcp.
//!
//! - `judge`: the checks, pure (an answer in, a [`report::Check`] out);
//! - `walk`: the requests, in the clients' order;
//! - `challenge`, `cert`: parsers for `WWW-Authenticate` and a certificate's validity;
//! - `login`: `--login`, the full authorization-code flow on a loopback redirect;
//! - `report`: the checklist, as text or JSON.

pub mod cert;
pub mod challenge;
pub mod judge;
pub mod login;
pub mod report;
mod walk;

pub use walk::checks_after_challenge;

/// `doctor` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The MCP URL exactly as pasted into the client (a trailing slash matters).
    pub url: String,
    /// Print the checklist as JSON (fields: id, ok, level, detail, cause, fix).
    #[arg(long)]
    pub json: bool,
    /// Also sign in: print the authorization URL, wait for the browser on a loopback
    /// redirect, get a token and list the tools with it.
    #[arg(long)]
    pub login: bool,
    /// A browser origin whose CORS access must work (e.g. the MCP Inspector's
    /// `http://localhost:6274`): makes the CORS checks hard for it. Without it they are
    /// notes: claude.ai and ChatGPT send no Origin.
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
}

/// Why the doctor could not run at all (a finding about the server is a check, not this).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("{0}")]
    Url(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Runs the checks, prints the report, and says whether every check passed.
pub fn main(args: DoctorArgs) -> Result<bool, DoctorError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let (mut report, discovered) = walk::walk(&args.url, args.origin.as_deref()).await?;
        if args.login {
            let check = match &discovered {
                Some(d) if report.ok() => login::run(&args.url, d, &mut report.notes).await,
                _ => report::Check::blocked("login", "the checks above"),
            };
            report.checks.push(check);
        }
        Ok::<_, DoctorError>(report)
    })?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.ok())
}
