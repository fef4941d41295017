//! `os4x partner ...`: the partner table from the command line. The
//! `os4x` binary mounts [`PartnerCommand`] as its `partner` subcommand.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use oftp2::value::{CipherSuite, OdetteId, Password};

use crate::config::Config;
use crate::db::Db;
use crate::partner::{
    normalize_sha256, parse_ids, Directions, Partner, PartnerError, PartnerStore,
};

/// Manage trading partners
#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Add a partner
    Add(AddArgs),
    /// List partners
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one partner
    Show {
        /// Odette ID
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Also print the passwords
        #[arg(long)]
        show_passwords: bool,
    },
    /// Remove a partner (received files and queued receipts stay)
    Remove {
        /// Odette ID
        id: String,
    },
    /// Change a partner; options not given stay as they are
    Set(SetArgs),
    /// Import partners from an OS4X installation
    ///
    /// Reads a mysqldump of OS4X's partner table (`mysqldump os4x
    /// partner > partner.sql`) or a CSV export of it with a header line,
    /// and adds each row as a partner with its route (TCP, TLS or ISDN).
    /// A row is imported whole or not at all; partners that exist
    /// already are left alone, so the import can be repeated after fixing
    /// rows. Prints what it imported, with remarks, and every row and
    /// column it could not map. Exit 1 if a row was not imported.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The OS4X dump: mysqldump (.sql) or CSV
    #[arg(long, value_name = "DUMP")]
    os4x: PathBuf,
    /// Show what would be imported; change nothing
    #[arg(long)]
    dry_run: bool,
    /// ISDN controller for partners OS4X dials by ISDN (addresstype 2)
    #[arg(long, value_name = "N", default_value_t = 1)]
    isdn_controller: u32,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Odette ID (SSIDCODE), e.g. O0013000000PARTNER
    id: String,
    /// Password the partner sends us
    #[arg(long, value_name = "PASSWORD")]
    password_in: String,
    /// Password we send the partner
    #[arg(long, value_name = "PASSWORD")]
    password_out: String,
    /// Name for humans
    #[arg(long, default_value = "")]
    name: String,
    /// Allowed directions seen from us: both, send (we only send) or
    /// receive (we only receive)
    #[arg(long, default_value = "both", value_parser = parse_direction)]
    direction: Directions,
    /// Refuse sessions over plain TCP
    #[arg(long)]
    tls_required: bool,
    /// Require a TLS client certificate (CA-verified or pinned)
    #[arg(long)]
    client_cert_required: bool,
    /// Pin the client certificate: SHA-256 of its DER, hex (colons allowed)
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    client_cert_sha256: Option<String>,
    /// The partner's own CA: PEM bundle its TLS client certificate must
    /// chain to, instead of [tls] client_ca. The path is stored and the
    /// file read at each of the partner's sessions
    #[arg(long, value_name = "PATH")]
    client_ca: Option<PathBuf>,
    /// Shell command run after a file from this partner was stored
    /// (OS4X_FILE, OS4X_PARTNER, OS4X_DATASET, ... in the environment)
    #[arg(long, value_name = "COMMAND")]
    post_receive: Option<String>,
    /// Add the partner disabled
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    limits: LimitsArgs,
}

/// OFTP2 security of a partner (RFC 5024 sections 4.2.3 and 6).
#[derive(Debug, Args)]
pub struct SecurityArgs {
    /// The partner's X.509 certificate (PEM or DER, RSA): verifies its
    /// signed files and receipts, encrypts files to it, challenges it in
    /// secure authentication. The path is stored and the file read at
    /// session time; "" removes it
    // OsString: clap's PathBuf parser refuses the empty value.
    #[arg(long, value_name = "PATH")]
    certificate: Option<std::ffi::OsString>,
    /// Sign files we send the partner (CMS SignedData, our [security] key)
    #[arg(long, value_name = "BOOL")]
    sign: Option<bool>,
    /// Encrypt files we send the partner to its certificate
    #[arg(long, value_name = "BOOL")]
    encrypt: Option<bool>,
    /// Compress files we send the partner (CMS CompressedData, zlib)
    #[arg(long, value_name = "BOOL")]
    compress: Option<bool>,
    /// Ask the partner for signed EERPs (SFIDSIGN)
    #[arg(long, value_name = "BOOL")]
    signed_eerp: Option<bool>,
    /// Cipher suite (SFIDCIPH), Odette's list: 01 3DES/SHA-1, 02
    /// AES-256/SHA-1 (default), 03 3DES/SHA-256, 04 AES-256/SHA-256, 05
    /// 3DES/SHA-512, 06 AES-256/SHA-512, 07 AES-256/SHA3-512
    #[arg(long, value_name = "NN", value_parser = parse_suite)]
    cipher_suite: Option<CipherSuite>,
    /// Secure authentication (SSIDAUTH, AUCH/AURP) in every session with
    /// the partner; needs --certificate and our [security] key pair
    #[arg(long, value_name = "BOOL")]
    secure_auth: Option<bool>,
    /// Refuse unsigned files from the partner (SFNA 20)
    #[arg(long, value_name = "BOOL")]
    require_signed: Option<bool>,
    /// Refuse unencrypted files from the partner (SFNA 17)
    #[arg(long, value_name = "BOOL")]
    require_encrypted: Option<bool>,
}

/// What a partner may do beyond its own files, and how much it may store.
#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// Originators (SFIDORIG) the partner may send files for besides
    /// itself, comma separated (a hub forwarding others' files); "" allows
    /// only the partner itself (SFNA 03 for others)
    #[arg(long, value_name = "IDS")]
    originators: Option<String>,
    /// Other partners that may deliver EERPs/NERPs for files we send to
    /// this partner, comma separated; "" allows only the partner itself
    #[arg(long, value_name = "IDS")]
    receipts_via: Option<String>,
    /// Most octets the partner's inbox directory may hold (received files
    /// not yet taken away plus partial ones), e.g. 500M, 20G; "none"
    /// removes the quota
    #[arg(long, value_name = "SIZE")]
    inbox_quota: Option<String>,
}

/// Parses a size: octets, or with a K/M/G/T suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{s:?}: unknown unit; use K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 1048576, 500M or 20G"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
}

fn apply_limits(p: &mut Partner, a: LimitsArgs) -> Result<(), String> {
    if let Some(v) = a.originators {
        p.originators = parse_ids(&v).map_err(|e| format!("--originators: {e}"))?;
    }
    if let Some(v) = a.receipts_via {
        p.receipts_via = parse_ids(&v).map_err(|e| format!("--receipts-via: {e}"))?;
    }
    if let Some(v) = a.inbox_quota {
        p.inbox_quota = match v.trim() {
            "" | "none" => None,
            q => Some(parse_size(q).map_err(|e| format!("--inbox-quota: {e}"))?),
        };
    }
    Ok(())
}

fn parse_suite(s: &str) -> Result<CipherSuite, String> {
    let code: u8 = s
        .parse()
        .map_err(|_| format!("{s:?}: expected a suite code 01..07"))?;
    let suite = CipherSuite::from_code(code);
    oftp2::security::suite_algorithms(suite).map_err(|e| e.to_string())?;
    Ok(suite)
}

/// Checks that `path` holds a usable (RSA) certificate and makes it
/// absolute.
fn certificate_path(path: &Path) -> Result<PathBuf, String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("--certificate {}: {e}", path.display()))?;
    if absolute.to_str().is_none() {
        return Err(format!(
            "--certificate {}: the path is not UTF-8; give the file a UTF-8 name",
            path.display()
        ));
    }
    let bytes = std::fs::read(&absolute)
        .map_err(|e| format!("--certificate {}: {e}", absolute.display()))?;
    let cert = oftp2::security::Certificate::from_pem_or_der(&bytes)
        .map_err(|e| format!("--certificate {}: {e}", absolute.display()))?;
    cert.rsa_public_key()
        .map_err(|e| format!("--certificate {}: {e}", absolute.display()))?;
    Ok(absolute)
}

/// Applies `a` to `p` and checks the combination.
fn apply_security(p: &mut Partner, a: SecurityArgs) -> Result<(), String> {
    match a.certificate {
        Some(v) if v.is_empty() => p.certificate = None,
        Some(v) => p.certificate = Some(certificate_path(Path::new(&v))?),
        None => {}
    }
    let sec = &mut p.security;
    if let Some(v) = a.sign {
        sec.sign = v;
    }
    if let Some(v) = a.encrypt {
        sec.encrypt = v;
    }
    if let Some(v) = a.compress {
        sec.compress = v;
    }
    if let Some(v) = a.signed_eerp {
        sec.signed_eerp = v;
    }
    if let Some(v) = a.cipher_suite {
        sec.cipher_suite = v;
    }
    if let Some(v) = a.secure_auth {
        sec.secure_auth = v;
    }
    if let Some(v) = a.require_signed {
        sec.require_signed = v;
    }
    if let Some(v) = a.require_encrypted {
        sec.require_encrypted = v;
    }
    if p.certificate.is_none() && (p.security.encrypt || p.security.secure_auth) {
        return Err(
            "--encrypt and --secure-auth need the partner's certificate (--certificate PATH)"
                .into(),
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Odette ID
    id: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, value_name = "PASSWORD")]
    password_in: Option<String>,
    #[arg(long, value_name = "PASSWORD")]
    password_out: Option<String>,
    #[arg(long, value_parser = parse_direction)]
    direction: Option<Directions>,
    #[arg(long, value_name = "BOOL")]
    tls_required: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    client_cert_required: Option<bool>,
    /// Pinned certificate fingerprint; "" removes the pin
    #[arg(long, value_name = "HEX")]
    client_cert_sha256: Option<String>,
    /// The partner's own client CA (PEM bundle); "" removes it, so
    /// [tls] client_ca applies again
    // OsString: clap's PathBuf parser refuses the empty value.
    #[arg(long, value_name = "PATH")]
    client_ca: Option<std::ffi::OsString>,
    /// Post-receive command; "" removes it
    #[arg(long, value_name = "COMMAND")]
    post_receive: Option<String>,
    #[arg(long, value_name = "BOOL")]
    enabled: Option<bool>,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    limits: LimitsArgs,
}

fn parse_direction(s: &str) -> Result<Directions, String> {
    s.parse()
}

fn parse_sha256(s: &str) -> Result<String, String> {
    normalize_sha256(s).ok_or_else(|| "expected 64 hex digits (SHA-256), colons allowed".into())
}

/// Checks that `path` is a PEM bundle of CA certificates the TLS daemon
/// can use, and makes it absolute (the daemon's working directory is not
/// the admin's). Symbolic links are kept, so a link switched to a new
/// bundle takes effect.
fn client_ca_path(path: &Path) -> Result<PathBuf, String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("--client-ca {}: {e}", path.display()))?;
    if absolute.to_str().is_none() {
        return Err(format!(
            "--client-ca {}: the path is not UTF-8; give the file a UTF-8 name",
            path.display()
        ));
    }
    crate::tls::ClientCa::from_pem_file("--client-ca", &absolute).map_err(|e| {
        format!("{e}; give a PEM file with the CA certificate(s) that issue the partner's client certificates")
    })?;
    Ok(absolute)
}

fn password(what: &str, s: &str) -> Result<Password, String> {
    Password::new_relaxed(s).map_err(|e| format!("{what}: {e}"))
}

use crate::usecase::Error as Failure;

fn usage(msg: String) -> Failure {
    Failure::Invalid(msg)
}

/// Runs `os4x partner ...` against the configuration's database.
pub fn run(config: &Config, cmd: PartnerCommand) -> Result<(), Failure> {
    if let PartnerCommand::Import(a) = cmd {
        return import_os4x(config, a);
    }
    let db = Db::open(&config.database)?;
    partner(&PartnerStore::new(db), cmd)
}

/// `os4x partner import --os4x DUMP`.
fn import_os4x(config: &Config, a: ImportArgs) -> Result<(), Failure> {
    let local = config.local.require_id().map_err(Failure::NotConfigured)?;
    let bytes =
        std::fs::read(&a.os4x).map_err(|e| usage(format!("--os4x {}: {e}", a.os4x.display())))?;
    // mysqldump writes the table's charset; OS4X tables are latin1 or
    // UTF-8. Latin-1 is taken byte for byte when the file is not UTF-8.
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    let table = crate::os4x_import::read_dump(&text)
        .map_err(|e| usage(format!("--os4x {}: {e}", a.os4x.display())))?;
    let db = Db::open(&config.database)?;
    let report = crate::os4x_import::import(&db, &table, &local, a.isdn_controller, a.dry_run)
        .map_err(|e| Failure::Store(e.to_string()))?;
    print!("{}", report.render(a.dry_run));
    if report.skipped.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "{} row(s) not imported (listed above); fix them in the dump and run the import again: partners already imported are skipped",
            report.skipped.len()
        )))
    }
}

fn partner(store: &PartnerStore, cmd: PartnerCommand) -> Result<(), Failure> {
    match cmd {
        // Needs the configuration (our Odette ID): handled by `run`.
        PartnerCommand::Import(_) => {
            return Err(usage("partner import is run with the configuration".into()))
        }
        PartnerCommand::Add(a) => {
            let id =
                OdetteId::new(&a.id).map_err(|e| usage(format!("Odette ID {:?}: {e}", a.id)))?;
            let mut p = Partner::new(
                id,
                password("--password-in", &a.password_in).map_err(usage)?,
                password("--password-out", &a.password_out).map_err(usage)?,
            );
            p.name = a.name;
            p.directions = a.direction;
            p.tls_required = a.tls_required;
            p.client_cert_required = a.client_cert_required;
            p.client_cert_sha256 = a.client_cert_sha256;
            p.client_ca = a
                .client_ca
                .as_deref()
                .map(client_ca_path)
                .transpose()
                .map_err(usage)?;
            p.post_receive = a.post_receive.filter(|c| !c.is_empty());
            p.enabled = !a.disabled;
            apply_security(&mut p, a.security).map_err(usage)?;
            apply_limits(&mut p, a.limits).map_err(usage)?;
            store.add(&p)?;
            println!("partner {} added", p.id);
            if p.client_ca.is_some() {
                reload_hint();
            }
        }
        PartnerCommand::List { json } => {
            let all = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else {
                println!(
                    "{:<25} {:<8} {:<7} {:<4} {:<11} NAME",
                    "ODETTE ID", "DIR", "ENABLED", "TLS", "CERT"
                );
                for p in all {
                    println!(
                        "{:<25} {:<8} {:<7} {:<4} {:<11} {}",
                        p.id.as_str(),
                        p.directions.as_str(),
                        yes(p.enabled),
                        yes(p.tls_required),
                        cert_column(&p),
                        p.name
                    );
                }
            }
        }
        PartnerCommand::Show {
            id,
            json,
            show_passwords,
        } => {
            let p = store.get(&id)?.ok_or(PartnerError::NotFound(id))?;
            if json {
                let mut v = serde_json::to_value(&p).unwrap_or_default();
                if show_passwords {
                    v["password_in"] = p.password_in.as_str().into();
                    v["password_out"] = p.password_out.as_str().into();
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let pw = |x: &Password| {
                    if show_passwords {
                        x.as_str().to_owned()
                    } else {
                        "********".into()
                    }
                };
                println!("odette_id:            {}", p.id);
                println!("name:                 {}", p.name);
                println!("password_in:          {}", pw(&p.password_in));
                println!("password_out:         {}", pw(&p.password_out));
                println!("direction:            {}", p.directions);
                println!("enabled:              {}", yes(p.enabled));
                println!("tls_required:         {}", yes(p.tls_required));
                println!("client_cert_required: {}", yes(p.client_cert_required));
                println!(
                    "client_cert_sha256:   {}",
                    p.client_cert_sha256.as_deref().unwrap_or("-")
                );
                println!(
                    "client_ca:            {}",
                    p.client_ca
                        .as_deref()
                        .map_or_else(|| "-".into(), |c| c.display().to_string())
                );
                println!(
                    "post_receive:         {}",
                    p.post_receive.as_deref().unwrap_or("-")
                );
                println!(
                    "certificate:          {}",
                    p.certificate
                        .as_deref()
                        .map_or_else(|| "-".into(), |c| c.display().to_string())
                );
                let sec = &p.security;
                println!(
                    "file services:        sign {}, encrypt {}, compress {}, signed EERP {}, cipher suite {:02}",
                    yes(sec.sign),
                    yes(sec.encrypt),
                    yes(sec.compress),
                    yes(sec.signed_eerp),
                    sec.cipher_suite.code()
                );
                println!("secure_auth:          {}", yes(sec.secure_auth));
                let ids = |v: &[OdetteId]| {
                    if v.is_empty() {
                        "-".to_owned()
                    } else {
                        v.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(",")
                    }
                };
                println!("originators:          {}", ids(&p.originators));
                println!("receipts_via:         {}", ids(&p.receipts_via));
                println!(
                    "inbox_quota:          {}",
                    p.inbox_quota.map_or_else(|| "-".into(), |q| q.to_string())
                );
                println!(
                    "incoming files:       signature required {}, encryption required {}",
                    yes(sec.require_signed),
                    yes(sec.require_encrypted)
                );
            }
        }
        PartnerCommand::Remove { id } => {
            store.remove(&id)?;
            println!("partner {id} removed");
        }
        PartnerCommand::Set(s) => {
            let mut p = store
                .get(&s.id)?
                .ok_or_else(|| PartnerError::NotFound(s.id.clone()))?;
            if let Some(v) = s.name {
                p.name = v;
            }
            if let Some(v) = s.password_in {
                p.password_in = password("--password-in", &v).map_err(usage)?;
            }
            if let Some(v) = s.password_out {
                p.password_out = password("--password-out", &v).map_err(usage)?;
            }
            if let Some(v) = s.direction {
                p.directions = v;
            }
            if let Some(v) = s.tls_required {
                p.tls_required = v;
            }
            if let Some(v) = s.client_cert_required {
                p.client_cert_required = v;
            }
            if let Some(v) = s.client_cert_sha256 {
                p.client_cert_sha256 = if v.is_empty() {
                    None
                } else {
                    Some(
                        parse_sha256(&v)
                            .map_err(|e| usage(format!("--client-cert-sha256: {e}")))?,
                    )
                };
            }
            let new_ca = match s.client_ca {
                Some(v) if v.as_os_str().is_empty() => Some(None),
                Some(v) => Some(Some(client_ca_path(Path::new(&v)).map_err(usage)?)),
                None => None,
            };
            if let Some(v) = s.post_receive {
                p.post_receive = Some(v).filter(|c| !c.is_empty());
            }
            if let Some(v) = s.enabled {
                p.enabled = v;
            }
            apply_security(&mut p, s.security).map_err(usage)?;
            apply_limits(&mut p, s.limits).map_err(usage)?;
            let ca_changed = new_ca.as_ref().is_some_and(|ca| *ca != p.client_ca);
            if let Some(ca) = new_ca {
                p.client_ca = ca;
            }
            store.update(&p)?;
            println!("partner {} updated", p.id);
            if ca_changed {
                reload_hint();
            }
        }
    }
    Ok(())
}

/// The CERT column of `os4x partner list`: `req` (required), `ca` (own
/// CA), `pin` (pinned), joined with `+`; `-` for none.
fn cert_column(p: &Partner) -> String {
    let parts: Vec<&str> = [
        (p.client_cert_required, "req"),
        (p.client_ca.is_some(), "ca"),
        (p.client_cert_sha256.is_some(), "pin"),
    ]
    .into_iter()
    .filter_map(|(on, s)| on.then_some(s))
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("+")
    }
}

/// Certificates are checked against the file at once; only the list of
/// CAs the TLS daemon announces in its handshake waits for a reload.
fn reload_hint() {
    eprintln!(
        "note: run `systemctl reload os4xrd-tls.service` (SIGHUP to os4xrd_tcpip_tls) so the TLS handshake \
         also announces this CA to the partner's client"
    );
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
