//! CRLs: downloaded by `os4xsqd` from the CRL distribution points of
//! partner and CA certificates, kept in `[security] crl_dir`, read by every
//! daemon into its trust store.
//!
//! A download replaces the cached file atomically (write to a temporary
//! file, fsync, rename, fsync the directory), and only after the CRL parsed
//! and its signature verified with a configured CA: a failed or forged
//! download never removes revocations already known. Only `http://`
//! distribution points are fetched (RFC 5280 section 4.2.1.13 makes HTTP
//! the usual one; LDAP points are logged and skipped).
//!
//! HTTP is done with `ureq` without TLS features: a small, maintained,
//! blocking client, run on a blocking thread of the daemon's runtime.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oftp2::security::{Certificate, Crl, TrustStore};

use super::Security;

/// Largest CRL accepted from a distribution point.
pub const MAX_CRL_LEN: u64 = 32 << 20;

/// Timeout of one download (connect and transfer).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Suffix of cached CRL files.
const SUFFIX: &str = "crl";

/// What identifies the cache directory's content: names, mtimes, sizes.
pub(crate) fn dir_stamp(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stamp: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == SUFFIX))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), m.modified().ok()?, m.len()))
        })
        .collect();
    stamp.sort();
    stamp
}

/// The CRLs in `dir` whose signature verifies with a CA of `store`.
pub(crate) fn load_dir(dir: &Path, store: &TrustStore) -> Vec<Crl> {
    let mut out = Vec::new();
    for (path, _, _) in dir_stamp(dir) {
        let crl = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| Crl::from_pem_or_der(&b).map_err(|e| e.to_string()));
        match crl {
            Ok(crl) => {
                let mut check = store.clone();
                match check.add_crl(crl.clone()) {
                    Ok(()) => {
                        if crl.next_update().is_some_and(|n| n < SystemTime::now()) {
                            // Still used: an old CRL revokes no less.
                            tracing::warn!(file = %path.display(), issuer = %crl.issuer(), "cached CRL is past its nextUpdate; check that os4xsqd can reach the distribution point");
                        }
                        out.push(crl)
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "cached CRL ignored")
                    }
                }
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cached CRL unreadable"),
        }
    }
    out
}

/// The CRL files of a [`dir_stamp`] as rustls takes them.
pub(crate) fn load_tls_dir(
    stamp: &[(PathBuf, SystemTime, u64)],
) -> Vec<rustls::pki_types::CertificateRevocationListDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateRevocationListDer as Der;
    let mut out = Vec::new();
    for (path, _, _) in stamp {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cached CRL unreadable");
                continue;
            }
        };
        let der = if bytes.starts_with(b"-----") {
            match Der::from_pem_slice(&bytes) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cached CRL is not PEM; ignored");
                    continue;
                }
            }
        } else {
            Der::from(bytes)
        };
        match webpki::OwnedCertRevocationList::from_der(der.as_ref()) {
            Ok(_) => out.push(der),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = ?e, "cached CRL unusable for TLS client certificates; ignored")
            }
        }
    }
    out
}

/// The cache file of the CRL from `url`.
pub fn cache_path(dir: &Path, url: &str) -> PathBuf {
    let hash = crate::partner::sha256_hex(url.as_bytes());
    dir.join(format!("{}.{SUFFIX}", &hash[..32]))
}

/// Outcome of one refresh.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Distribution points fetched and stored.
    pub stored: Vec<String>,
    /// Distribution points that failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// The distribution points of the enabled partners' certificates and of
/// the CAs, without duplicates.
pub fn distribution_points(security: &Security) -> Vec<String> {
    let mut certs: Vec<Certificate> = security.cas().to_vec();
    match security.partners().list() {
        Ok(partners) => {
            for p in partners.iter().filter(|p| p.enabled) {
                let Some(path) = &p.certificate else { continue };
                match std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| Certificate::from_pem_or_der(&b).map_err(|e| e.to_string()))
                {
                    Ok(c) => certs.push(c),
                    Err(e) => {
                        tracing::warn!(partner = %p.id, file = %path.display(), error = %e, "partner certificate unreadable; its CRL is not fetched")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list partners for CRL download"),
    }
    let mut urls: Vec<String> = Vec::new();
    for c in &certs {
        for u in c.crl_distribution_points() {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    urls
}

/// Downloads every distribution point once and stores what verifies.
/// Blocking: run it on a blocking thread.
pub fn refresh(security: &Security) -> Refresh {
    let mut out = Refresh::default();
    let urls = distribution_points(security);
    if urls.is_empty() {
        return out;
    }
    let dir = &security.config().crl_dir;
    if let Err(e) = std::fs::create_dir_all(dir) {
        for u in urls {
            out.failed
                .push((u, format!("cannot create {}: {e}", dir.display())));
        }
        return out;
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(DOWNLOAD_TIMEOUT)
        .redirects(3)
        .build();
    let mut store = TrustStore::new();
    for ca in security.cas() {
        store.add_ca(ca.clone());
    }
    for url in urls {
        match fetch_one(&agent, &store, dir, &url) {
            Ok(revoked) => {
                tracing::info!(url, revoked, "CRL downloaded and stored");
                out.stored.push(url);
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "CRL download failed; the cached CRL (if any) stays in use");
                out.failed.push((url, e));
            }
        }
    }
    out
}

fn fetch_one(
    agent: &ureq::Agent,
    store: &TrustStore,
    dir: &Path,
    url: &str,
) -> Result<usize, String> {
    if !url.starts_with("http://") {
        return Err("only http:// distribution points are fetched".into());
    }
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_CRL_LEN + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the response: {e}"))?;
    if body.len() as u64 > MAX_CRL_LEN {
        return Err(format!("larger than {MAX_CRL_LEN} octets"));
    }
    let crl = Crl::from_pem_or_der(&body).map_err(|e| e.to_string())?;
    let revoked = crl.revoked_count();
    if store.cas().is_empty() {
        return Err("no [security] ca_file: a CRL cannot be verified, so it is not used".into());
    }
    store
        .clone()
        .add_crl(crl)
        .map_err(|e| format!("CRL refused: {e}"))?;
    write_atomically(&cache_path(dir, url), &body)
        .map_err(|e| format!("cannot store it in {}: {e}", dir.display()))?;
    Ok(revoked)
}

/// Replaces `path` with `data`: temporary file, fsync, rename, fsync dir.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The CRL refresh loop of `os4xsqd`: once at start, then every
/// `[security] crl_refresh`. Does nothing without distribution points.
pub async fn run(security: std::sync::Arc<Security>) {
    if security.cas().is_empty() {
        // A CRL cannot be verified without its CA, so none is used.
        tracing::info!("no [security] ca_file: CRLs are not downloaded or checked");
        return;
    }
    let mut tick = tokio::time::interval(security.config().crl_refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = security.clone();
        match tokio::task::spawn_blocking(move || refresh(&s)).await {
            Ok(r) if !r.stored.is_empty() || !r.failed.is_empty() => {
                tracing::debug!(
                    stored = r.stored.len(),
                    failed = r.failed.len(),
                    "CRL refresh done"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "CRL refresh task failed"),
        }
    }
}
