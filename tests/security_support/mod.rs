//! The security tests' helpers: the throw-away PKI of the oftp2 tests
//! (Debian's `openssl` command line tool: `openssl ca` can revoke and
//! publish CRLs, and rcgen with ring cannot generate the RSA keys OFTP2's
//! cipher suites need), and a tiny HTTP server on 127.0.0.1 that serves
//! the CA's CRL as a CRL distribution point.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[path = "../../oftp2/tests/pki_support/mod.rs"]
mod pki;
pub use pki::{openssl, Pki};

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
