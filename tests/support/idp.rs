//! A real OpenID Provider for tests: npm `oidc-provider` run by node from `e2e/idp`.
//!
//! [`Idp::start`] installs the npm dependencies when they are missing (idempotent), starts
//! `node e2e/idp/server.js` on a kernel-chosen loopback port and reads its ready line.
//! The IdP exits when this process closes its stdin, so it cannot outlive a test run even
//! when the test process is killed. Missing node or npm is a failure with a clear
//! message, never a silent skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// node needs a moment for RSA key generation and module loading on a busy 2-core box.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running IdP. Dropping it stops the process and removes its state directory.
pub struct Idp {
    child: Child,
    _stdin: ChildStdin,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`, exactly the `iss` of its tokens.
    pub issuer: String,
    /// The `kid` of the IdP's signing key.
    pub kid: String,
    /// The IdP's own signing key (PKCS#8 PEM), for tokens the IdP would sign but cannot
    /// be asked for (already expired, another issuer).
    pub signing_key_pem: Vec<u8>,
    /// A key the IdP never had.
    pub foreign_key_pem: Vec<u8>,
    /// The resource indicator whose tokens carry `aud` = this.
    pub audience: String,
    /// A second resource indicator, for wrong-audience tokens.
    pub other_audience: String,
    /// The secret of every test client.
    pub client_secret: String,
    /// The client registered for the gateway's broker mode (authorization code flow).
    pub broker_client_id: String,
}

/// The test clients of `e2e/idp/server.js`, each bound to one account.
pub mod clients {
    /// alice@example.com, email verified.
    pub const ALICE: &str = "alice";
    /// bob@example.com, email not verified.
    pub const BOB: &str = "bob";
    /// eve@elsewhere.test, verified, another domain.
    pub const EVE: &str = "eve";
}

pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/idp")
}

/// One install at a time within this process; `npm ci` is idempotent across runs.
static INSTALL: Mutex<()> = Mutex::new(());

fn require_tool(name: &str) -> anyhow::Result<()> {
    match Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "`{name}` is required by the IdP tests (npm oidc-provider) and was not found on PATH; \
             install Node.js 20+ (e.g. `apt-get install -y nodejs npm`)"
        ),
    }
}

/// True when a previous `npm ci` ran to its end. npm writes `node_modules/.package-lock.json`
/// last, so a half-finished or interrupted install (which leaves `oidc-provider/package.json`
/// without its `lib/`) does not count as installed.
fn installed(dir: &Path) -> bool {
    dir.join("node_modules/.package-lock.json").exists()
        && dir.join("node_modules/oidc-provider/lib/index.js").exists()
}

/// `npm ci` in e2e/idp unless a complete install is already there. Every test that needs the
/// IdP goes through here: concurrent `npm ci` runs in one directory delete each other's files.
pub fn ensure_installed() -> anyhow::Result<PathBuf> {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = idp_dir();
    require_tool("node")?;
    if installed(&dir) {
        return Ok(dir);
    }
    require_tool("npm")?;
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .context("cannot run npm")?;
    if !output.status.success() {
        bail!(
            "npm ci in {} failed:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(dir)
}

impl Idp {
    /// One IdP for every test of this process that does not count the IdP's requests
    /// (it exits with the process, when its stdin closes).
    pub fn shared() -> &'static Idp {
        static IDP: std::sync::OnceLock<Idp> = std::sync::OnceLock::new();
        IDP.get_or_init(|| {
            Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"))
        })
    }

    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// An IdP that rotates refresh tokens for every client (`IDP_ROTATE_REFRESH=1`), with
    /// reuse detection, as Auth0/Okta do once rotation is turned on. The default IdP, like
    /// oidc-provider for confidential clients, hands the same refresh token back.
    pub fn start_rotating() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    fn start_with(rotate_refresh: bool) -> anyhow::Result<Self> {
        let idp = ensure_installed()?;
        let dir = crate::temp_dir("idp");
        let stderr = std::fs::File::create(dir.join("stderr.log"))?;
        let mut child = Command::new("node")
            .arg(idp.join("server.js"))
            .arg(&dir)
            .env("IDP_ROTATE_REFRESH", if rotate_refresh { "1" } else { "0" })
            .current_dir(&idp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("cannot start node e2e/idp/server.js")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin pipe"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("IDP_READY ") {
                    let _ = tx.send(json.to_string());
                }
            }
        });
        let ready = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                bail!("the IdP did not start within {READY_TIMEOUT:?}; its stderr:\n{log}");
            }
        };
        let ready: Value = serde_json::from_str(&ready).context("bad IDP_READY line")?;
        let field = |name: &str| -> anyhow::Result<String> {
            ready
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("IDP_READY lacks {name}"))
        };
        Ok(Self {
            signing_key_pem: std::fs::read(field("signing_key")?)?,
            foreign_key_pem: std::fs::read(field("foreign_key")?)?,
            issuer: field("issuer")?,
            kid: field("kid")?,
            audience: field("audience")?,
            other_audience: field("other_audience")?,
            client_secret: field("client_secret")?,
            broker_client_id: field("broker_client_id")?,
            child,
            _stdin: stdin,
            dir,
        })
    }

    /// A JWT access token from the token endpoint (client_credentials grant, resource
    /// indicator `resource`). The client's account claims (email...) are in it.
    pub async fn token(&self, client: &str, scope: &str, resource: &str) -> anyhow::Result<String> {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", &self.client_secret),
                ("scope", scope),
                ("resource", resource),
            ])
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("the IdP refused a token for {client}: {status} {body}");
        }
        body.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no access_token in {body}"))
    }

    /// How many times anyone fetched the IdP's JWKS.
    pub async fn jwks_fetches(&self) -> anyhow::Result<u64> {
        let stats: Value = reqwest::get(format!("{}/__test/stats", self.issuer))
            .await?
            .json()
            .await?;
        stats
            .get("jwks")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("bad stats: {stats}"))
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
