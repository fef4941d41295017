//! A blocking client for the `os4xclientd` protocol (the reference client
//! behind `os4x client`), over plain TCP or TLS (rustls).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring as provider;
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use serde_json::{json, Value};

use super::protocol::ErrorBody;
use crate::tls::TlsError;

/// Longest response line accepted (a download chunk is ~1.4 MiB).
const MAX_RESPONSE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("connection to os4xclientd: {0}")]
    Io(#[from] std::io::Error),
    /// The CA file or server name given for TLS is unusable.
    #[error("TLS set-up: {0}")]
    TlsSetup(String),
    #[error("TLS handshake with os4xclientd failed: {0}; check --tls-ca (the CA of the server's certificate, or the certificate itself) and --tls-server-name")]
    Handshake(std::io::Error),
    #[error("os4xclientd answered something unexpected: {0}")]
    Protocol(String),
    #[error("{}: {}", serde_json::to_value(.0.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(), .0.message)]
    Server(ErrorBody),
}

/// Trust for the certificate of an `os4xclientd` with `[client]
/// tls_certificate` (`os4x client --tls --tls-ca FILE`).
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl Tls {
    /// Trusts the certificates in the PEM file `ca`: the CA that issued the
    /// server's certificate, or a self-signed server certificate itself.
    /// The server's certificate must be valid for `server_name` (a DNS
    /// name or an IP address).
    pub fn with_ca_file(ca: &Path, server_name: &str) -> Result<Tls, RemoteError> {
        let mut roots = RootCertStore::empty();
        // The message of a TlsError already includes its source.
        let certs = crate::tls::certs("CA file", ca)
            .map_err(|e: TlsError| RemoteError::TlsSetup(e.to_string()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| RemoteError::TlsSetup(format!("CA file {}: {e}", ca.display())))?;
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| RemoteError::TlsSetup(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            RemoteError::TlsSetup(format!(
                "{server_name:?} is not a valid TLS server name or IP address"
            ))
        })?;
        Ok(Tls {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// A connection, plain or TLS.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct Remote {
    /// Reads are buffered; writes go to the stream inside.
    conn: BufReader<Box<dyn Stream>>,
    next_id: u64,
}

impl Remote {
    /// Connects (over TLS with `tls`) and reads the greeting; `timeout`
    /// bounds connecting and every read and write.
    pub fn connect(
        addr: SocketAddr,
        tls: Option<&Tls>,
        timeout: Duration,
    ) -> Result<Remote, RemoteError> {
        let mut tcp = TcpStream::connect_timeout(&addr, timeout)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                let mut conn =
                    rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
                        .map_err(|e| RemoteError::TlsSetup(e.to_string()))?;
                // Handshake now, so that a certificate problem is reported
                // as one, not as a failed read of the greeting.
                while conn.is_handshaking() {
                    conn.complete_io(&mut tcp).map_err(RemoteError::Handshake)?;
                }
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        };
        let mut r = Remote {
            conn: BufReader::new(stream),
            next_id: 1,
        };
        let hello = match r.read_line() {
            Err(e @ (RemoteError::Protocol(_) | RemoteError::Io(_))) if tls.is_none() => {
                return Err(RemoteError::Protocol(format!(
                    "no greeting ({e}); if os4xclientd uses TLS ([client] tls_certificate), connect with --tls --tls-ca FILE"
                )))
            }
            r => r?,
        };
        if hello.get("hello").is_none() {
            return Err(RemoteError::Protocol(format!("no greeting: {hello}")));
        }
        Ok(r)
    }

    fn read_line(&mut self) -> Result<Value, RemoteError> {
        let mut line = Vec::new();
        Read::by_ref(&mut self.conn)
            .take(MAX_RESPONSE)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(RemoteError::Protocol("connection closed".into()));
        }
        serde_json::from_slice(&line).map_err(|e| RemoteError::Protocol(e.to_string()))
    }

    /// Sends `op` with `params` (a JSON object) and returns the result.
    pub fn call(&mut self, op: &str, params: Value) -> Result<Value, RemoteError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = match params {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        req.insert("id".into(), json!(id));
        req.insert("op".into(), json!(op));
        let mut line = serde_json::to_vec(&Value::Object(req))
            .map_err(|e| RemoteError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let stream = self.conn.get_mut();
        stream.write_all(&line)?;
        stream.flush()?;
        let resp = self.read_line()?;
        if resp["id"] != json!(id) {
            return Err(RemoteError::Protocol(format!(
                "response for another request: {resp}"
            )));
        }
        if resp["ok"] == json!(true) {
            return Ok(resp["result"].clone());
        }
        serde_json::from_value::<ErrorBody>(resp["error"].clone())
            .map_err(|_| RemoteError::Protocol(resp.to_string()))
            .and_then(|e| Err(RemoteError::Server(e)))
    }
}
