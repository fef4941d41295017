//! A throw-away PKI for the security tests, made with Debian's `openssl`
//! command line tool (`openssl ca`, which can revoke and publish CRLs;
//! rcgen with ring cannot generate the RSA keys OFTP2's cipher suites
//! need), and a tiny HTTP server on 127.0.0.1 that serves the CA's CRL as
//! a CRL distribution point.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Runs openssl with `args` in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line tool must be installed (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// A CA "os4x test CA" whose leaf certificates name `crl_url` as
    /// their CRL distribution point.
    pub fn new(crl_url: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("index.txt"), "").unwrap();
        std::fs::write(p.join("serial"), "1000\n").unwrap();
        std::fs::write(p.join("crlnumber"), "01\n").unwrap();
        let conf = format!(
            "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndir = {dir}\n\
             database = $dir/index.txt\nnew_certs_dir = $dir\ncertificate = $dir/ca.pem\n\
             private_key = $dir/ca.key\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\n\
             default_md = sha256\ndefault_days = 365\ndefault_crl_days = 30\n\
             policy = policy_any\nunique_subject = no\ncopy_extensions = none\n\
             x509_extensions = leaf\n\
             [ policy_any ]\ncommonName = supplied\norganizationName = optional\n\
             [ leaf ]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\n\
             subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
             crlDistributionPoints = URI:{crl_url}\n",
            dir = p.display()
        );
        std::fs::write(p.join("ca.cnf"), conf).unwrap();
        openssl(
            p,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/O=os4x test/CN=os4x test CA",
                "-days",
                "3650",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `name.pem` / `name.key`: an RSA key pair and a certificate of the
    /// CA, valid for `days` days from now.
    pub fn issue(&self, name: &str, days: u32) -> (PathBuf, PathBuf) {
        self.issue_with(name, &["-days", &days.to_string()])
    }

    /// A certificate that expired before now.
    pub fn issue_expired(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue_with(
            name,
            &[
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200201000000Z",
            ],
        )
    }

    fn issue_with(&self, name: &str, validity: &[&str]) -> (PathBuf, PathBuf) {
        let p = self.dir.path();
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            p,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/O=os4x test/CN={name}"),
            ],
        );
        let mut args = vec![
            "ca", "-batch", "-notext", "-config", "ca.cnf", "-in", &csr, "-out", &pem,
        ];
        args.extend_from_slice(validity);
        openssl(p, &args);
        (self.path(&pem), self.path(&key))
    }

    pub fn revoke(&self, name: &str) {
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.pem")],
        );
    }

    /// Publishes a fresh CRL (PEM) at `to` (what the HTTP server serves).
    pub fn publish_crl(&self, to: &Path) {
        let to = to.to_string_lossy();
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-gencrl", "-out", &to],
        );
    }
}

/// An HTTP/1.0 server on 127.0.0.1 answering every GET with the current
/// content of one file (re-read per request). Counts requests.
pub struct CrlServer {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
}

impl CrlServer {
    pub fn start(file: PathBuf) -> CrlServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                // Read the request head.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match std::fs::read(&file) {
                    Ok(b) => ("200 OK", b),
                    Err(_) => ("404 Not Found", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: application/pkix-crl\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        CrlServer { port, requests }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ca.crl", self.port)
    }
}
