//! What every request handler shares: the configuration, the database
//! handles of the os4x library, the sessions.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use os4x::config::Config;
use os4x::db::Db;
use os4x::partner::PartnerStore;
use os4x::queue::QueueStore;
use os4x::users::{LockoutPolicy, UserStore};
use os4x_store::Connection;
use tokio::sync::Semaphore;

use crate::session::Sessions;

/// Concurrent argon2 checks (each takes ~19 MiB for a moment).
const CONCURRENT_LOGINS: usize = 4;

/// Shared state of the web service.
pub struct AppState {
    pub config: Arc<Config>,
    pub sessions: Sessions,
    pub users: Mutex<UserStore>,
    pub policy: LockoutPolicy,
    pub logins: Semaphore,
    pub db: Db,
    pub queue: QueueStore,
    pub partners: PartnerStore,
    /// The debug switch table.
    pub switch: Mutex<Connection>,
    /// `Secure` session cookies (TLS, or `[web] cookie_secure`).
    pub secure_cookie: bool,
    /// Our own program name in the PID table (no actions on ourselves).
    pub own_program: String,
    /// Where daemon binaries are for direct control.
    pub daemon_dir: PathBuf,
}

impl AppState {
    /// Opens (and migrates) the tables os4x-web works on.
    pub fn open(config: Arc<Config>, own_program: &str) -> anyhow::Result<AppState> {
        let path = &config.database;
        let db = Db::open(path)?;
        let queue = QueueStore::open(db.clone())?.for_server(config.server_id);
        let partners = PartnerStore::new(db.clone());
        let users = UserStore::open(path)?;
        let switch = os4x::debug::switch::open(path)?;
        let policy = LockoutPolicy {
            max_failures: config.client.max_failed_logins,
            lockout: config.client.lockout,
        };
        let secure_cookie = config.web.cookie_secure.unwrap_or(config.web.tls.is_some());
        let daemon_dir = match &config.web.daemon_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.to_owned()))
                .unwrap_or_else(|| PathBuf::from("/usr/sbin")),
        };
        Ok(AppState {
            sessions: Sessions::new(config.web.session_idle, config.web.session_max),
            users: Mutex::new(users),
            policy,
            logins: Semaphore::new(CONCURRENT_LOGINS),
            db,
            queue,
            partners,
            switch: Mutex::new(switch),
            secure_cookie,
            own_program: own_program.to_owned(),
            daemon_dir,
            config,
        })
    }

    /// Where uploads wait until they are queued.
    pub fn upload_dir(&self) -> PathBuf {
        self.config.state_dir.join("web-uploads")
    }
}

/// Locks a mutex; a poisoned one holds nothing broken (SQLite rolls back).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
