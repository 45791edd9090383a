//! A throwaway certificate authority for TLS tests, made with the `openssl` CLI in the
//! caller's temporary directory: a CA, a server certificate for the names given, and a
//! client certificate (for mutual TLS), all P-256 and valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;

/// PEM files written by [`Pki::make`].
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// `server_names`: DNS names and IP literals the server certificate covers.
    pub fn make(dir: &Path, server_names: &[&str]) -> Self {
        assert!(
            Command::new("openssl").arg("version").output().is_ok(),
            "the openssl CLI is missing: run `scripts/deps.sh openssl` (`make test` does this)"
        );
        let p = |name: &str| dir.join(name);
        let pki = Pki {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=chmcp throwaway test CA",
            "-keyout",
            &path(&p("ca.key")),
            "-out",
            &path(&pki.ca),
        ]);
        let sans: Vec<String> = server_names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        let server_ext = format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
            sans.join(",")
        );
        signed(dir, &pki, "server", server_names[0], &server_ext);
        signed(
            dir,
            &pki,
            "client",
            "chmcp test client",
            "extendedKeyUsage=clientAuth\n",
        );
        pki
    }
}

/// `<stem>.key` and `<stem>.pem`, signed by the CA with the given extensions.
fn signed(dir: &Path, pki: &Pki, stem: &str, cn: &str, extensions: &str) {
    let key = dir.join(format!("{stem}.key"));
    let csr = dir.join(format!("{stem}.csr"));
    let ext = dir.join(format!("{stem}.ext"));
    std::fs::write(&ext, extensions).expect("write extensions");
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &format!("/CN={cn}"),
        "-keyout",
        &path(&key),
        "-out",
        &path(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &path(&csr),
        "-CA",
        &path(&pki.ca),
        "-CAkey",
        &path(&dir.join("ca.key")),
        "-CAcreateserial",
        "-extfile",
        &path(&ext),
        "-out",
        &path(&dir.join(format!("{stem}.pem"))),
    ]);
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
