//! Who may hold a connection before logging in, how fast, and how long a
//! refused login waits for its answer.
//!
//! A connection counts against `[rd] max_sessions` only once its SSID was
//! accepted. Before that it holds one of `[rd] max_pending` slots, at
//! most `max_pending_per_ip` of them per source address, and each address
//! may open `accept_rate` connections per second (bursts of
//! `accept_burst`). Past those limits a connection is closed at once,
//! without a word: whoever opens hundreds of silent connections cannot
//! keep a real partner from its SSRM, and costs us one socket each for a
//! moment. Refusals are counted and logged as one summary line per
//! `refusal_log_interval`, not one line each.
//!
//! Refused SSIDs (unknown code, wrong password, TLS or certificate
//! requirement not met) are answered late: the first after
//! `auth_failure_delay`, each further one from the same address or for
//! the same partner twice as late, up to `auth_failure_delay_max`. The
//! slow answer keeps the connection's pending slot, so one address
//! guesses at most `max_pending_per_ip` passwords per delay. A successful
//! login is never delayed and clears its address's and partner's count.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use os4x_config::rd::RdConfig;

/// Most addresses tracked at once (rate buckets, failure counts); beyond
/// it idle entries are dropped first. Bounds memory under a flood from
/// many addresses.
const MAX_TRACKED: usize = 65_536;

/// Why a connection was closed before its SSID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_pending` connections are waiting for their SSID.
    PendingFull,
    /// The address holds `max_pending_per_ip` of them.
    PerAddress,
    /// The address opens connections faster than `accept_rate`.
    Rate,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    pending: u32,
}

/// Counts of refused connections since the last summary.
#[derive(Debug, Default)]
pub struct RefusalCounts {
    pub pending_full: AtomicU64,
    pub per_address: AtomicU64,
    pub rate: AtomicU64,
    /// SSIDs refused with ESID 08 because `max_sessions` were running.
    pub sessions_full: AtomicU64,
    by_address: Mutex<HashMap<IpAddr, u64>>,
}

impl RefusalCounts {
    fn count(&self, why: Refused, ip: Option<IpAddr>) {
        let c = match why {
            Refused::PendingFull => &self.pending_full,
            Refused::PerAddress => &self.per_address,
            Refused::Rate => &self.rate,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.count_address(ip);
    }

    /// An SSID refused because all session slots are taken.
    pub fn session_full(&self, ip: Option<IpAddr>) {
        self.sessions_full.fetch_add(1, Ordering::Relaxed);
        self.count_address(ip);
    }

    fn count_address(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_TRACKED || map.contains_key(&ip) {
            *map.entry(ip).or_default() += 1;
        }
    }

    /// The summary of the refusals since the last call, and resets the
    /// counts: `None` if there were none.
    pub fn take_summary(&self) -> Option<String> {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let (full, per, rate, sessions) = (
            take(&self.pending_full),
            take(&self.per_address),
            take(&self.rate),
            take(&self.sessions_full),
        );
        let by = std::mem::take(&mut *self.by_address.lock().unwrap_or_else(|p| p.into_inner()));
        let total = full + per + rate + sessions;
        if total == 0 {
            return None;
        }
        let top = by
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(ip, n)| format!("; most from {ip} ({n}), {} addresses in all", by.len()))
            .unwrap_or_default();
        Some(format!(
            "{total} connections refused: {full} with all pre-login slots taken ([rd] max_pending), \
             {per} over the per-address limit (max_pending_per_ip), {rate} over the accept rate \
             (accept_rate/accept_burst), {sessions} with all sessions busy (ESID 08, max_sessions){top}"
        ))
    }
}

/// The unit a limit applies to: an IPv4 address, or the /64 network of an
/// IPv6 address (one host usually holds a whole /64, so counting single
/// IPv6 addresses would be no limit at all).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failed logins of one address or partner.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The daemon's admission state, shared by all connections.
#[derive(Debug)]
pub struct Admission {
    pending: Arc<Semaphore>,
    max_pending_per_ip: u32,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    delay: Duration,
    delay_max: Duration,
    window: Duration,
    by_peer: Mutex<HashMap<String, Failures>>,
    by_partner: Mutex<HashMap<String, Failures>>,
    pub refused: RefusalCounts,
}

/// A connection's pre-login slot; released when dropped (SSID accepted,
/// or the connection ended).
#[derive(Debug)]
pub struct PendingSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut b = self
            .admission
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = b.get_mut(&self.ip) {
            bucket.pending = bucket.pending.saturating_sub(1);
        }
    }
}

impl Admission {
    pub fn new(rd: &RdConfig) -> Arc<Admission> {
        Arc::new(Admission {
            pending: Arc::new(Semaphore::new(
                usize::try_from(rd.max_pending).unwrap_or(usize::MAX),
            )),
            max_pending_per_ip: rd.max_pending_per_ip,
            rate: f64::from(rd.accept_rate),
            burst: f64::from(rd.accept_burst.max(1)),
            buckets: Mutex::default(),
            delay: rd.auth_failure_delay,
            delay_max: rd.auth_failure_delay_max,
            window: rd.auth_failure_window,
            by_peer: Mutex::default(),
            by_partner: Mutex::default(),
            refused: RefusalCounts::default(),
        })
    }

    /// Connections holding a pre-login slot now.
    pub fn pending(&self, max: u32) -> usize {
        usize::try_from(max)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.pending.available_permits())
    }

    /// A pre-login slot for a new connection from `ip`, or why not (the
    /// refusal is counted for the summary).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<PendingSlot, Refused> {
        let ip = address_key(ip);
        let result = self.try_admit(ip, now);
        if let Err(why) = result {
            self.refused.count(why, Some(ip));
        }
        result
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<PendingSlot, Refused> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            // Forget addresses with nothing pending and a full bucket.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.pending > 0 || b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_TRACKED {
                return Err(Refused::PendingFull);
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
            pending: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens < 1.0 {
            return Err(Refused::Rate);
        }
        bucket.tokens -= 1.0;
        if bucket.pending >= self.max_pending_per_ip {
            return Err(Refused::PerAddress);
        }
        let permit = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::PendingFull)?;
        bucket.pending += 1;
        Ok(PendingSlot {
            admission: self.clone(),
            ip,
            _permit: permit,
        })
    }

    fn bump(
        map: &Mutex<HashMap<String, Failures>>,
        key: &str,
        now: Instant,
        window: Duration,
    ) -> u32 {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, f| now.saturating_duration_since(f.last) < window);
            if map.len() >= MAX_TRACKED {
                // Bounded memory first: an untracked key pays the first
                // step (the other key's count still applies).
                return 1;
            }
        }
        let f = map.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(f.last) >= window {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        f.count
    }

    /// A refused SSID from `peer` (an address, or `isdn:<number>`)
    /// naming `partner` (`None`: an unknown code, which has no password to
    /// guess and is counted for the address only): how long to hold its
    /// answer.
    pub fn login_failed(&self, peer: &str, partner: Option<&str>, now: Instant) -> Duration {
        let a = Self::bump(&self.by_peer, peer, now, self.window);
        let b = partner.map_or(0, |p| {
            Self::bump(&self.by_partner, &p.to_ascii_uppercase(), now, self.window)
        });
        let n = a.max(b).min(32);
        self.delay
            .saturating_mul(1u32 << (n - 1).min(31))
            .min(self.delay_max.max(self.delay))
    }

    /// An accepted SSID clears the counts of its address and partner.
    pub fn login_succeeded(&self, peer: &str, partner: &str) {
        self.by_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(peer);
        self.by_partner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&partner.to_ascii_uppercase());
    }
}

/// The key of a peer as logged (`IP:port`) for the failure counts: its
/// [`address_key`]; an ISDN peer (`isdn:<number>`) as it is.
pub fn peer_host(peer: &str) -> String {
    match peer.parse::<std::net::SocketAddr>() {
        Ok(a) => address_key(a.ip()).to_string(),
        Err(_) => peer.to_owned(),
    }
}

/// Holds back what a session writes until a moment set by the
/// authenticator: the answer to a refused SSID leaves late, while the
/// protocol core stays unaware of time.
#[derive(Debug, Default)]
pub struct Gate(Mutex<Option<tokio::time::Instant>>);

impl Gate {
    /// Nothing more is written before `delay` from now.
    pub fn hold_for(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now() + delay);
    }

    fn until(&self) -> Option<tokio::time::Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A byte stream whose writes wait for its [`Gate`].
pub struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Gated<S> {
    pub fn new(inner: S, gate: Arc<Gate>) -> Gated<S> {
        Gated {
            inner,
            gate,
            sleep: None,
        }
    }

    fn poll_gate(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(until) = self.gate.until() else {
            return Poll::Ready(());
        };
        if tokio::time::Instant::now() >= until {
            self.gate.open();
            self.sleep = None;
            return Poll::Ready(());
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if sleep.deadline() != until {
            sleep.as_mut().reset(until);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.gate.open();
                self.sleep = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gated<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gated<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.poll_gate(cx).is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.poll_gate(cx).is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.poll_gate(cx).is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn admission(extra: &str) -> Arc<Admission> {
        let c = Config::parse(&format!("[rd]\n{extra}"), std::path::Path::new("/x.toml")).unwrap();
        Admission::new(&c.rd)
    }

    #[test]
    fn per_address_cap_and_pool() {
        let a = admission("max_pending = 3\nmax_pending_per_ip = 2\naccept_burst = 100\n");
        let now = Instant::now();
        let ip1: IpAddr = "127.0.0.2".parse().unwrap();
        let ip2: IpAddr = "127.0.0.3".parse().unwrap();
        let s1 = a.admit(ip1, now).unwrap();
        let _s2 = a.admit(ip1, now).unwrap();
        assert_eq!(a.admit(ip1, now).unwrap_err(), Refused::PerAddress);
        let _s3 = a.admit(ip2, now).unwrap();
        assert_eq!(a.admit(ip2, now).unwrap_err(), Refused::PendingFull);
        drop(s1);
        assert!(a.admit(ip1, now).is_ok(), "slot released");
        let summary = a.refused.take_summary().unwrap();
        assert!(summary.starts_with("2 connections refused"), "{summary}");
        assert!(a.refused.take_summary().is_none(), "counts reset");
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a = admission("max_pending_per_ip = 2\naccept_burst = 100\n");
        let now = Instant::now();
        let _s1 = a.admit("2001:db8:1:2::1".parse().unwrap(), now).unwrap();
        let _s2 = a.admit("2001:db8:1:2::ffff".parse().unwrap(), now).unwrap();
        assert_eq!(
            a.admit("2001:db8:1:2:abcd::9".parse().unwrap(), now)
                .unwrap_err(),
            Refused::PerAddress
        );
        assert!(a.admit("2001:db8:1:3::1".parse().unwrap(), now).is_ok());
        assert_eq!(
            address_key("::ffff:127.0.0.2".parse().unwrap()),
            "127.0.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn accept_rate_per_address() {
        let a = admission("accept_rate = 2\naccept_burst = 3\nmax_pending_per_ip = 100\n");
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(a.admit(ip, t0).unwrap());
        }
        assert_eq!(a.admit(ip, t0).unwrap_err(), Refused::Rate);
        // Another address is not affected.
        assert!(a.admit("127.0.0.9".parse().unwrap(), t0).is_ok());
        // Half a second later one more token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(a.admit(ip, t1).is_ok());
        assert_eq!(a.admit(ip, t1).unwrap_err(), Refused::Rate);
    }

    #[test]
    fn failed_logins_double_the_delay_per_address_and_partner() {
        let a = admission(
            "auth_failure_delay_ms = 100\nauth_failure_delay_max = 1\nauth_failure_window = 60\n",
        );
        let t = Instant::now();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(a.login_failed("127.0.0.2", Some("P1"), t)), 100);
        assert_eq!(ms(a.login_failed("127.0.0.2", Some("P2"), t)), 200);
        assert_eq!(ms(a.login_failed("127.0.0.2", Some("P3"), t)), 400);
        // Another address guessing P1 pays for P1's failures.
        assert_eq!(ms(a.login_failed("127.0.0.3", Some("p1"), t)), 200);
        for _ in 0..10 {
            a.login_failed("127.0.0.2", Some("P4"), t);
        }
        assert_eq!(
            ms(a.login_failed("127.0.0.2", Some("P5"), t)),
            1000,
            "capped"
        );
        // Forgotten after the window; cleared by a success.
        let later = t + Duration::from_secs(61);
        assert_eq!(ms(a.login_failed("127.0.0.2", Some("P6"), later)), 100);
        a.login_succeeded("127.0.0.3", "P1");
        // An unknown code counts for the address only.
        assert_eq!(ms(a.login_failed("127.0.0.9", None, later)), 100);
        assert_eq!(ms(a.login_failed("127.0.0.9", None, later)), 200);
        assert_eq!(ms(a.login_failed("127.0.0.3", Some("P1"), later)), 100);
    }
}
