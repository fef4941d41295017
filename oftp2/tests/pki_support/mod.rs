//! A throw-away PKI made with Debian's `openssl` command line tool: a CA
//! (`openssl ca`, so that it can revoke and publish CRLs), RSA key pairs
//! and certificates for partners. Using the real tool here doubles as
//! interoperability evidence: every certificate, key and CRL the library
//! parses in these tests was produced by OpenSSL.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use oftp2::security::{Certificate, Crl, Identity};

/// Run openssl with `args` in `dir`; panics with its stderr on failure.
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

/// Run openssl and return whether it succeeded, with stdout and stderr.
pub fn openssl_try(dir: &Path, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl command line tool");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// A new CA "os4x test CA" in a temporary directory.
    pub fn new() -> Pki {
        Pki::with_crl_url("http://127.0.0.1:8080/ca.crl")
    }

    /// A CA whose leaf certificates name `crl_url` as their CRL
    /// distribution point.
    pub fn with_crl_url(crl_url: &str) -> Pki {
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

    pub fn ca(&self) -> Certificate {
        Certificate::from_pem_or_der(&std::fs::read(self.path("ca.pem")).unwrap()).unwrap()
    }

    /// A key pair and a CA-issued certificate `name.pem` / `name.key`,
    /// valid for `days` days from now.
    pub fn issue(&self, name: &str, days: u32) -> Identity {
        self.issue_files(name, days);
        self.identity(name)
    }

    /// [`Pki::issue`] as the files (certificate, key), for daemons'
    /// configuration.
    pub fn issue_files(&self, name: &str, days: u32) -> (PathBuf, PathBuf) {
        self.issue_with(name, &["-days", &days.to_string()])
    }

    /// A certificate that expired before now, as files.
    pub fn issue_expired_files(&self, name: &str) -> (PathBuf, PathBuf) {
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

    pub fn identity(&self, name: &str) -> Identity {
        Identity::from_pem_or_der(
            &std::fs::read(self.path(&format!("{name}.pem"))).unwrap(),
            &std::fs::read(self.path(&format!("{name}.key"))).unwrap(),
        )
        .unwrap()
    }

    /// A self-signed certificate outside the CA (an impostor).
    pub fn self_signed(&self, name: &str) -> Identity {
        let p = self.dir.path();
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        openssl(
            p,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-subj",
                &format!("/O=os4x test/CN={name}"),
                "-days",
                "30",
            ],
        );
        self.identity(name)
    }

    pub fn revoke(&self, name: &str) {
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.pem")],
        );
    }

    /// Publishes a fresh CRL (PEM) at `to` (what a distribution point
    /// serves).
    pub fn publish_crl(&self, to: &Path) {
        let to = to.to_string_lossy();
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-gencrl", "-out", &to],
        );
    }

    /// A fresh CRL in DER (as a distribution point serves it).
    pub fn crl(&self) -> Crl {
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"],
        );
        let der = openssl(
            self.dir.path(),
            &["crl", "-in", "crl.pem", "-outform", "DER"],
        );
        Crl::from_pem_or_der(&der).unwrap()
    }
}
