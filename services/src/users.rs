//! Users of `os4xclientd` (and later the web UI): one user table, one
//! password check.
//!
//! Passwords are stored as argon2id PHC strings (`argon2` crate, default
//! parameters: 19 MiB, 2 passes). [`UserStore::authenticate`] compares in
//! constant time (the `password-hash` verifier), spends the same argon2
//! work on unknown user names, and locks a user out after
//! `max_failures` failures in a row: the lockout starts at `lockout` and
//! doubles with each further failure, up to [`MAX_LOCKOUT`]. Counters live
//! in the database, so they hold across connections, processes and
//! restarts.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use os4x_store::sql::OptionalExtension;
use os4x_store::Connection;
use serde::Serialize;

/// Longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// Password length limits (argon2 accepts more; these keep requests sane).
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

/// What a user may do. Ordered: each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: status, partners, lists of received files and the queue.
    Viewer,
    /// Also: download and acknowledge received files, enqueue sends.
    Operator,
    /// Everything (administration jobs to come).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}; use admin, operator or viewer"
            )),
        }
    }
}

/// A user as listed (no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub failed_logins: u32,
    /// Unix time until which logins are refused; 0 when not locked.
    pub locked_until: i64,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
}

/// How many failures lock a user out, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub lockout: Duration,
}

impl LockoutPolicy {
    /// Lockout after the `failures`-th failure in a row, if any.
    pub fn lockout_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.max_failures)?;
        let factor = 1u32.checked_shl(over.min(16)).unwrap_or(u32::MAX);
        Some(self.lockout.saturating_mul(factor).min(MAX_LOCKOUT))
    }
}

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} already exists; change the password with `os4x user passwd {0}`")]
    Exists(String),
    #[error("no user {0:?}; list users with `os4x user list`")]
    NotFound(String),
    #[error("invalid user name {0:?}: use 1-64 characters a-z A-Z 0-9 . _ @ -")]
    BadName(String),
    #[error("password too short: at least {MIN_PASSWORD} characters")]
    PasswordTooShort,
    #[error("password too long: at most {MAX_PASSWORD} bytes")]
    PasswordTooLong,
    #[error("wrong user name or password")]
    BadCredentials,
    #[error(
        "too many failed logins; try again in {0} s or ask an admin to run `os4x user unlock`"
    )]
    Locked(i64),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("user database: {0}")]
    Db(#[from] os4x_store::SqlError),
    #[error("user database: {0}")]
    Open(#[from] os4x_store::OpenError),
}

/// The user table.
#[derive(Debug)]
pub struct UserStore {
    conn: Connection,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(UserError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD {
        return Err(UserError::PasswordTooLong);
    }
    Ok(())
}

/// 16 random bytes from the OS (via `ring`, already a dependency).
fn salt() -> Result<SaltString, UserError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| UserError::Hash("no randomness from the operating system".into()))?;
    SaltString::encode_b64(&bytes).map_err(|e| UserError::Hash(e.to_string()))
}

fn hash(password: &str) -> Result<String, UserError> {
    let salt = salt()?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// A valid hash of a random password, verified against when the user does
/// not exist so that the answer takes as long as for a real user.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let Ok(salt) = salt() else {
            return String::new();
        };
        Argon2::default()
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Constant-time argon2 check (`password-hash` compares outputs with
/// `subtle`). A hash that does not parse never matches.
fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

impl UserStore {
    /// Opens the database, creating the table if needed.
    pub fn open(location: impl Into<os4x_store::Location>) -> Result<UserStore, UserError> {
        let conn = os4x_store::open(location)?;
        Ok(UserStore { conn })
    }

    pub fn add(&self, name: &str, password: &str, role: Role) -> Result<(), UserError> {
        if !valid_name(name) {
            return Err(UserError::BadName(name.to_owned()));
        }
        check_password(password)?;
        let h = hash(password)?;
        let now = crate::db::unix_now();
        match self.conn.execute(
            "INSERT INTO os4x_users (name, password_hash, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            os4x_store::params![name, h, role.as_str(), now],
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_constraint() => Err(UserError::Exists(name.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a new password; also clears a lockout.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), UserError> {
        check_password(password)?;
        let h = hash(password)?;
        let n = self.conn.execute(
            "UPDATE os4x_users SET password_hash = ?2, failed_logins = 0, locked_until = 0,
             updated_at = ?3 WHERE name = ?1",
            os4x_store::params![name, h, crate::db::unix_now()],
        )?;
        if n == 0 {
            return Err(UserError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    pub fn set_role(&self, name: &str, role: Role) -> Result<(), UserError> {
        let n = self.conn.execute(
            "UPDATE os4x_users SET role = ?2, updated_at = ?3 WHERE name = ?1",
            os4x_store::params![name, role.as_str(), crate::db::unix_now()],
        )?;
        if n == 0 {
            return Err(UserError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Clears failures and lockout.
    pub fn unlock(&self, name: &str) -> Result<(), UserError> {
        let n = self.conn.execute(
            "UPDATE os4x_users SET failed_logins = 0, locked_until = 0 WHERE name = ?1",
            [name],
        )?;
        if n == 0 {
            return Err(UserError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<(), UserError> {
        let n = self
            .conn
            .execute("DELETE FROM os4x_users WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(UserError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<User>, UserError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, role, failed_logins, locked_until, last_login_at, created_at
             FROM os4x_users ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            let role: String = r.get(1)?;
            Ok(User {
                name: r.get(0)?,
                // The CHECK constraint keeps other values out.
                role: role.parse().unwrap_or(Role::Viewer),
                failed_logins: r.get(2)?,
                locked_until: r.get(3)?,
                last_login_at: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Checks `password` for `name` at unix time `now`; returns the role.
    /// Slow on purpose (argon2): call from a blocking thread.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        policy: LockoutPolicy,
        now: i64,
    ) -> Result<Role, UserError> {
        let row: Option<(String, String, u32, i64)> = self
            .conn
            .query_row(
                "SELECT password_hash, role, failed_logins, locked_until FROM os4x_users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((phc, role, _, locked_until)) = row else {
            // Same work as for a real user: timing does not tell names.
            let _ = verify(password, dummy_hash());
            return Err(UserError::BadCredentials);
        };
        if locked_until > now {
            return Err(UserError::Locked(locked_until - now));
        }
        if password.len() <= MAX_PASSWORD && verify(password, &phc) {
            self.conn.execute(
                "UPDATE os4x_users SET failed_logins = 0, locked_until = 0, last_login_at = ?2 WHERE name = ?1",
                os4x_store::params![name, now],
            )?;
            return role.parse().map_err(|_| UserError::BadCredentials);
        }
        // Count in one statement so concurrent failures all count.
        let failures: u32 = self.conn.query_row(
            "UPDATE os4x_users SET failed_logins = failed_logins + 1 WHERE name = ?1 RETURNING failed_logins",
            [name],
            |r| r.get(0),
        )?;
        if let Some(lock) = policy.lockout_after(failures) {
            let until = now.saturating_add(i64::try_from(lock.as_secs()).unwrap_or(i64::MAX));
            self.conn.execute(
                "UPDATE os4x_users SET locked_until = ?2 WHERE name = ?1",
                os4x_store::params![name, until],
            )?;
            tracing::warn!(
                user = name,
                failures,
                lockout_seconds = lock.as_secs(),
                "user locked out after failed logins"
            );
        }
        Err(UserError::BadCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_authenticate_lockout_passwd_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(os4x_store::testing::database_for(dir.path())).unwrap();
        store.add("alice", "correct horse", Role::Operator).unwrap();
        assert!(matches!(
            store.add("alice", "whatever1", Role::Viewer),
            Err(UserError::Exists(_))
        ));
        assert!(matches!(
            store.add("bad name", "whatever1", Role::Viewer),
            Err(UserError::BadName(_))
        ));
        assert!(matches!(
            store.add("bob", "short", Role::Viewer),
            Err(UserError::PasswordTooShort)
        ));
        let policy = LockoutPolicy {
            max_failures: 2,
            lockout: Duration::from_secs(60),
        };
        assert_eq!(
            store
                .authenticate("alice", "correct horse", policy, 100)
                .unwrap(),
            Role::Operator
        );
        assert!(matches!(
            store.authenticate("nobody", "correct horse", policy, 100),
            Err(UserError::BadCredentials)
        ));
        for _ in 0..2 {
            assert!(matches!(
                store.authenticate("alice", "wrong", policy, 100),
                Err(UserError::BadCredentials)
            ));
        }
        // Locked: even the right password is refused, until it expires.
        assert!(matches!(
            store.authenticate("alice", "correct horse", policy, 101),
            Err(UserError::Locked(59))
        ));
        assert_eq!(
            store
                .authenticate("alice", "correct horse", policy, 161)
                .unwrap(),
            Role::Operator
        );
        let users = store.list().unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(
            (users[0].failed_logins, users[0].last_login_at),
            (0, Some(161))
        );
        store.set_password("alice", "battery staple").unwrap();
        assert!(store
            .authenticate("alice", "correct horse", policy, 200)
            .is_err());
        assert!(store
            .authenticate("alice", "battery staple", policy, 200)
            .is_ok());
        let raw: String = store
            .conn
            .query_row("SELECT password_hash FROM os4x_users", [], |r| r.get(0))
            .unwrap();
        assert!(raw.starts_with("$argon2id$"), "{raw}");
        store.remove("alice").unwrap();
        assert!(matches!(store.remove("alice"), Err(UserError::NotFound(_))));
    }

    #[test]
    fn lockout_doubles_and_is_capped() {
        let p = LockoutPolicy {
            max_failures: 3,
            lockout: Duration::from_secs(60),
        };
        assert_eq!(p.lockout_after(2), None);
        assert_eq!(p.lockout_after(3), Some(Duration::from_secs(60)));
        assert_eq!(p.lockout_after(4), Some(Duration::from_secs(120)));
        assert_eq!(p.lockout_after(100), Some(MAX_LOCKOUT));
    }
}
