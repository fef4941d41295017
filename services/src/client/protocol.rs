//! The client protocol: one JSON object per line in each direction.
//!
//! On connect the server sends a greeting line
//! `{"hello":{"server":"os4xclientd","protocol":1,"version":"..."}}`.
//! Each request `{"id":ANY,"op":"...",...params}` gets exactly one
//! response, in order: `{"id":ANY,"ok":true,"result":...}` or
//! `{"id":ANY,"ok":false,"error":{"code":"...","message":"..."}}`. `id` is
//! echoed unchanged (null if absent).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Protocol version in the greeting.
pub const PROTOCOL: u32 = 1;

/// Error codes, stable for clients to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or missing/ill-typed parameters.
    BadRequest,
    /// The line exceeded `[client] max_request_bytes`; the connection closes.
    RequestTooLarge,
    UnknownOp,
    /// Log in first.
    Unauthenticated,
    /// The user's role does not allow this job.
    Forbidden,
    BadCredentials,
    /// Too many failed logins; `retry_after` seconds in the message.
    Locked,
    NotFound,
    /// `send` with a server-side path that is not a file inside
    /// `[client] allowed_paths`.
    PathNotAllowed,
    /// An upload would exceed `[client] max_upload_bytes`.
    TooLarge,
    /// The job was understood but cannot be done as asked (e.g. unknown
    /// partner, partner configured for receiving only, file does not fit
    /// its record format); the message says what to change.
    Refused,
    /// The job's backing is missing on this server (e.g. no partner table
    /// yet, `[local] odette_id` not configured for `send`).
    NotAvailable,
    /// Too many connections, or login/idle timeout.
    Busy,
    Timeout,
    Internal,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

/// A request line, split into id, op and the whole object (parameters are
/// read per op).
#[derive(Debug, Clone)]
pub struct Request {
    pub id: Value,
    pub op: String,
    pub params: serde_json::Map<String, Value>,
}

/// Parses one request line. The error carries whatever id could be read.
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, ErrorBody)> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            ErrorBody::new(ErrorCode::BadRequest, format!("not valid JSON: {e}")),
        )
    })?;
    let Value::Object(mut params) = value else {
        return Err((
            Value::Null,
            ErrorBody::new(ErrorCode::BadRequest, "a request must be a JSON object"),
        ));
    };
    let id = params.remove("id").unwrap_or(Value::Null);
    match params.remove("op") {
        Some(Value::String(op)) => Ok(Request { id, op, params }),
        _ => Err((
            id,
            ErrorBody::new(ErrorCode::BadRequest, "missing string field \"op\""),
        )),
    }
}

impl Request {
    /// Parameters as a typed struct.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, ErrorBody> {
        serde_json::from_value(Value::Object(self.params.clone())).map_err(|e| {
            ErrorBody::new(
                ErrorCode::BadRequest,
                format!("bad parameters for {:?}: {e}", self.op),
            )
        })
    }
}

/// Encodes a response line (with the trailing newline).
pub fn response(id: &Value, result: Result<Value, ErrorBody>) -> Vec<u8> {
    let v = match result {
        Ok(result) => serde_json::json!({"id": id, "ok": true, "result": result}),
        Err(error) => serde_json::json!({"id": id, "ok": false, "error": error}),
    };
    let mut line = serde_json::to_vec(&v).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    line
}

/// The greeting line.
pub fn greeting() -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({
        "hello": {"server": "os4xclientd", "protocol": PROTOCOL, "version": env!("CARGO_PKG_VERSION")}
    }))
    .unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let r = parse_request(br#"{"id":7,"op":"status"}"#).unwrap();
        assert_eq!((r.id, r.op.as_str()), (serde_json::json!(7), "status"));
        let (id, e) = parse_request(br#"{"id":"x"}"#).unwrap_err();
        assert_eq!(
            (id, e.code),
            (serde_json::json!("x"), ErrorCode::BadRequest)
        );
        assert_eq!(
            parse_request(b"{nope").unwrap_err().1.code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse_request(b"[1]").unwrap_err().1.code,
            ErrorCode::BadRequest
        );
        let line = response(
            &serde_json::json!(1),
            Err(ErrorBody::new(ErrorCode::Forbidden, "no")),
        );
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["error"]["code"], "forbidden");
        assert_eq!(v["ok"], false);
    }
}
