//! A blocking client for the `os4xclientd` protocol (the reference client
//! behind `os4x client`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use super::protocol::ErrorBody;

/// Longest response line accepted (a download chunk is ~1.4 MiB).
const MAX_RESPONSE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("connection to os4xclientd: {0}")]
    Io(#[from] std::io::Error),
    #[error("os4xclientd answered something unexpected: {0}")]
    Protocol(String),
    #[error("{}: {}", serde_json::to_value(.0.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(), .0.message)]
    Server(ErrorBody),
}

pub struct Remote {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
}

impl Remote {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Remote, RemoteError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut r = Remote {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 1,
        };
        let hello = r.read_line()?;
        if hello.get("hello").is_none() {
            return Err(RemoteError::Protocol(format!("no greeting: {hello}")));
        }
        Ok(r)
    }

    fn read_line(&mut self) -> Result<Value, RemoteError> {
        let mut line = Vec::new();
        Read::by_ref(&mut self.reader)
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
        self.writer.write_all(&line)?;
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
