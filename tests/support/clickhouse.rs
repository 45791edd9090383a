//! A real `clickhouse-server` (Debian's 18.16 here) on free loopback ports, with its
//! own data directory and users, stopped and removed on Drop; optionally also serving
//! https (`start_https`), with or without requiring client certificates.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, temp_dir};

pub struct ClickHouse {
    pub http_port: u16,
    /// The https port, when started with [`ClickHouse::start_https`].
    pub https_port: Option<u16>,
    dir: PathBuf,
    child: Child,
}

/// Extra users, as `<name><password>..</password>...</name>` fragments inside `<users>`.
#[derive(Default, Clone)]
pub struct Users {
    pub xml: String,
}

impl Users {
    /// A user with a password and a profile (`default` or `ro`, readonly=1).
    pub fn with(mut self, name: &str, password: &str, profile: &str) -> Self {
        self.xml.push_str(&format!(
            "<{name}><password>{password}</password><networks><ip>::/0</ip></networks><profile>{profile}</profile><quota>default</quota></{name}>"
        ));
        self
    }
}

/// What the server's https port serves (`<openSSL><server>`).
pub struct Https {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Some: clients must present a certificate signed by this CA (`verificationMode
    /// strict`); None: no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

const SERVER: &str = "/usr/sbin/clickhouse-server";

impl ClickHouse {
    pub fn start() -> Self {
        Self::start_with(Users::default())
    }

    pub fn start_with(users: Users) -> Self {
        Self::launch(users, None)
    }

    /// Serves https too (plain http stays on `http_port` for setup and readiness).
    pub fn start_https(users: Users, https: &Https) -> Self {
        Self::launch(users, Some(https))
    }

    fn launch(users: Users, https: Option<&Https>) -> Self {
        assert!(
            std::path::Path::new(SERVER).exists(),
            "{SERVER} is missing: install it with `apt-get install -y clickhouse-server clickhouse-client` (`make test` does this)"
        );
        let dir = temp_dir("ch");
        let http_port = free_port();
        let tcp_port = free_port();
        let https_port = https.map(|_| free_port());
        let tls = https.zip(https_port).map_or_else(String::new, |(h, port)| {
            let verify = match &h.client_ca {
                Some(ca) => format!(
                    "<verificationMode>strict</verificationMode><caConfig>{}</caConfig>",
                    ca.display()
                ),
                None => "<verificationMode>none</verificationMode>".to_string(),
            };
            format!(
                "<https_port>{port}</https_port>
  <openSSL><server><certificateFile>{}</certificateFile><privateKeyFile>{}</privateKeyFile>{verify}<loadDefaultCAFile>false</loadDefaultCAFile><disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>",
                h.cert.display(),
                h.key.display()
            )
        });
        let d = dir.display();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>
  {tls}
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/files/</user_files_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size><timezone>UTC</timezone>
</yandex>"
            ),
        )
        .expect("write config");
        let ch = Self {
            http_port,
            https_port,
            dir: dir.clone(),
            child: spawn(&dir),
        };
        ch.write_users(&users);
        ch.wait_ready();
        ch
    }

    /// Rewrites users.xml; the server re-reads it within a few seconds.
    pub fn write_users(&self, users: &Users) {
        std::fs::write(
            self.dir.join("users.xml"),
            format!(
                "<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default><ro><readonly>1</readonly></ro></profiles>
  <users>
    <default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default>
    {}
  </users>
  <quotas><default/></quotas>
</yandex>",
                users.xml
            ),
        )
        .expect("write users");
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self
                .try_query("SELECT 1")
                .map(|r| r.trim() == "1")
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        panic!(
            "clickhouse-server did not answer on port {} within 20 s; error log:\n{log}",
            self.http_port
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http_port)
    }

    /// Runs SQL as `default` (setup and inspection), returning the body as text.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let resp = ureq_like_post(&self.url(), sql)?;
        Ok(resp)
    }

    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("setup query failed: {sql}\n{e}"))
    }

    /// Stops the server without removing its data (to test an outage).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.dir);
        self.wait_ready();
    }
}

fn spawn(dir: &std::path::Path) -> Child {
    Command::new(SERVER)
        .arg(format!(
            "--config-file={}",
            dir.join("config.xml").display()
        ))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn clickhouse-server")
}

/// Blocking POST over a plain TCP socket: keeps the harness free of an HTTP client
/// runtime so it can run from sync test code and Drop.
fn ureq_like_post(base: &str, body: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    if head.starts_with("HTTP/1.1 200") {
        Ok(body)
    } else {
        Err(body)
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
