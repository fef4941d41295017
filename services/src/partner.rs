//! Trading partners: who may connect, with which passwords, in which
//! directions, under which TLS requirements, and what to run after a file
//! from them arrived. Stored in `os4x_partners`, managed with
//! `os4x partner ...`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use oftp2::security::file::FilePolicy;
use oftp2::value::{CipherSuite, OdetteId, Password};
use os4x_store::sql::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::db::{unix_now, Db, DbError};

/// Which file directions are allowed with a partner, seen from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Directions {
    /// We send to and receive from the partner.
    Both,
    /// We only send to the partner.
    Send,
    /// We only receive from the partner.
    Receive,
}

impl Directions {
    pub fn as_str(self) -> &'static str {
        match self {
            Directions::Both => "both",
            Directions::Send => "send",
            Directions::Receive => "receive",
        }
    }

    /// Whether the partner may send files to us.
    pub fn may_receive(self) -> bool {
        matches!(self, Directions::Both | Directions::Receive)
    }

    /// Whether we may send files to the partner.
    pub fn may_send(self) -> bool {
        matches!(self, Directions::Both | Directions::Send)
    }
}

impl fmt::Display for Directions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Directions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "both" => Ok(Directions::Both),
            "send" => Ok(Directions::Send),
            "receive" => Ok(Directions::Receive),
            other => Err(format!(
                "unknown direction {other:?}; use both, send or receive"
            )),
        }
    }
}

/// One trading partner.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Partner {
    /// Odette identification code (SSIDCODE).
    #[serde(serialize_with = "ser_display")]
    pub id: OdetteId,
    /// Free-text name for admins.
    pub name: String,
    /// The password the partner must send us in its SSID.
    #[serde(skip)]
    pub password_in: Password,
    /// The password we send the partner.
    #[serde(skip)]
    pub password_out: Password,
    pub directions: Directions,
    /// Sessions over plain TCP are refused.
    pub tls_required: bool,
    /// A TLS client certificate is required (CA-verified, or matching
    /// [`Partner::client_cert_sha256`]).
    pub client_cert_required: bool,
    /// Pinned client certificate: lowercase hex SHA-256 of its DER.
    pub client_cert_sha256: Option<String>,
    /// The partner's own CA: absolute path of a PEM bundle its client
    /// certificate must chain to, instead of `[tls] client_ca`. Read at
    /// each of the partner's sessions, so a replaced file counts at once.
    pub client_ca: Option<PathBuf>,
    /// Shell command run after a file from this partner was stored.
    pub post_receive: Option<String>,
    pub enabled: bool,
    /// The partner's X.509 certificate (absolute path, PEM or DER), read
    /// at session time: it verifies the partner's signed files and
    /// receipts, files for the partner are encrypted to it, and secure
    /// authentication challenges the partner with it.
    pub certificate: Option<PathBuf>,
    /// File services for files we send the partner, and the secure
    /// authentication requirement.
    pub security: SecurityPolicy,
    /// Originators (SFIDORIG) the partner may send files for besides
    /// itself: a hub forwarding files of others. Empty: only itself.
    #[serde(serialize_with = "ser_ids")]
    pub originators: Vec<OdetteId>,
    /// Other partners that may deliver receipts (EERP/NERP) for files we
    /// sent to this partner (a receipt routed back another way). Empty:
    /// only this partner.
    #[serde(serialize_with = "ser_ids")]
    pub receipts_via: Vec<OdetteId>,
    /// Octets the partner's inbox directory may hold (files not yet taken
    /// away plus partial files); `None`: no quota.
    pub inbox_quota: Option<u64>,
}

/// What a partner's sessions and outgoing files get (RFC 5024 sections
/// 4.2.3 and 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecurityPolicy {
    /// Sign outgoing files with our key (CMS SignedData).
    pub sign: bool,
    /// Encrypt outgoing files to the partner's certificate.
    pub encrypt: bool,
    /// Compress outgoing files (CMS CompressedData, zlib).
    pub compress: bool,
    /// Ask the partner for signed EERPs (SFIDSIGN).
    pub signed_eerp: bool,
    /// SFIDCIPH for signed/encrypted files, Odette's list: 01 3DES/SHA-1,
    /// 02 AES-256/SHA-1, 03 3DES/SHA-256, 04 AES-256/SHA-256, 05
    /// 3DES/SHA-512, 06 AES-256/SHA-512, 07 AES-256/SHA3-512.
    #[serde(serialize_with = "ser_suite")]
    pub cipher_suite: CipherSuite,
    /// Secure authentication (SSIDAUTH, AUCH/AURP) in every session.
    pub secure_auth: bool,
    /// Refuse unsigned files from the partner (SFNA 20).
    pub require_signed: bool,
    /// Refuse unencrypted files from the partner (SFNA 17).
    pub require_encrypted: bool,
}

impl Default for SecurityPolicy {
    /// Nothing: plain files, no secure authentication; suite 02 when
    /// services are switched on.
    fn default() -> Self {
        SecurityPolicy {
            sign: false,
            encrypt: false,
            compress: false,
            signed_eerp: false,
            cipher_suite: CipherSuite::Aes256RsaSha1,
            secure_auth: false,
            require_signed: false,
            require_encrypted: false,
        }
    }
}

impl SecurityPolicy {
    /// What incoming files must have.
    pub fn receive_policy(&self) -> oftp2::security::file::ReceivePolicy {
        oftp2::security::file::ReceivePolicy {
            require_signed: self.require_signed,
            require_encrypted: self.require_encrypted,
            ..Default::default()
        }
    }

    /// The file services for one outgoing file.
    pub fn file_policy(&self) -> FilePolicy {
        FilePolicy {
            sign: self.sign,
            compress: self.compress,
            encrypt: self.encrypt,
            suite: self.cipher_suite,
            signed_eerp: self.signed_eerp,
        }
    }
}

fn ser_suite<S: serde::Serializer>(v: &CipherSuite, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{:02}", v.code()))
}

fn ser_ids<S: serde::Serializer>(v: &[OdetteId], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|id| id.as_str()))
}

/// A list of Odette IDs as stored: space separated.
fn ids_text(ids: &[OdetteId]) -> Option<String> {
    (!ids.is_empty()).then(|| ids.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(" "))
}

/// Parses a list of Odette IDs separated by spaces or commas (as stored,
/// or as given on the command line).
pub fn parse_ids(text: &str) -> Result<Vec<OdetteId>, String> {
    let mut out: Vec<OdetteId> = Vec::new();
    for part in text.split([',', ' ', '\n', '\t']).filter(|p| !p.is_empty()) {
        let id = OdetteId::new(part).map_err(|e| format!("Odette ID {part:?}: {e}"))?;
        if !out.iter().any(|o| o.eq_ignore_case(&id)) {
            out.push(id);
        }
    }
    Ok(out)
}

fn ser_display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl fmt::Debug for Partner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partner")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("directions", &self.directions)
            .field("tls_required", &self.tls_required)
            .field("client_cert_required", &self.client_cert_required)
            .field("client_ca", &self.client_ca)
            .field("enabled", &self.enabled)
            .field("certificate", &self.certificate)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl Partner {
    /// A new enabled partner allowed in both directions, without TLS
    /// requirements.
    pub fn new(id: OdetteId, password_in: Password, password_out: Password) -> Partner {
        Partner {
            id,
            name: String::new(),
            password_in,
            password_out,
            directions: Directions::Both,
            tls_required: false,
            client_cert_required: false,
            client_cert_sha256: None,
            client_ca: None,
            post_receive: None,
            enabled: true,
            certificate: None,
            security: SecurityPolicy::default(),
            originators: Vec::new(),
            receipts_via: Vec::new(),
            inbox_quota: None,
        }
    }

    /// Whether the partner may send us a file whose SFIDORIG is `id`:
    /// its own, or one of [`Partner::originators`].
    pub fn may_originate(&self, id: &OdetteId) -> bool {
        id.eq_ignore_case(&self.id) || self.originators.iter().any(|o| o.eq_ignore_case(id))
    }

    /// Whether partner `from` may deliver receipts for files we sent to
    /// this partner.
    pub fn accepts_receipts_from(&self, from: &OdetteId) -> bool {
        from.eq_ignore_case(&self.id) || self.receipts_via.iter().any(|o| o.eq_ignore_case(from))
    }

    /// Whether `password` is the one this partner must send. Compared
    /// without early exit so timing does not reveal a prefix.
    pub fn password_matches(&self, password: &Password) -> bool {
        let (a, b) = (self.password_in.padded(), password.padded());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// A partner operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("partner {0} is not configured; list partners with `os4x partner list`")]
    NotFound(String),
    #[error("partner {0} already exists; change it with `os4x partner set`")]
    Exists(String),
    #[error("stored partner {id}: {message}; fix it with `os4x partner set`")]
    Corrupt { id: String, message: String },
    #[error("partner {id}: {message}")]
    Invalid { id: String, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The partner table.
#[derive(Debug, Clone)]
pub struct PartnerStore {
    db: Db,
}

const COLUMNS: &str = "odette_id, name, password_in, password_out, direction, tls_required, \
     client_cert_required, client_cert_sha256, post_receive, enabled, client_ca, certificate, \
     sign_files, encrypt_files, compress_files, signed_eerp, cipher_suite, secure_auth, \
     require_signed, require_encrypted, originators, receipts_via, inbox_quota";

impl PartnerStore {
    pub fn new(db: Db) -> PartnerStore {
        PartnerStore { db }
    }

    /// Looks a partner up by Odette ID, ignoring letter case (some
    /// partners send lowercase codes).
    pub fn get(&self, id: &str) -> Result<Option<Partner>, PartnerError> {
        let conn = self.db.lock();
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM os4x_partners WHERE odette_id = ?1"),
                [id],
                |r| Ok(from_row(r)),
            )
            .optional()
            .map_err(|e| self.db.error(e))?;
        row.transpose()
    }

    /// All partners, ordered by Odette ID.
    pub fn list(&self) -> Result<Vec<Partner>, PartnerError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM os4x_partners ORDER BY odette_id"
            ))
            .map_err(|e| self.db.error(e))?;
        let rows = stmt
            .query_map([], |r| Ok(from_row(r)))
            .map_err(|e| self.db.error(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.db.error(e))??);
        }
        Ok(out)
    }

    /// Adds a new partner.
    pub fn add(&self, p: &Partner) -> Result<(), PartnerError> {
        let conn = self.db.lock();
        let result = execute_row(
            &conn,
            &format!(
                "INSERT INTO os4x_partners ({COLUMNS}, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?12, ?12)"
            ),
            p,
        )?;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_constraint() => Err(PartnerError::Exists(p.id.to_string())),
            Err(e) => Err(self.db.error(e).into()),
        }
    }

    /// Replaces the stored values of partner `p.id`.
    pub fn update(&self, p: &Partner) -> Result<(), PartnerError> {
        let conn = self.db.lock();
        let n = execute_row(
            &conn,
            "UPDATE os4x_partners SET name = ?2, password_in = ?3, password_out = ?4, \
             direction = ?5, tls_required = ?6, client_cert_required = ?7, \
             client_cert_sha256 = ?8, post_receive = ?9, enabled = ?10, client_ca = ?11, \
             updated_at = ?12, certificate = ?13, sign_files = ?14, encrypt_files = ?15, \
             compress_files = ?16, signed_eerp = ?17, cipher_suite = ?18, secure_auth = ?19, \
             require_signed = ?20, require_encrypted = ?21, originators = ?22, \
             receipts_via = ?23, inbox_quota = ?24 \
             WHERE odette_id = ?1",
            p,
        )?
        .map_err(|e| self.db.error(e))?;
        if n == 0 {
            return Err(PartnerError::NotFound(p.id.to_string()));
        }
        Ok(())
    }

    /// Removes a partner. Received files and receipts due stay.
    pub fn remove(&self, id: &str) -> Result<(), PartnerError> {
        let conn = self.db.lock();
        let n = conn
            .execute("DELETE FROM os4x_partners WHERE odette_id = ?1", [id])
            .map_err(|e| self.db.error(e))?;
        if n == 0 {
            return Err(PartnerError::NotFound(id.to_owned()));
        }
        Ok(())
    }
}

/// The CA path as stored: SQLite TEXT holds UTF-8 only.
/// Runs `sql` with `p` bound as ?1..?11 in [`COLUMNS`] order, the
/// current time as ?12, the security columns as ?13..?21 and the limits as
/// ?22..?24: the one place that maps a partner to its row, for
/// both insert and update. The outer error is a partner that cannot be
/// stored; the inner one is SQLite's, for the caller to interpret.
fn execute_row(
    conn: &os4x_store::Connection,
    sql: &str,
    p: &Partner,
) -> Result<os4x_store::sql::Result<usize>, PartnerError> {
    let client_ca = path_text(p, "client CA", p.client_ca.as_deref())?;
    let certificate = path_text(p, "certificate", p.certificate.as_deref())?;
    let sec = &p.security;
    Ok(conn.execute(
        sql,
        params![
            p.id.as_str(),
            p.name,
            p.password_in.as_str(),
            p.password_out.as_str(),
            p.directions.as_str(),
            p.tls_required,
            p.client_cert_required,
            p.client_cert_sha256,
            p.post_receive,
            p.enabled,
            client_ca,
            unix_now(),
            certificate,
            sec.sign,
            sec.encrypt,
            sec.compress,
            sec.signed_eerp,
            sec.cipher_suite.code(),
            sec.secure_auth,
            sec.require_signed,
            sec.require_encrypted,
            ids_text(&p.originators),
            ids_text(&p.receipts_via),
            p.inbox_quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX))
        ],
    ))
}

fn path_text<'a>(
    p: &Partner,
    what: &str,
    path: Option<&'a std::path::Path>,
) -> Result<Option<&'a str>, PartnerError> {
    path.map(|path| {
        path.to_str().ok_or_else(|| PartnerError::Invalid {
            id: p.id.to_string(),
            message: format!(
                "{what} path {} is not UTF-8; give the file a UTF-8 name",
                path.display()
            ),
        })
    })
    .transpose()
}

fn from_row(r: &Row) -> Result<Partner, PartnerError> {
    let get = |i: usize| -> Result<String, PartnerError> {
        r.get::<_, String>(i).map_err(|e| PartnerError::Corrupt {
            id: r.get::<_, String>(0).unwrap_or_default(),
            message: e.to_string(),
        })
    };
    let id_text = get(0)?;
    let corrupt = |message: String| PartnerError::Corrupt {
        id: id_text.clone(),
        message,
    };
    let flag = |i: usize| r.get::<_, bool>(i).map_err(|e| corrupt(e.to_string()));
    let opt = |i: usize| {
        r.get::<_, Option<String>>(i)
            .map_err(|e| corrupt(e.to_string()))
    };
    Ok(Partner {
        id: OdetteId::new(&id_text).map_err(|e| corrupt(e.to_string()))?,
        name: get(1)?,
        password_in: Password::new_relaxed(&get(2)?)
            .map_err(|e| corrupt(format!("incoming password: {e}")))?,
        password_out: Password::new_relaxed(&get(3)?)
            .map_err(|e| corrupt(format!("outgoing password: {e}")))?,
        directions: get(4)?.parse().map_err(corrupt)?,
        tls_required: flag(5)?,
        client_cert_required: flag(6)?,
        client_cert_sha256: opt(7)?,
        post_receive: opt(8)?,
        enabled: flag(9)?,
        client_ca: opt(10)?.map(PathBuf::from),
        certificate: opt(11)?.map(PathBuf::from),
        security: SecurityPolicy {
            sign: flag(12)?,
            encrypt: flag(13)?,
            compress: flag(14)?,
            signed_eerp: flag(15)?,
            cipher_suite: CipherSuite::from_code(
                r.get::<_, u8>(16).map_err(|e| corrupt(e.to_string()))?,
            ),
            secure_auth: flag(17)?,
            require_signed: flag(18)?,
            require_encrypted: flag(19)?,
        },
        originators: parse_ids(&opt(20)?.unwrap_or_default()).map_err(corrupt)?,
        receipts_via: parse_ids(&opt(21)?.unwrap_or_default()).map_err(corrupt)?,
        inbox_quota: r
            .get::<_, Option<i64>>(22)
            .map_err(|e| corrupt(e.to_string()))?
            .map(|q| u64::try_from(q).unwrap_or(0)),
    })
}

/// Normalises a certificate fingerprint given as hex, with or without
/// `:` separators, to lowercase hex; `None` if it is not 32 octets.
pub fn normalize_sha256(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Lowercase hex SHA-256 of `der`.
pub fn sha256_hex(der: &[u8]) -> String {
    use std::fmt::Write;
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(os4x_store::testing::database_for(dir.path())).unwrap();
        let store = PartnerStore::new(db);
        let mut p = Partner::new(
            OdetteId::new("O0013000000PARTNER1").unwrap(),
            Password::new("IN").unwrap(),
            Password::new_relaxed("out").unwrap(),
        );
        p.name = "Partner One".into();
        p.client_cert_sha256 = normalize_sha256(&"AB".repeat(32));
        p.client_ca = Some(PathBuf::from("/etc/os4x/tls/partner1-ca.pem"));
        p.certificate = Some(PathBuf::from("/etc/os4x/partners/partner1.pem"));
        p.security.sign = true;
        p.security.signed_eerp = true;
        p.security.cipher_suite = CipherSuite::Other(3);
        p.originators = parse_ids("O0013000000HUBA, O0013000000HUBB").unwrap();
        p.receipts_via = parse_ids("O0013000000VAN").unwrap();
        p.inbox_quota = Some(5 << 30);
        store.add(&p).unwrap();
        assert!(p.may_originate(&OdetteId::as_received("o0013000000huba").unwrap()));
        assert!(p.may_originate(&p.id));
        assert!(!p.may_originate(&OdetteId::new("O0013000000OTHER").unwrap()));
        assert!(p.accepts_receipts_from(&OdetteId::new("O0013000000VAN").unwrap()));
        assert!(!p.accepts_receipts_from(&OdetteId::new("O0013000000HUBA").unwrap()));
        assert!(matches!(store.add(&p), Err(PartnerError::Exists(_))));
        let got = store.get("o0013000000partner1").unwrap().unwrap();
        assert_eq!(got, p);
        assert!(got.password_matches(&Password::new("IN").unwrap()));
        assert!(!got.password_matches(&Password::new("IN2").unwrap()));
        p.enabled = false;
        p.directions = Directions::Receive;
        p.client_ca = None;
        store.update(&p).unwrap();
        assert_eq!(store.list().unwrap(), vec![p.clone()]);
        store.remove("O0013000000PARTNER1").unwrap();
        assert!(store.get("O0013000000PARTNER1").unwrap().is_none());
        assert!(matches!(
            store.remove("O0013000000PARTNER1"),
            Err(PartnerError::NotFound(_))
        ));
    }

    #[test]
    fn fingerprints() {
        let colon = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        assert_eq!(normalize_sha256(&colon), Some("ab".repeat(32)));
        assert_eq!(normalize_sha256("abc"), None);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
