//! The HTML pages. Rendered on the server with maud (escaping by
//! construction); what they change goes through the JSON API from
//! `static/app.js`, with the session's CSRF token from the page's
//! `<meta name="csrf-token">`. The daemon table is rendered by the script
//! from `GET /api/daemons` and refreshed every few seconds.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup, DOCTYPE};
use os4x::users::Role;
use serde::Deserialize;

use crate::error::{blocking, ApiError};
use crate::session::{removal_cookie, same, session_cookie, token_of, PageUser, Session};
use crate::state::{lock, AppState};

type S = Arc<AppState>;

pub fn routes() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/daemons") }))
        .route("/login", get(login_page).post(login_post))
        .route("/logout", axum::routing::post(logout_post))
        .route("/daemons", get(daemons_page))
        .route("/partners", get(partners_page))
        .route("/queue", get(queue_page))
        .route("/received", get(received_page))
        .route("/debug", get(debug_page))
        .route("/users", get(users_page))
}

/// `2026-11-24 21:33:24` (UTC) from unix seconds.
pub fn time(secs: i64) -> String {
    let t = os4x::debug::proto::format_timestamp(secs.saturating_mul(1_000_000));
    t.get(..19).unwrap_or(&t).replace('T', " ")
}

fn opt_time(secs: Option<i64>) -> String {
    secs.filter(|&s| s > 0).map_or_else(|| "–".into(), time)
}

/// `1.5 MiB`
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

struct Nav {
    href: &'static str,
    label: &'static str,
    min: Role,
}

const NAV: [Nav; 6] = [
    Nav {
        href: "/daemons",
        label: "Daemons",
        min: Role::Viewer,
    },
    Nav {
        href: "/partners",
        label: "Partners",
        min: Role::Viewer,
    },
    Nav {
        href: "/queue",
        label: "Send queue",
        min: Role::Viewer,
    },
    Nav {
        href: "/received",
        label: "Received",
        min: Role::Viewer,
    },
    Nav {
        href: "/debug",
        label: "Debug",
        min: Role::Viewer,
    },
    Nav {
        href: "/users",
        label: "Users",
        min: Role::Admin,
    },
];

fn layout(title: &str, s: &Session, active: &str, server_id: u32, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(s.csrf);
                title { (title) " · os4x" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body data-role=(s.role.as_str()) data-page=(active) {
                header.top {
                    a.brand href="/daemons" { "os4x" span.sid { "serverID " (server_id) } }
                    nav {
                        @for n in &NAV {
                            @if s.role >= n.min {
                                a.active[n.href == active] href=(n.href) { (n.label) }
                            }
                        }
                    }
                    div.who {
                        span.user { (s.user) } " " span.role { (s.role.as_str()) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button.link type="submit" id="logout" { "Log out" }
                        }
                    }
                }
                main {
                    div #flash role="status" {}
                    (body)
                }
            }
        }
    }
}

fn page(state: &AppState, title: &str, s: &Session, active: &str, body: Markup) -> Response {
    layout(title, s, active, state.config.server_id, body).into_response()
}

fn error_box(e: &ApiError) -> Markup {
    html! { div.error-box { strong { "Cannot show this: " } (e.message) } }
}

pub fn not_found_page(path: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Not found · os4x" } link rel="stylesheet" href="/static/app.css"; }
            body.center {
                div.card {
                    h1 { "Not found" }
                    p { "There is no page " code { (path) } "." }
                    p { a href="/daemons" { "Back to the daemons" } }
                }
            }
        }
    }
}

// ----------------------------------------------------------------------
// Login

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
}

fn login_markup(error: Option<&str>, user: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Log in · os4x" }
                link rel="stylesheet" href="/static/app.css";
            }
            body.center {
                form.card.login method="post" action="/login" {
                    h1 { "os4x" }
                    p.muted { "OFTP2 communication server" }
                    @if let Some(e) = error { div.error-box #login-error { (e) } }
                    label { "User" input type="text" name="user" id="user" value=(user) autocomplete="username" required autofocus; }
                    label { "Password" input type="password" name="password" id="password" autocomplete="current-password" required; }
                    button.primary type="submit" id="login" { "Log in" }
                    p.muted.small { "Users are managed with " code { "os4x user add" } " or on the Users page." }
                }
            }
        }
    }
}

async fn login_page(State(state): State<S>, headers: HeaderMap) -> Response {
    if token_of(&headers, state.secure_cookie).is_some_and(|t| state.sessions.get(&t).is_some()) {
        return Redirect::to("/daemons").into_response();
    }
    login_markup(None, "").into_response()
}

async fn login_post(
    State(state): State<S>,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            login_markup(Some("Enter user and password."), ""),
        )
            .into_response();
    };
    if !crate::session::same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            login_markup(Some("Cross-site login refused."), ""),
        )
            .into_response();
    }
    match crate::api::check_login(&state, f.user.clone(), f.password).await {
        Ok((token, _)) => (
            jar.add(session_cookie(token, state.secure_cookie)),
            Redirect::to("/daemons"),
        )
            .into_response(),
        Err(e) => (e.status, login_markup(Some(&e.message), &f.user)).into_response(),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

async fn logout_post(
    State(state): State<S>,
    PageUser(s): PageUser,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = form.ok().and_then(|Form(f)| f.csrf).unwrap_or_default();
    if !same(&token, &s.csrf) || !crate::session::same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            ApiError::forbidden("missing or wrong CSRF token").message,
        )
            .into_response();
    }
    if let Some(t) = token_of(&headers, state.secure_cookie) {
        state.sessions.remove(&t);
    }
    tracing::info!(target: "os4x_web::audit", user = s.user, "logout");
    (
        jar.add(removal_cookie(state.secure_cookie)),
        Redirect::to("/login"),
    )
        .into_response()
}

// ----------------------------------------------------------------------
// Daemons

async fn daemons_page(State(state): State<S>, PageUser(s): PageUser) -> Response {
    let body = html! {
        div.title-row {
            h1 { "Daemons" }
            span.muted #refreshed { "loading…" }
        }
        p.muted {
            "The PID table as " code { "os4x-pidctl status" } " shows it, refreshed every 3 s. "
            "A " strong { "stale" } " entry names a process that is gone (crash, kill -9) or a PID now used by another program; the next start takes it over."
        }
        table.grid #daemons {
            thead { tr {
                th { "Program" } th { "ServerID" } th { "PID" } th { "State" } th { "PID file" }
                th { "Listening" } th { "Uptime" } th { "systemd unit" } th { "Actions" }
            } }
            tbody {}
        }
        h2 { "Nodes" }
        p.muted {
            "Every node sharing the database (" code { "os4x-pidctl status --all" } "): its host, when one of its daemons last reported in, "
            "and the programs recorded there. A " strong { "silent" } " node is probably gone: once its leases run out the other nodes take its queue entries and partial files over."
        }
        table.grid #nodes {
            thead { tr {
                th { "ServerID" } th { "Host" } th { "Heartbeat" } th { "Version" } th { "State" } th { "Programs" }
            } }
            tbody {}
        }
        dialog #confirm-forced {
            form method="dialog" {
                h2 { "Start " span #forced-program {} " forced?" }
                p {
                    "A forced start takes over the PID entry " strong { "even though it says the daemon is running" }
                    ". It does not stop the process the entry names."
                }
                p.warn {
                    "If that process is in fact still alive, two daemons run at once: they race for the same "
                    "sockets, queue entries, received files and receipts, and files can be sent twice or lost. "
                    "Use it only when you are sure the entry is wrong."
                }
                p { "Are you really sure?" }
                div.buttons {
                    button type="submit" value="cancel" id="forced-cancel" autofocus { "Cancel" }
                    button.danger type="submit" value="yes" id="forced-yes" { "Yes, start forced" }
                }
            }
        }
    };
    page(&state, "Daemons", &s, "/daemons", body)
}

// ----------------------------------------------------------------------
// Partners

async fn partners_page(State(state): State<S>, PageUser(s): PageUser) -> Response {
    let st = state.clone();
    let list = blocking(move || {
        st.partners
            .list()
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await;
    let admin = s.role >= Role::Admin;
    let body = html! {
        h1 { "Partners" }
        @match &list {
            Err(e) => (error_box(e)),
            Ok(list) => {
                @if list.is_empty() { p.muted { "No partners yet." } }
                @else {
                table.grid #partners {
                    thead { tr { th { "Odette ID" } th { "Name" } th { "Directions" } th { "TLS" } th { "Client cert" } th { "State" } @if admin { th { "Actions" } } } }
                    tbody {
                        @for p in list {
                            tr.disabled[!p.enabled] data-partner=(p.id) {
                                td { code { (p.id) } }
                                td { (p.name) }
                                td { (p.directions) }
                                td { @if p.tls_required { "required" } @else { "optional" } }
                                td { @if p.client_cert_required { "required" } @else { "–" } }
                                td { @if p.enabled { span.badge.ok { "enabled" } } @else { span.badge.off { "disabled" } } }
                                @if admin {
                                    td.actions {
                                        @let url = format!("/api/partners/{}", p.id);
                                        @if p.enabled {
                                            button.small data-api-method="PUT" data-api=(url) data-body=r#"{"enabled":false}"# { "Disable" }
                                        } @else {
                                            button.small data-api-method="PUT" data-api=(url) data-body=r#"{"enabled":true}"# { "Enable" }
                                        }
                                        details.inline {
                                            summary { "Edit" }
                                            form.stack data-api=(url) data-api-method="PUT" {
                                                label { "Name" input type="text" name="name" value=(p.name); }
                                                label { "Directions" select name="direction" {
                                                    @for d in ["both", "send", "receive"] { option value=(d) selected[p.directions.as_str() == d] { (d) } }
                                                } }
                                                label { "New password in (partner sends)" input type="password" name="password_in" autocomplete="off" placeholder="unchanged"; }
                                                label { "New password out (we send)" input type="password" name="password_out" autocomplete="off" placeholder="unchanged"; }
                                                label.check { input type="checkbox" name="tls_required" checked[p.tls_required]; " TLS required" }
                                                label.check { input type="checkbox" name="client_cert_required" checked[p.client_cert_required]; " client certificate required" }
                                                button.primary.small type="submit" { "Save" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                }
            }
        }
        @if admin {
            section.panel {
                h2 { "Add a partner" }
                form.grid-form #partner-add data-api="/api/partners" data-api-method="POST" {
                    label { "Odette ID" input type="text" name="id" required placeholder="O0013000000PARTNER"; }
                    label { "Name" input type="text" name="name"; }
                    label { "Password in (partner sends)" input type="password" name="password_in" required autocomplete="off"; }
                    label { "Password out (we send)" input type="password" name="password_out" required autocomplete="off"; }
                    label { "Directions" select name="direction" { option value="both" { "both" } option value="send" { "send" } option value="receive" { "receive" } } }
                    label.check { input type="checkbox" name="tls_required"; " TLS required" }
                    label.check { input type="checkbox" name="client_cert_required"; " client certificate required" }
                    div { button.primary type="submit" { "Add partner" } }
                }
                p.muted.small { "Certificate pins, per-partner CAs and post-receive commands: " code { "os4x partner set" } "." }
            }
        }
    };
    page(&state, "Partners", &s, "/partners", body)
}

// ----------------------------------------------------------------------
// Queue

#[derive(Deserialize)]
pub struct QueueParams {
    state: Option<String>,
}

fn state_badge(state: &str) -> &'static str {
    match state {
        "delivered" | "received" | "sent" | "running" => "ok",
        "failed" | "nerp" | "overdue" => "bad",
        "retry" | "sending" | "sent-awaiting-eerp" | "awaiting" | "due" | "partial" => "warn",
        _ => "off",
    }
}

async fn queue_page(
    State(state): State<S>,
    PageUser(s): PageUser,
    q: Result<Query<QueueParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = q.ok().and_then(|Query(q)| q.state).unwrap_or_default();
    let st = state.clone();
    let f = filter.clone();
    let data = blocking(move || {
        let states = crate::api::parse_states(Some(&f))?;
        let entries = st
            .queue
            .list(&states)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let counts = st
            .queue
            .counts()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let partners = st
            .partners
            .list()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok((entries, counts, partners))
    })
    .await;
    let operator = s.role >= Role::Operator;
    let max = state.config.web.max_upload_bytes;
    let body = html! {
        h1 { "Send queue" }
        @match &data {
            Err(e) => (error_box(e)),
            Ok((entries, counts, partners)) => {
                div.chips {
                    a.chip.active[filter.is_empty()] href="/queue" { "all" }
                    @for st in os4x::queue::EntryState::ALL {
                        @let n = counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
                        a.chip.active[filter == st.as_str()] href={ "/queue?state=" (st.as_str()) } {
                            (st.as_str()) " " span.count { (n) }
                        }
                    }
                }
                @if entries.is_empty() { p.muted { "No entries." } }
                @else {
                table.grid #queue {
                    thead { tr { th { "ID" } th { "Partner" } th { "Dataset" } th { "Size" } th { "State" } th { "Attempts" } th { "EERP" } th { "Created" } th { "Last error" } @if operator { th { "Actions" } } } }
                    tbody {
                        @for e in entries {
                            tr data-entry=(e.id) {
                                td { (e.id) }
                                td { code { (e.partner) } }
                                td { (e.dataset_name) br; span.muted.small { (e.file_timestamp) } }
                                td.num { (bytes(e.size)) }
                                td { span class={"badge " (state_badge(e.state.as_str()))} { (e.state.as_str()) }
                                     @if e.state == os4x::queue::EntryState::Retry { br; span.muted.small { "next " (time(e.next_attempt_at)) } } }
                                td.num { (e.attempts) }
                                td { span class={"badge " (state_badge(&e.eerp))} { (e.eerp) } }
                                td.small { (time(e.created_at)) }
                                td.small.error-text { (e.last_error.as_deref().unwrap_or("")) }
                                @if operator {
                                    td.actions {
                                        @if matches!(e.state.as_str(), "failed" | "retry" | "cancelled" | "queued") {
                                            button.small data-api=(format!("/api/queue/{}/retry", e.id)) data-api-method="POST" { "Retry" }
                                        }
                                        @if matches!(e.state.as_str(), "failed" | "retry" | "queued") {
                                            button.small.danger-outline data-api=(format!("/api/queue/{}/cancel", e.id)) data-api-method="POST" data-confirm=(format!("Cancel queue entry {}?", e.id)) { "Cancel" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                }
                @if operator {
                    section.panel {
                        h2 { "Enqueue a file" }
                        form.grid-form #enqueue data-api="/api/queue" data-api-method="POST" data-multipart {
                            label { "Partner" select name="partner" required {
                                @for p in partners.iter().filter(|p| p.enabled && p.directions.may_send()) { option value=(p.id) { (p.id) " " (p.name) } }
                            } }
                            label { "File (up to " (bytes(max)) ")" input type="file" name="file" required data-max=(max); }
                            label { "Dataset name" input type="text" name="dataset" placeholder="default: the file name"; }
                            label { "Format" select name="format" { option value="U" { "U unstructured" } option value="T" { "T text" } option value="F" { "F fixed" } option value="V" { "V variable" } } }
                            label { "Record size (F, V)" input type="number" name="record_size" min="0"; }
                            label { "Priority" input type="number" name="priority" value="0"; }
                            label { "User data" input type="text" name="user_data" maxlength="8"; }
                            label { "Description" input type="text" name="description"; }
                            div { button.primary type="submit" { "Enqueue" } }
                        }
                    }
                }
            }
        }
    };
    page(&state, "Send queue", &s, "/queue", body)
}

// ----------------------------------------------------------------------
// Received

async fn received_page(State(state): State<S>, PageUser(s): PageUser) -> Response {
    let st = state.clone();
    let files = blocking(move || {
        os4x::usecase::received::list(&st.config, None)
            .map_err(|f| ApiError::internal(f.to_string()))
    })
    .await;
    let operator = s.role >= Role::Operator;
    let body = html! {
        h1 { "Received files" }
        p.muted { "EERP: " strong { "due" } " = the end-to-end receipt is still owed to the partner, " strong { "sent" } " = it went out." }
        @match &files {
            Err(e) => (error_box(e)),
            Ok(files) if files.is_empty() => p.muted { "No files received yet." },
            Ok(files) => {
                table.grid #received {
                    thead { tr { th { "ID" } th { "Partner" } th { "Dataset" } th { "Originator → destination" } th { "Size" } th { "Received" } th { "State" } th { "EERP" } @if operator { th {} } } }
                    tbody {
                        @for f in files {
                            tr data-file=(f.id) {
                                td { (f.id) }
                                td { code { (f.partner) } }
                                td { (f.dataset_name) br; span.muted.small { (f.file_timestamp) } }
                                td.small { code { (f.originator) } " → " code { (f.destination) } }
                                td.num { (f.bytes.map_or_else(|| "–".into(), |b| bytes(b.max(0) as u64))) }
                                td.small { (opt_time(f.received_at)) }
                                td { span class={"badge " (state_badge(&f.state))} { (f.state) } }
                                td { span class={"badge " (state_badge(&f.eerp))} { (f.eerp) } }
                                @if operator {
                                    td { @if f.state == "received" { a.button.small href=(format!("/api/received/{}/download", f.id)) { "Download" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&state, "Received files", &s, "/received", body)
}

// ----------------------------------------------------------------------
// Debug

async fn debug_page(State(state): State<S>, PageUser(s): PageUser) -> Response {
    let st = state.clone();
    let doc = blocking(move || crate::api::debug_document(&st)).await;
    let operator = s.role >= Role::Operator;
    let body = html! {
        h1 { "Debug" }
        p.muted {
            "Daemons with debugging switched on forward their debug records to " code { "os4xdebugd" }
            ". The switch takes effect within seconds, without a restart; it overrides " code { "[debug] enable" } "."
        }
        @match &doc {
            Err(e) => (error_box(e)),
            Ok(doc) => {
                table.grid #debug {
                    thead { tr { th { "Program" } th { "Debugging" } th { "Set by" } @if operator { th { "Switch" } } } }
                    tbody {
                        @let all = doc["switch"].as_array().and_then(|rows| rows.iter().find(|r| r["program"] == "*")).and_then(|r| r["enabled"].as_bool());
                        tr data-program="*" {
                            td { strong { "all programs" } }
                            td { @match all { Some(true) => span.badge.ok { "on" }, Some(false) => span.badge.off { "off" }, None => span.muted { "per program" } } }
                            td { @if all.is_some() { "switch" } @else { "–" } }
                            @if operator {
                                td.actions {
                                    button.small data-api="/api/debug/*" data-api-method="PUT" data-body=r#"{"enabled":true}"# { "On for all" }
                                    button.small data-api="/api/debug/*" data-api-method="PUT" data-body=r#"{"enabled":false}"# { "Off for all" }
                                }
                            }
                        }
                        @for p in doc["programs"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            @let name = p["program"].as_str().unwrap_or_default();
                            @let on = p["enabled"].as_bool().unwrap_or(false);
                            tr data-program=(name) {
                                td { code { (name) } }
                                td { @if on { span.badge.ok { "on" } } @else { span.badge.off { "off" } } }
                                td { (p["source"].as_str().unwrap_or_default()) }
                                @if operator {
                                    td.actions {
                                        @let url = format!("/api/debug/{name}");
                                        @if on { button.small data-api=(url) data-api-method="PUT" data-body=r#"{"enabled":false}"# { "Switch off" } }
                                        @else { button.small data-api=(url) data-api-method="PUT" data-body=r#"{"enabled":true}"# { "Switch on" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if operator {
            section.panel {
                h2 { "Problem report" }
                p { "A tar.gz with the debug records, " code { "os4x-pidctl status" } ", the configuration with secrets redacted, versions and the newest queue and received-file rows: attach it to a support request." }
                form.inline-form method="get" action="/api/debug/bundle" {
                    label { "Records of the last " input type="number" name="hours" value="24" min="1" max="2160"; " hours" }
                    button.primary type="submit" id="bundle" { "Download bundle" }
                }
            }
        }
    };
    page(&state, "Debug", &s, "/debug", body)
}

// ----------------------------------------------------------------------
// Users

async fn users_page(State(state): State<S>, PageUser(s): PageUser) -> Response {
    if s.role < Role::Admin {
        let body = html! { h1 { "Users" } div.error-box { "Only admins manage users." } };
        return (
            StatusCode::FORBIDDEN,
            layout("Users", &s, "/users", state.config.server_id, body),
        )
            .into_response();
    }
    let st = state.clone();
    let users = blocking(move || {
        lock(&st.users)
            .list()
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await;
    let now = os4x::db::unix_now();
    let body = html! {
        h1 { "Users" }
        p.muted { "The users of os4xclientd and this web interface (one user table). viewer: sees; operator: also acts on daemons, queue and debug; admin: also manages partners and users." }
        @match &users {
            Err(e) => (error_box(e)),
            Ok(users) => {
                table.grid #users {
                    thead { tr { th { "User" } th { "Role" } th { "Last login" } th { "Failed logins" } th { "Actions" } } }
                    tbody {
                        @for u in users {
                            @let url = format!("/api/users/{}", u.name);
                            tr data-user=(u.name) {
                                td { (u.name) }
                                td {
                                    form.inline-form data-api=(url) data-api-method="PUT" {
                                        select name="role" {
                                            @for r in ["viewer", "operator", "admin"] { option value=(r) selected[u.role.as_str() == r] { (r) } }
                                        }
                                        button.small type="submit" { "Set" }
                                    }
                                }
                                td.small { (opt_time(u.last_login_at)) }
                                td { (u.failed_logins) @if u.locked_until > now { " " span.badge.bad { "locked" } } }
                                td.actions {
                                    @if u.locked_until > now || u.failed_logins > 0 {
                                        button.small data-api=(url) data-api-method="PUT" data-body=r#"{"unlock":true}"# { "Unlock" }
                                    }
                                    details.inline {
                                        summary { "Password" }
                                        form.inline-form data-api=(url) data-api-method="PUT" {
                                            input type="password" name="password" required minlength="8" autocomplete="new-password";
                                            button.small type="submit" { "Set" }
                                        }
                                    }
                                    @if u.name != s.user {
                                        button.small.danger-outline data-api=(url) data-api-method="DELETE" data-confirm=(format!("Remove user {}?", u.name)) { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Add a user" }
            form.grid-form data-api="/api/users" data-api-method="POST" {
                label { "Name" input type="text" name="name" required; }
                label { "Password" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
                label { "Role" select name="role" { option value="viewer" { "viewer" } option value="operator" { "operator" } option value="admin" { "admin" } } }
                div { button.primary type="submit" { "Add user" } }
            }
        }
    };
    page(&state, "Users", &s, "/users", body)
}
