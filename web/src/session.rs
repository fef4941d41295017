//! Logins, sessions and CSRF protection.
//!
//! A login is checked by [`os4x::users::UserStore::authenticate`], the
//! one password check `os4xclientd` uses too (argon2id, lockout after
//! `[client] max_failed_logins`). A successful login gets a session: a
//! random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` and `__Host-` prefixed with TLS), held in memory only, so a
//! restart of os4x-web logs everybody out. Each session has its own CSRF
//! token, which every state-changing request must echo in the
//! `X-CSRF-Token` header (API) or the `csrf` form field (logout form);
//! compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use os4x::users::Role;

use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One logged-in browser or script.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max: Duration,
}

/// 32 random bytes, base64url.
pub fn random_token() -> Result<String, ApiError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("no randomness from the operating system"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Equality without early exit.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; returns its cookie token and the session.
    pub fn create(&self, user: &str, role: Role) -> Result<(String, Session), ApiError> {
        let token = random_token()?;
        let now = Instant::now();
        let s = Session {
            user: user.to_owned(),
            role,
            csrf: random_token()?,
            created: now,
            last_seen: now,
        };
        let mut map = self.lock();
        // Expired sessions go whenever a new one comes.
        map.retain(|_, s| !self.expired(s, now));
        map.insert(token.clone(), s.clone());
        Ok((token, s))
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) > self.idle || now.duration_since(s.created) > self.max
    }

    /// The live session of `token`, marked as used.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.lock();
        let s = map.get_mut(token)?;
        if self.expired(s, now) {
            map.remove(token);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Ends every session of `user` (deleted, or role changed).
    pub fn remove_user(&self, user: &str) {
        self.lock().retain(|_, s| s.user != user);
    }
}

/// Cookie name: `__Host-` binds it to this host and path `/` (browsers
/// accept that prefix only on Secure cookies).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-os4x_session"
    } else {
        "os4x_session"
    }
}

/// The session cookie for `token`.
pub fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((cookie_name(secure), token))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .build()
}

/// A cookie that deletes the session cookie.
pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut c = session_cookie(String::new(), secure);
    c.make_removal();
    c
}

/// The session token sent with a request, if any.
pub fn token_of(headers: &axum::http::HeaderMap, secure: bool) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(cookie_name(secure))
        .map(|c| c.value().to_owned())
}

/// The logged-in user of an API request. For methods that change state it
/// also proves the CSRF token, so no mutating handler can forget to.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub session: Session,
    pub token: String,
}

impl ApiUser {
    /// Refuses with 403 unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.session.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user {} is {}; this needs the {role} role",
                self.session.user, self.session.role
            )))
        }
    }

    pub fn name(&self) -> &str {
        &self.session.user
    }
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl<S> FromRequestParts<S> for ApiUser
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = Arc::<AppState>::from_ref(state);
        let token =
            token_of(&parts.headers, state.secure_cookie).ok_or_else(ApiError::unauthorized)?;
        let session = state
            .sessions
            .get(&token)
            .ok_or_else(ApiError::unauthorized)?;
        if !is_safe(&parts.method) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            match sent {
                Some(t) if same(t, &session.csrf) => {}
                Some(_) => {
                    tracing::warn!(user = session.user, path = %parts.uri.path(), "refused: wrong CSRF token");
                    return Err(ApiError::forbidden(
                        "wrong CSRF token; reload the page (the session may have been renewed)",
                    ));
                }
                None => {
                    tracing::warn!(user = session.user, path = %parts.uri.path(), "refused: no CSRF token");
                    return Err(ApiError::forbidden(
                        "missing CSRF token: send the X-CSRF-Token header with the token from /api/session or the login answer",
                    ));
                }
            }
        }
        Ok(ApiUser { session, token })
    }
}

/// The logged-in user of a page; otherwise the browser goes to the login
/// page.
#[derive(Debug, Clone)]
pub struct PageUser(pub Session);

/// Why a page was not served.
pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl<S> FromRequestParts<S> for PageUser
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ToLogin;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = Arc::<AppState>::from_ref(state);
        let token = token_of(&parts.headers, state.secure_cookie).ok_or(ToLogin)?;
        state.sessions.get(&token).map(PageUser).ok_or(ToLogin)
    }
}

/// Whether a form POST came from one of our own pages: a browser sends
/// `Origin` with every POST; when it does, it must name this host (as the
/// request's `Host`, or `X-Forwarded-Host` set by a reverse proxy).
pub fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|h| headers.get(h).and_then(|v| v.to_str().ok()))
        .any(|host| host.eq_ignore_ascii_case(origin_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600));
        let (t, sess) = s.create("alice", Role::Operator).unwrap();
        assert_eq!(s.get(&t).unwrap().user, "alice");
        assert_ne!(t, sess.csrf);
        assert!(s.get("nope").is_none());
        s.remove_user("alice");
        assert!(s.get(&t).is_none());
        let short = Sessions::new(Duration::ZERO, Duration::ZERO);
        let (t, _) = short.create("bob", Role::Viewer).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get(&t).is_none());
    }

    #[test]
    fn origin_must_name_this_host() {
        use axum::http::HeaderMap;
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[("host", "127.0.0.1:8404")])));
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8404"),
            ("origin", "http://127.0.0.1:8404")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8404"),
            ("origin", "http://evil.example")
        ])));
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8404"),
            ("x-forwarded-host", "os4x.example.com"),
            ("origin", "https://os4x.example.com")
        ])));
        assert!(!same_origin(&h(&[("origin", "null")])));
    }

    #[test]
    fn tokens_are_random_and_compared_fully() {
        let a = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token().unwrap());
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &a[..42]));
        assert!(!same("abc", "abd"));
    }
}
