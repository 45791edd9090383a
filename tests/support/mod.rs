//! Harness for integration tests against real components: a ClickHouse server on a
//! free port, the gateway binary, the gateway's router in process (`inproc`), a small
//! MCP-over-HTTP client, the broker-mode sign-in at the real IdP (`broker`), and the JWT
//! and metrics helpers every test file shares.

pub mod broker;
pub mod chdb_double;
pub mod clickhouse;
pub mod gateway;
pub mod http_double;
pub mod idp;
pub mod inproc;
pub mod jwt;
pub mod mcp;
pub mod metrics;
pub mod otlp;
pub mod pki;
pub mod process;
pub mod relay;

use std::net::TcpListener;
use std::path::PathBuf;

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A fresh temporary directory, removed by the owner's Drop.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chmcp-{tag}-{}-{:x}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// The gateway binary under test: `GATEWAY_BIN` when set (in a target directory shared by
/// several checkouts, the binary next to this test may come from another branch), else
/// the one beside the test executable.
pub fn gateway_binary() -> PathBuf {
    match std::env::var_os("GATEWAY_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => binary(&format!("chmcp-gateway{}", std::env::consts::EXE_SUFFIX)),
    }
}

/// Path of a workspace binary next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build -p chmcp-gateway`; `make test` does this)",
        path.display()
    );
    path
}

/// Starts `cmd` (a helper script) and waits for its first line on stdout, which must be
/// `ready_line`; anything else fails the test with `hint` (what to install).
pub fn spawn_until_ready(
    mut cmd: std::process::Command,
    ready_line: &str,
    hint: &str,
) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{hint}: {e}"));
    let mut line = String::new();
    let stdout = child.stdout.take().expect("helper stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("helper output");
    assert_eq!(line.trim(), ready_line, "{hint}");
    child
}

/// The Python of the venv `scripts/deps.sh` installs the test tools into (chdb,
/// opentelemetry-proto); `target` names the deps.sh target that provides what the
/// caller needs, for the message when the venv is missing.
pub fn venv_python(target: &str) -> PathBuf {
    let cache = std::env::var_os("DEPS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/chmcp")))
        .expect("neither DEPS_CACHE_DIR nor HOME is set");
    let python = cache.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/deps.sh {target}` (`make test` does this)",
        python.display()
    );
    python
}
