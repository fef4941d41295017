//! Holding a lease in the shared database while working on something
//! another node could also take: a queue entry being sent, a file being
//! received.
//!
//! The lease ends at a time the database sets (`unixepoch() + lease`);
//! the holder renews it every third of the lease. If it cannot (database
//! unreachable) it goes on only until shortly before the lease it last
//! got runs out, measured on its own monotonic clock from before the
//! request that granted it, so clock differences between nodes do not
//! matter. If the database says the work is no longer its own it stops at
//! once. Only after the lease ran out may another node take the work over:
//! the holder has stopped by then.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `d` in whole seconds for SQL (`unixepoch() + ?`).
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Renews a lease: `Ok(true)` renewed, `Ok(false)` held by someone else
/// now, `Err` the database could not be asked.
pub type Renew = Box<dyn Fn() -> Result<bool, String> + Send + Sync>;

/// One lease held by this process.
pub struct Lease {
    what: String,
    length: Duration,
    renew: Renew,
    state: Mutex<State>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("what", &self.what)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    /// When the request that granted the current lease was made.
    granted_at: Instant,
    next_renewal: Instant,
    lost: Option<String>,
}

impl Lease {
    /// A lease of `length` on `what` (for messages), granted by a request
    /// made at `asked`.
    pub fn new(what: impl Into<String>, length: Duration, asked: Instant, renew: Renew) -> Lease {
        Lease {
            what: what.into(),
            length,
            renew,
            state: Mutex::new(State {
                granted_at: asked,
                next_renewal: asked + length / 3,
                lost: None,
            }),
        }
    }

    /// The last moment the holder may still work: a tenth of the lease
    /// (at least 2 s) before it ends.
    fn deadline(&self, granted_at: Instant) -> Instant {
        let margin = (self.length / 10).max(Duration::from_secs(2));
        granted_at + self.length.saturating_sub(margin)
    }

    /// `Ok` while this process may go on; renews when due. Once it
    /// failed it keeps failing.
    pub fn check(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &st.lost {
            return Err(std::io::Error::other(why.clone()));
        }
        let now = Instant::now();
        if now < st.next_renewal {
            return Ok(());
        }
        match (self.renew)() {
            Ok(true) => {
                st.granted_at = now;
                st.next_renewal = now + self.length / 3;
                Ok(())
            }
            Ok(false) => {
                let why = format!(
                    "{} is no longer held here (its lease ran out and another node took it over, or it was changed)",
                    self.what
                );
                tracing::warn!("stopping: {why}");
                st.lost = Some(why.clone());
                Err(std::io::Error::other(why))
            }
            Err(e) if now >= self.deadline(st.granted_at) => {
                let why = format!(
                    "the lease of {} cannot be renewed (database: {e}) and runs out; another node may take it over",
                    self.what
                );
                tracing::error!("stopping: {why}");
                st.lost = Some(why.clone());
                Err(std::io::Error::other(why))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the lease of {}; trying again", self.what);
                st.next_renewal = now + Duration::from_secs(1);
                Ok(())
            }
        }
    }

    /// Marks the lease lost (the database refused a guarded change).
    pub fn lose(&self, why: impl Into<String>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).lost = Some(why.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    /// 0 renewed, 1 taken over, 2 database down.
    fn lease(answer: &Arc<AtomicU8>, granted_ago: u64) -> Lease {
        let a = answer.clone();
        Lease::new(
            "entry 1",
            Duration::from_secs(9),
            Instant::now() - Duration::from_secs(granted_ago),
            Box::new(move || match a.load(Ordering::SeqCst) {
                0 => Ok(true),
                1 => Ok(false),
                _ => Err("down".into()),
            }),
        )
    }

    #[test]
    fn renews_when_due_and_stops_when_taken_over() {
        let answer = Arc::new(AtomicU8::new(0));
        let l = lease(&answer, 4);
        l.check().unwrap();
        answer.store(1, Ordering::SeqCst);
        l.check().unwrap(); // renewed just now: not asked again yet
        l.state.lock().unwrap().next_renewal = Instant::now();
        let e = l.check().unwrap_err();
        assert!(e.to_string().contains("another node"), "{e}");
        answer.store(0, Ordering::SeqCst);
        assert!(l.check().is_err(), "stays stopped");
    }

    #[test]
    fn without_the_database_goes_on_only_until_shortly_before_the_end() {
        let answer = Arc::new(AtomicU8::new(2));
        // Granted 4 s ago: 9 s less the 2 s margin not reached yet.
        lease(&answer, 4).check().unwrap();
        // Granted 8 s ago: past it.
        let e = lease(&answer, 8).check().unwrap_err();
        assert!(e.to_string().contains("cannot be renewed"), "{e}");
    }
}
