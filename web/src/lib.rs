//! `os4x-web`: the web administration of os4x.
//!
//! Server-rendered pages (maud) with a little vanilla JavaScript, and the
//! JSON API under `/api/` that the pages use, both behind one login: the
//! users and password check of `os4xclientd` ([`os4x::users`]). Roles:
//! viewers see everything but secrets, operators also act (daemons, queue,
//! debug switch, downloads), admins also manage partners and users.
//!
//! - [`state`]: what handlers share (configuration, database handles).
//! - [`session`]: logins, session cookies, CSRF tokens, role checks.
//! - [`control`]: start / stop / restart / start forced, via systemd or
//!   directly.
//! - [`api`]: the JSON API; [`pages`]: the HTML pages.
//! - [`server`]: listening socket (socket activation), optional TLS.

pub mod api;
pub mod control;
pub mod error;
pub mod pages;
pub mod server;
pub mod session;
pub mod state;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// Our program name in the PID table.
pub const PROGRAM: &str = "os4x-web";

/// Request bodies other than uploads (JSON, forms) are small.
const BODY_LIMIT: usize = 256 * 1024;

const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

/// The whole application.
pub fn app(state: Arc<AppState>) -> Router {
    let api = api::routes(state.config.web.max_upload_bytes).into_router();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
    Router::new()
        .merge(pages::routes())
        .merge(api)
        .route("/static/app.css", get(|| static_file(CSS, "text/css")))
        .route("/static/app.js", get(|| static_file(JS, "text/javascript")))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the os4x-web log",
            )
            .into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// A known route with another method: JSON, saying so.
async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not supported on {}; see /api/openapi.json",
            uri.path()
        ),
    )
    .into_response()
}

/// Unknown routes: JSON under `/api/`, a page elsewhere.
async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        ApiError::not_found(format!(
            "no API route {}; see /api/openapi.json",
            uri.path()
        ))
        .into_response()
    } else {
        (StatusCode::NOT_FOUND, pages::not_found_page(uri.path())).into_response()
    }
}
