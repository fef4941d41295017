//! The JSON API under `/api/`, documented in `docs/openapi.json` (served
//! at `/api/openapi.json`). The pages use it for everything they change
//! and for the daemon table.
//!
//! Every route is registered through [`ApiRoutes::add`], which records
//! method and path, so a test can check that the OpenAPI document lists
//! exactly the routes there are.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use oftp2::value::{OdetteId, Password};
use os4x::partner::{Directions, Partner, PartnerError};
use os4x::queue::{EntryState, QueueError};
use os4x::usecase::Error as Failure;
use os4x::users::{Role, UserError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::control::{self, Action};
use crate::error::{blocking, ApiError};
use crate::session::{removal_cookie, session_cookie, ApiUser};
use crate::state::{lock, AppState};

/// The OpenAPI document (kept in sync with the routes by a test).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

type S = Arc<AppState>;

/// The API router being built, and what it holds.
pub struct ApiRoutes {
    paths: BTreeMap<&'static str, MethodRouter<S>>,
    /// `(METHOD, /api/path)` in OpenAPI path syntax.
    pub list: Vec<(&'static str, &'static str)>,
}

impl ApiRoutes {
    fn new() -> ApiRoutes {
        ApiRoutes {
            paths: BTreeMap::new(),
            list: Vec::new(),
        }
    }

    /// Adds `handler` (a one-method router such as `get(f)`) for `method`
    /// on `path` (`/api/x/{id}`: axum and OpenAPI write parameters alike).
    fn add(mut self, method: &'static str, path: &'static str, handler: MethodRouter<S>) -> Self {
        let merged = match self.paths.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        self.paths.insert(path, merged);
        self.list.push((method, path));
        self
    }

    pub fn into_router(self) -> Router<S> {
        self.paths
            .into_iter()
            .fold(Router::new(), |r, (path, mr)| r.route(path, mr))
    }
}

/// Every API route.
pub fn routes(max_upload: u64) -> ApiRoutes {
    // Multipart framing and the other fields need a little room beyond
    // the file itself.
    let upload_limit = usize::try_from(max_upload.saturating_add(1 << 20)).unwrap_or(usize::MAX);
    ApiRoutes::new()
        .add("GET", "/api/openapi.json", get(openapi))
        .add("POST", "/api/login", post(login))
        .add("POST", "/api/logout", post(logout))
        .add("GET", "/api/session", get(session))
        .add("GET", "/api/daemons", get(daemons))
        .add("GET", "/api/nodes", get(nodes))
        .add(
            "POST",
            "/api/daemons/{program}/{action}",
            post(daemon_action),
        )
        .add("GET", "/api/partners", get(partners))
        .add("POST", "/api/partners", post(partner_add))
        .add("GET", "/api/partners/{id}", get(partner_get))
        .add("PUT", "/api/partners/{id}", put(partner_set))
        .add("GET", "/api/queue", get(queue))
        .add(
            "POST",
            "/api/queue",
            post(enqueue).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .add("POST", "/api/queue/{id}/retry", post(queue_retry))
        .add("POST", "/api/queue/{id}/cancel", post(queue_cancel))
        .add("GET", "/api/received", get(received))
        .add("GET", "/api/received/{id}/download", get(received_download))
        .add("GET", "/api/debug", get(debug))
        .add("PUT", "/api/debug/{program}", put(debug_set))
        .add("GET", "/api/debug/bundle", get(debug_bundle))
        .add("GET", "/api/users", get(users))
        .add("POST", "/api/users", post(user_add))
        .add("PUT", "/api/users/{name}", put(user_set))
        .add("DELETE", "/api/users/{name}", delete(user_remove))
}

/// A JSON body whose rejection is a JSON 400 (or 413).
pub struct JsonBody<T>(pub T);

impl<T, St> axum::extract::FromRequest<St> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &St) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(v))
    }
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

// ----------------------------------------------------------------------
// Login

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub user: String,
    pub password: String,
}

/// Checks a login (argon2, lockout) and starts a session: shared by the
/// login page and `POST /api/login`.
pub async fn check_login(
    state: &S,
    user: String,
    password: String,
) -> Result<(String, crate::session::Session), ApiError> {
    let _permit = state
        .logins
        .acquire()
        .await
        .map_err(|_| ApiError::internal("login limiter closed"))?;
    let st = state.clone();
    let name = user.clone();
    let result = blocking(move || {
        let now = os4x::db::unix_now();
        Ok(lock(&st.users).authenticate(&name, &password, st.policy, now))
    })
    .await?;
    match result {
        Ok(role) => {
            tracing::info!(target: "os4x_web::audit", user, %role, "login");
            state.sessions.create(&user, role)
        }
        Err(UserError::Locked(secs)) => {
            tracing::warn!(target: "os4x_web::audit", user, "login refused: locked out");
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "locked",
                format!("too many failed logins; try again in {secs} s or ask an admin to unlock the user"),
            ))
        }
        Err(UserError::BadCredentials) => {
            tracing::warn!(target: "os4x_web::audit", user, "login failed");
            // Slows guessing without locking anyone out.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong user name or password",
            ))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn login(
    State(state): State<S>,
    jar: CookieJar,
    JsonBody(b): JsonBody<LoginBody>,
) -> Result<(CookieJar, Json<Value>), ApiError> {
    let (token, s) = check_login(&state, b.user, b.password).await?;
    Ok((
        jar.add(session_cookie(token, state.secure_cookie)),
        Json(json!({ "user": s.user, "role": s.role, "csrf_token": s.csrf })),
    ))
}

async fn logout(State(state): State<S>, jar: CookieJar, u: ApiUser) -> (CookieJar, Json<Value>) {
    state.sessions.remove(&u.token);
    tracing::info!(target: "os4x_web::audit", user = u.name(), "logout");
    (
        jar.add(removal_cookie(state.secure_cookie)),
        Json(json!({ "logged_out": true })),
    )
}

async fn session(u: ApiUser) -> Json<Value> {
    Json(json!({ "user": u.session.user, "role": u.session.role, "csrf_token": u.session.csrf }))
}

// ----------------------------------------------------------------------
// Daemons

/// The status document of `os4x-pidctl status --json`, with per program
/// how os4x-web controls it and which actions this user may take.
pub fn daemons_document(state: &AppState, role: Role) -> Result<Value, ApiError> {
    let doc = os4x::debug::bundle::status_document_with_systemd(&state.config)
        .map_err(ApiError::internal)?;
    let mut v = serde_json::to_value(&doc).map_err(ApiError::internal)?;
    if let Some(programs) = v.get_mut("programs").and_then(Value::as_array_mut) {
        for p in programs {
            let name = p
                .get("program")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let controllable = control::is_daemon(&name) && name != state.own_program;
            // The buttons that make sense in the row's state (the API
            // takes every action in every state; the daemon decides).
            let state_key = p.get("state").and_then(Value::as_str).unwrap_or_default();
            let actions: Vec<&str> = if !controllable || role < Role::Operator {
                Vec::new()
            } else {
                let sensible: &[Action] = match state_key {
                    "running" => &[Action::Stop, Action::Restart, Action::StartForced],
                    "stopped" => &[Action::Start],
                    _ => &[Action::Start, Action::StartForced],
                };
                sensible.iter().map(|a| a.as_str()).collect()
            };
            if let Some(o) = p.as_object_mut() {
                // systemd's view is in the row already (when systemd
                // runs): no second `systemctl show`.
                let installed = o
                    .get("systemd")
                    .and_then(|s| s.get("load_state"))
                    .and_then(Value::as_str)
                    .is_some_and(|l| l == "loaded");
                o.insert(
                    "control".into(),
                    if controllable {
                        json!(control::mode_with(state, &name, |_| installed).label())
                    } else {
                        Value::Null
                    },
                );
                o.insert("actions".into(), json!(actions));
            }
        }
    }
    Ok(v)
}

/// Every node sharing the database and the programs recorded on each
/// (`os4x-pidctl status --all --json`); no nodes before any daemon ran.
async fn nodes(State(state): State<S>, _u: ApiUser) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let doc =
            os4x::debug::bundle::cluster_document(&state.config).map_err(ApiError::internal)?;
        match doc {
            Some(d) => serde_json::to_value(&d).map_err(ApiError::internal),
            None => Ok(json!({ "nodes": [], "programs": [] })),
        }
        .map(Json)
    })
    .await
}

async fn daemons(State(state): State<S>, u: ApiUser) -> Result<Json<Value>, ApiError> {
    let role = u.session.role;
    blocking(move || daemons_document(&state, role).map(Json)).await
}

async fn daemon_action(
    State(state): State<S>,
    u: ApiUser,
    Path((program, action)): Path<(String, String)>,
) -> Result<Json<control::Outcome>, ApiError> {
    u.require(Role::Operator)?;
    let action: Action = action.parse()?;
    let user = u.name().to_owned();
    blocking(move || control::perform(&state, &program, action, &user).map(Json)).await
}

// ----------------------------------------------------------------------
// Partners

fn partner_error(e: PartnerError) -> ApiError {
    match e {
        PartnerError::NotFound(_) => ApiError::not_found(e.to_string()),
        PartnerError::Exists(_) => ApiError::conflict(e.to_string()),
        PartnerError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        other => ApiError::internal(other),
    }
}

async fn partners(State(state): State<S>, _u: ApiUser) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let list = state.partners.list().map_err(partner_error)?;
        Ok(Json(json!({ "partners": list })))
    })
    .await
}

async fn partner_get(
    State(state): State<S>,
    _u: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    blocking(move || {
        state
            .partners
            .get(&id)
            .map_err(partner_error)?
            .map(Json)
            .ok_or_else(|| ApiError::not_found(format!("no partner {id}")))
    })
    .await
}

/// Partner fields; on `PUT` absent ones stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerBody {
    pub id: Option<String>,
    pub name: Option<String>,
    pub password_in: Option<String>,
    pub password_out: Option<String>,
    pub direction: Option<String>,
    pub tls_required: Option<bool>,
    pub client_cert_required: Option<bool>,
    pub enabled: Option<bool>,
}

fn password(field: &str, v: &str) -> Result<Password, ApiError> {
    Password::new(v).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn apply(p: &mut Partner, b: PartnerBody) -> Result<(), ApiError> {
    if let Some(v) = b.name {
        p.name = v;
    }
    if let Some(v) = b.password_in.filter(|v| !v.is_empty()) {
        p.password_in = password("password_in", &v)?;
    }
    if let Some(v) = b.password_out.filter(|v| !v.is_empty()) {
        p.password_out = password("password_out", &v)?;
    }
    if let Some(v) = b.direction {
        p.directions = v.parse::<Directions>().map_err(ApiError::bad_request)?;
    }
    if let Some(v) = b.tls_required {
        p.tls_required = v;
    }
    if let Some(v) = b.client_cert_required {
        p.client_cert_required = v;
    }
    if let Some(v) = b.enabled {
        p.enabled = v;
    }
    Ok(())
}

async fn partner_add(
    State(state): State<S>,
    u: ApiUser,
    JsonBody(mut b): JsonBody<PartnerBody>,
) -> Result<(StatusCode, Json<Partner>), ApiError> {
    u.require(Role::Admin)?;
    let id = b.id.take().unwrap_or_default();
    let id = OdetteId::new(&id).map_err(|e| ApiError::bad_request(format!("id {id:?}: {e}")))?;
    let (Some(pin), Some(pout)) = (b.password_in.clone(), b.password_out.clone()) else {
        return Err(ApiError::bad_request(
            "password_in and password_out are required",
        ));
    };
    let mut p = Partner::new(
        id,
        password("password_in", &pin)?,
        password("password_out", &pout)?,
    );
    apply(&mut p, b)?;
    let user = u.name().to_owned();
    blocking(move || {
        state.partners.add(&p).map_err(partner_error)?;
        tracing::info!(target: "os4x_web::audit", user, partner = %p.id, "partner added");
        Ok((StatusCode::CREATED, Json(p)))
    })
    .await
}

async fn partner_set(
    State(state): State<S>,
    u: ApiUser,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PartnerBody>,
) -> Result<Json<Partner>, ApiError> {
    u.require(Role::Admin)?;
    if b.id
        .as_deref()
        .is_some_and(|i| !i.eq_ignore_ascii_case(&id))
    {
        return Err(ApiError::bad_request(
            "the id cannot be changed; add a new partner",
        ));
    }
    let user = u.name().to_owned();
    blocking(move || {
        let mut p = state
            .partners
            .get(&id)
            .map_err(partner_error)?
            .ok_or_else(|| ApiError::not_found(format!("no partner {id}")))?;
        apply(&mut p, b)?;
        state.partners.update(&p).map_err(partner_error)?;
        tracing::info!(target: "os4x_web::audit", user, partner = %p.id, enabled = p.enabled, "partner changed");
        Ok(Json(p))
    })
    .await
}

// ----------------------------------------------------------------------
// Queue

fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::NoEntry(_) => ApiError::not_found(e.to_string()),
        QueueError::WrongState { .. } => ApiError::conflict(e.to_string()),
        QueueError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        QueueError::Db(_) => ApiError::internal(e),
        other => ApiError::conflict(other.to_string()),
    }
}

fn failure(e: Failure) -> ApiError {
    match e {
        Failure::Invalid(m) => ApiError::bad_request(m),
        Failure::Refused(m) | Failure::NotConfigured(m) => ApiError::conflict(m),
        Failure::Store(m) => ApiError::internal(m),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Comma-separated states.
    pub state: Option<String>,
}

/// Parses `queued,failed`.
pub fn parse_states(s: Option<&str>) -> Result<Vec<EntryState>, ApiError> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<EntryState>().map_err(ApiError::bad_request))
        .collect()
}

async fn queue(
    State(state): State<S>,
    _u: ApiUser,
    q: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let states = parse_states(q.state.as_deref())?;
    blocking(move || {
        let entries = state.queue.list(&states).map_err(queue_error)?;
        let counts: BTreeMap<&str, u64> = state
            .queue
            .counts()
            .map_err(queue_error)?
            .into_iter()
            .map(|(s, n)| (s.as_str(), n))
            .collect();
        Ok(Json(
            json!({ "version": 1, "counts": counts, "entries": entries }),
        ))
    })
    .await
}

async fn queue_retry(
    State(state): State<S>,
    u: ApiUser,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    u.require(Role::Operator)?;
    let user = u.name().to_owned();
    blocking(move || {
        state.queue.retry(id).map_err(queue_error)?;
        tracing::info!(target: "os4x_web::audit", user, entry = id, "queue entry retried");
        Ok(Json(json!({ "id": id, "state": "queued" })))
    })
    .await
}

async fn queue_cancel(
    State(state): State<S>,
    u: ApiUser,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    u.require(Role::Operator)?;
    let user = u.name().to_owned();
    blocking(move || {
        state.queue.cancel(id).map_err(queue_error)?;
        tracing::info!(target: "os4x_web::audit", user, entry = id, "queue entry cancelled");
        Ok(Json(json!({ "id": id, "state": "cancelled" })))
    })
    .await
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("upload too large: {}", e.body_text()))
    } else {
        ApiError::bad_request(format!("malformed upload: {}", e.body_text()))
    }
}

/// `POST /api/queue`: multipart form with `file` and the options of
/// `os4x send` (`partner`, `dataset`, `format`, `record_size`,
/// `priority`, `user_data`, `description`, `destination`).
async fn enqueue(
    State(state): State<S>,
    u: ApiUser,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    u.require(Role::Operator)?;
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let max = state.config.web.max_upload_bytes;
    let dir = state.upload_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut file: Option<(tempfile::NamedTempFile, String, u64)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let filename = field.file_name().unwrap_or_default().to_owned();
            let tmp = tempfile::NamedTempFile::new_in(&dir)
                .map_err(|e| ApiError::internal(format!("upload staging: {e}")))?;
            let mut out = tokio::fs::File::from_std(
                tmp.reopen()
                    .map_err(|e| ApiError::internal(format!("upload staging: {e}")))?,
            );
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                size += chunk.len() as u64;
                if size > max {
                    return Err(ApiError::too_large(format!(
                        "the file is larger than [web] max_upload_bytes ({max} bytes)"
                    )));
                }
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                    .await
                    .map_err(|e| ApiError::internal(format!("upload staging: {e}")))?;
            }
            tokio::io::AsyncWriteExt::flush(&mut out)
                .await
                .map_err(|e| ApiError::internal(format!("upload staging: {e}")))?;
            file = Some((tmp, filename, size));
        } else {
            let text = field.text().await.map_err(multipart_error)?;
            if text.len() > 4096 {
                return Err(ApiError::bad_request(format!("field {name} is too long")));
            }
            fields.insert(name, text);
        }
    }
    let (tmp, filename, size) =
        file.ok_or_else(|| ApiError::bad_request("no \"file\" part in the upload"))?;
    let mut take = |k: &str| fields.remove(k).filter(|v| !v.trim().is_empty());
    let partner = take("partner").ok_or_else(|| ApiError::bad_request("partner is required"))?;
    let format = os4x::usecase::send::parse_format(take("format").as_deref().unwrap_or("U"))
        .map_err(|e| ApiError::bad_request(format!("format: {e}")))?;
    let number = |k: &str, v: Option<String>| -> Result<Option<i64>, ApiError> {
        v.map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{k}: not a number")))
        })
        .transpose()
    };
    let record_size = number("record_size", take("record_size"))?.unwrap_or(0);
    let priority = number("priority", take("priority"))?.unwrap_or(0);
    let args = os4x::usecase::send::SendRequest {
        file: tmp.path().to_owned(),
        to: partner,
        dataset: take("dataset").or(Some(filename.clone()).filter(|f| !f.is_empty())),
        format,
        record_size: u32::try_from(record_size)
            .map_err(|_| ApiError::bad_request("record_size out of range"))?,
        priority,
        user_data: take("user_data").unwrap_or_default(),
        description: take("description").unwrap_or_default(),
        destination: take("destination"),
    };
    if let Some(k) = fields.keys().next() {
        return Err(ApiError::bad_request(format!("unknown field {k:?}")));
    }
    let user = u.name().to_owned();
    blocking(move || {
        let q = os4x::usecase::send::enqueue(&state.config, args).map_err(failure)?;
        // The queue holds its own durable copy now.
        drop(tmp);
        tracing::info!(target: "os4x_web::audit", user, partner = q.entry.partner, entry = q.entry.id, dataset = q.entry.dataset_name, bytes = size, file = filename, "file queued");
        Ok((
            StatusCode::CREATED,
            Json(json!({ "entry": q.entry, "has_route": q.has_route })),
        ))
    })
    .await
}

// ----------------------------------------------------------------------
// Received files

async fn received(State(state): State<S>, _u: ApiUser) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let files = os4x::usecase::received::list(&state.config, None).map_err(failure)?;
        Ok(Json(json!({ "version": 1, "files": files })))
    })
    .await
}

/// The stored path of received file `id`, and a download name.
fn received_file(state: &AppState, id: i64) -> Result<(PathBuf, String), ApiError> {
    let files = os4x::usecase::received::list(&state.config, None).map_err(failure)?;
    let f = files
        .into_iter()
        .find(|f| f.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no received file {id}")))?;
    match (f.state.as_str(), f.path) {
        ("received", Some(p)) => Ok((
            PathBuf::from(p),
            format!("{}-{}", f.dataset_name, f.file_timestamp),
        )),
        _ => Err(ApiError::conflict(format!(
            "received file {id} is still {}; it can be downloaded once complete",
            f.state
        ))),
    }
}

/// A file as an attachment, streamed.
async fn attachment(path: PathBuf, name: &str, content_type: &str) -> Result<Response, ApiError> {
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::not_found(format!("{} cannot be opened: {e}", path.display())))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    // Only safe characters in the header; the name is ours anyway.
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::new(f)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(resp)
}

async fn received_download(
    State(state): State<S>,
    u: ApiUser,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    u.require(Role::Operator)?;
    let st = state.clone();
    let (path, name) = blocking(move || received_file(&st, id)).await?;
    tracing::info!(target: "os4x_web::audit", user = u.name(), file = id, "received file downloaded");
    attachment(path, &name, "application/octet-stream").await
}

// ----------------------------------------------------------------------
// Debug

/// The debug switch per program: override rows and effective state.
pub fn debug_document(state: &AppState) -> Result<Value, ApiError> {
    let cfg = &state.config;
    let conn = lock(&state.switch);
    let rows = os4x::debug::switch::list(&conn, cfg.server_id).map_err(ApiError::internal)?;
    let doc = os4x::debug::bundle::status_document(cfg).map_err(ApiError::internal)?;
    let mut programs: Vec<String> = doc.programs.into_iter().map(|p| p.program).collect();
    for r in &rows {
        if r.program != os4x::debug::switch::ALL && !programs.contains(&r.program) {
            programs.push(r.program.clone());
        }
    }
    programs.sort();
    let list: Vec<Value> = programs
        .iter()
        .map(|p| {
            let over = os4x::debug::switch::lookup(&conn, cfg.server_id, p)
                .ok()
                .flatten();
            let (enabled, source) = match over {
                Some(e) => (e, "switch"),
                None => (cfg.debug.enabled_for(p), "config"),
            };
            json!({ "program": p, "enabled": enabled, "source": source })
        })
        .collect();
    Ok(json!({
        "server_id": cfg.server_id,
        "config_enable": cfg.debug.enable,
        "switch": rows,
        "programs": list,
    }))
}

async fn debug(State(state): State<S>, _u: ApiUser) -> Result<Json<Value>, ApiError> {
    blocking(move || debug_document(&state).map(Json)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugBody {
    pub enabled: bool,
}

async fn debug_set(
    State(state): State<S>,
    u: ApiUser,
    Path(program): Path<String>,
    JsonBody(b): JsonBody<DebugBody>,
) -> Result<Json<Value>, ApiError> {
    u.require(Role::Operator)?;
    if program != os4x::debug::switch::ALL && pidstore::ProgramName::new(program.clone()).is_err() {
        return Err(ApiError::bad_request(format!(
            "{program:?} is not a program name (or \"*\" for all)"
        )));
    }
    let user = u.name().to_owned();
    blocking(move || {
        let sid = state.config.server_id;
        os4x::debug::switch::set(&lock(&state.switch), sid, &program, b.enabled)
            .map_err(ApiError::internal)?;
        tracing::info!(target: "os4x_web::audit", user, program, enabled = b.enabled, "debug switch set");
        Ok(Json(json!({ "program": program, "enabled": b.enabled })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleQuery {
    /// Records of the last this many hours (default 24).
    pub hours: Option<u32>,
}

async fn debug_bundle(
    State(state): State<S>,
    u: ApiUser,
    q: Result<Query<BundleQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    u.require(Role::Operator)?;
    let Query(q) = q?;
    let hours = i64::from(q.hours.unwrap_or(24).clamp(1, 24 * 90));
    let st = state.clone();
    let (tmp, name) = blocking(move || {
        let dir = st.upload_dir();
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(ApiError::internal)?;
        let since = (os4x::db::unix_now() - hours * 3600) * 1_000_000;
        os4x::debug::bundle::write_bundle(&st.config, since, tmp.path())
            .map_err(ApiError::internal)?;
        Ok((tmp, format!("os4x-bundle-{}.tar.gz", os4x::db::unix_now())))
    })
    .await?;
    tracing::info!(target: "os4x_web::audit", user = u.name(), hours, "debug bundle downloaded");
    // Opened before the temporary file goes: the data stays readable.
    let resp = attachment(tmp.path().to_owned(), &name, "application/gzip").await;
    drop(tmp);
    resp
}

// ----------------------------------------------------------------------
// Users

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::NotFound(_) => ApiError::not_found(e.to_string()),
        UserError::Exists(_) => ApiError::conflict(e.to_string()),
        UserError::BadName(_) | UserError::PasswordTooShort | UserError::PasswordTooLong => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other),
    }
}

async fn users(State(state): State<S>, u: ApiUser) -> Result<Json<Value>, ApiError> {
    u.require(Role::Admin)?;
    blocking(move || {
        let list = lock(&state.users).list().map_err(user_error)?;
        Ok(Json(json!({ "users": list })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub name: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub unlock: bool,
}

fn role(s: &str) -> Result<Role, ApiError> {
    s.parse().map_err(ApiError::bad_request)
}

async fn user_add(
    State(state): State<S>,
    u: ApiUser,
    JsonBody(b): JsonBody<UserBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    u.require(Role::Admin)?;
    let (Some(name), Some(password)) = (b.name, b.password) else {
        return Err(ApiError::bad_request("name and password are required"));
    };
    let r = role(b.role.as_deref().unwrap_or("viewer"))?;
    let admin = u.name().to_owned();
    blocking(move || {
        lock(&state.users)
            .add(&name, &password, r)
            .map_err(user_error)?;
        tracing::info!(target: "os4x_web::audit", user = admin, added = name, role = %r, "user added");
        Ok((StatusCode::CREATED, Json(json!({ "name": name, "role": r }))))
    })
    .await
}

async fn user_set(
    State(state): State<S>,
    u: ApiUser,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<UserBody>,
) -> Result<Json<Value>, ApiError> {
    u.require(Role::Admin)?;
    if b.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request("a user cannot be renamed"));
    }
    let r = b.role.as_deref().map(role).transpose()?;
    let admin = u.name().to_owned();
    blocking(move || {
        let store = lock(&state.users);
        if let Some(r) = r {
            store.set_role(&name, r).map_err(user_error)?;
        }
        if let Some(p) = &b.password {
            store.set_password(&name, p).map_err(user_error)?;
        }
        if b.unlock {
            store.unlock(&name).map_err(user_error)?;
        }
        drop(store);
        if r.is_some() || b.password.is_some() {
            // The old role or password must not live on in a session.
            state.sessions.remove_user(&name);
        }
        tracing::info!(target: "os4x_web::audit", user = admin, changed = name, role = ?r.map(Role::as_str), password = b.password.is_some(), unlock = b.unlock, "user changed");
        Ok(Json(json!({ "name": name })))
    })
    .await
}

async fn user_remove(
    State(state): State<S>,
    u: ApiUser,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    u.require(Role::Admin)?;
    if name == u.name() {
        return Err(ApiError::conflict(
            "you cannot remove yourself; ask another admin",
        ));
    }
    let admin = u.name().to_owned();
    blocking(move || {
        lock(&state.users).remove(&name).map_err(user_error)?;
        state.sessions.remove_user(&name);
        tracing::info!(target: "os4x_web::audit", user = admin, removed = name, "user removed");
        Ok(Json(json!({ "removed": name })))
    })
    .await
}
