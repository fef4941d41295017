//! `[isdn]`: the ISDN controllers `os4xrd_capi_<n>` drives and
//! `os4xsqd` dials through.
//!
//! ```toml
//! [isdn]
//! # Compare only the last N digits of calling numbers with the partners'
//! # ISDN numbers (PBXs and networks present numbers with or without
//! # prefixes); 0 compares the whole number.
//! match_digits = 0
//!
//! [[isdn.controller]]
//! number = 0                        # os4xrd_capi_0, `os4x route set --isdn-controller 0`
//! transport = "device:/dev/capi20"  # or "remote:HOST:PORT" (remote-CAPI: FRITZ!Box 5031, rcapid 2662, capi-sim)
//! capi_controller = 1               # controller number at the transport [default: number + 1]
//! msn = ["4930100"]                 # MSNs/DDIs to accept calls for; the first is presented when dialling
//! b3 = "iso8208"                    # "iso8208" (RFC 5024 Appendix D, X.25 packet layer) or "transparent"
//! b_channels = 2                    # calls at once (2 on a basic rate interface)
//! ```

use std::fmt;
use std::path::PathBuf;

pub use capi::config::B3Mode;
use capi::config::TransportConfig;
use serde::Deserialize;

use crate::field::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsdnFile {
    match_digits: Option<u32>,
    #[serde(default)]
    controller: Vec<ControllerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerFile {
    number: u32,
    transport: String,
    capi_controller: Option<u32>,
    #[serde(default)]
    msn: Vec<String>,
    b3: Option<String>,
    b_channels: Option<u16>,
}

/// `[isdn]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IsdnConfig {
    /// Calling numbers are compared on their last this many digits (0: all).
    pub match_digits: u32,
    pub controllers: Vec<ControllerConfig>,
}

impl IsdnConfig {
    /// Controller `n` (as in `os4xrd_capi_<n>`).
    pub fn controller(&self, n: u32) -> Option<&ControllerConfig> {
        self.controllers.iter().find(|c| c.number == n)
    }
}

/// One `[[isdn.controller]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// os4x's number for it: `os4xrd_capi_<number>`.
    pub number: u32,
    pub transport: TransportKind,
    /// The CAPI controller number (1, 2, …) at the transport.
    pub capi_controller: u32,
    /// Called numbers (MSNs/DDIs) accepted; empty: every number the
    /// controller is offered.
    pub msn: Vec<String>,
    pub b3: B3Mode,
    /// Calls at once.
    pub b_channels: u16,
}

/// How the controller is reached (the file's syntax is
/// [`capi::config::TransportConfig`]'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportKind {
    /// The Linux CAPI device (`device:/dev/capi20`).
    Device(PathBuf),
    /// A remote-CAPI server (`remote:HOST:PORT`): an ISDN router on the
    /// LAN, or `capi-sim` (the exchange simulator) for tests and demos.
    Remote(String),
}

impl TransportKind {
    /// What [`capi`] connects with.
    pub fn to_capi(&self) -> TransportConfig {
        match self {
            TransportKind::Device(path) => TransportConfig::Device { path: path.clone() },
            TransportKind::Remote(addr) => TransportConfig::Remote { addr: addr.clone() },
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_capi().fmt(f)
    }
}

/// Digits only: `+49 (30) 100-0` → `49301000`.
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Whether `calling` (as the network presented it) is `configured`:
/// equal digits, or equal last `match_digits` digits when that is set.
/// Leading zeros (trunk/international prefixes) never count.
pub fn number_matches(calling: &str, configured: &str, match_digits: u32) -> bool {
    let a = digits(calling);
    let b = digits(configured);
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if match_digits == 0 {
        return a == b;
    }
    let n = match_digits as usize;
    if a.len() < n || b.len() < n {
        return a == b;
    }
    a[a.len() - n..] == b[b.len() - n..]
}

fn parse_transport(s: &str) -> Result<TransportKind, String> {
    match s.parse::<TransportConfig>().map_err(|e| e.to_string())? {
        TransportConfig::Device { path } if !path.is_absolute() => Err(format!(
            "{s:?}: the device must be an absolute path, e.g. device:/dev/capi20"
        )),
        TransportConfig::Device { path } => Ok(TransportKind::Device(path)),
        TransportConfig::Remote { addr } => Ok(TransportKind::Remote(addr)),
        TransportConfig::Simulator(_) => Err(format!("{s:?}: not a configurable transport")),
    }
}

pub fn resolve(
    file: IsdnFile,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<IsdnConfig, ConfigError> {
    let mut controllers: Vec<ControllerConfig> = Vec::new();
    for c in file.controller {
        if controllers.iter().any(|x| x.number == c.number) {
            return Err(bad(
                "isdn.controller.number",
                format!("controller {} is configured twice", c.number),
            ));
        }
        let transport =
            parse_transport(&c.transport).map_err(|m| bad("isdn.controller.transport", m))?;
        let capi_controller = c.capi_controller.unwrap_or(c.number + 1);
        if !(1..=127).contains(&capi_controller) {
            return Err(bad(
                "isdn.controller.capi_controller",
                format!("{capi_controller}: CAPI controller numbers are 1 to 127"),
            ));
        }
        let mut msn = Vec::new();
        for m in &c.msn {
            let d = digits(m);
            if d.is_empty() {
                return Err(bad("isdn.controller.msn", format!("{m:?} holds no digits")));
            }
            msn.push(d);
        }
        let b3 = match &c.b3 {
            None => B3Mode::default(),
            Some(b) => b
                .parse::<B3Mode>()
                .map_err(|e| bad("isdn.controller.b3", e.to_string()))?,
        };
        let b_channels = c.b_channels.unwrap_or(2);
        if b_channels == 0 {
            return Err(bad(
                "isdn.controller.b_channels",
                "must be at least 1".into(),
            ));
        }
        controllers.push(ControllerConfig {
            number: c.number,
            transport,
            capi_controller,
            msn,
            b3,
            b_channels,
        });
    }
    Ok(IsdnConfig {
        match_digits: file.match_digits.unwrap_or(0),
        controllers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert!(number_matches("+49 30 100", "004930100", 0));
        assert!(number_matches("030100", "30100", 0));
        assert!(!number_matches("4930100", "30100", 0));
        assert!(number_matches("4930100", "030100", 5));
        assert!(!number_matches("4930101", "4930100", 3));
        assert!(!number_matches("", "", 0));
        assert!(!number_matches("12", "112", 5));
    }

    #[test]
    fn transports() {
        assert_eq!(
            parse_transport("device:/dev/capi20").unwrap(),
            TransportKind::Device("/dev/capi20".into())
        );
        let remote = parse_transport("remote:fritz.box:5031").unwrap();
        assert_eq!(remote, TransportKind::Remote("fritz.box:5031".into()));
        assert_eq!(remote.to_string(), "remote:fritz.box:5031");
        assert!(parse_transport("remote:fritz.box").is_err());
        assert!(parse_transport("device:dev").is_err());
        assert!(parse_transport("tcp:1.2.3.4:5").is_err());
    }

    #[test]
    fn in_the_configuration_file() {
        use crate::{Config, ConfigError};
        let parse = |t: &str| Config::parse(t, std::path::Path::new("/etc/os4x/os4x.toml"));
        let c = parse(
            "[isdn]\nmatch_digits = 7\n[[isdn.controller]]\nnumber = 0\n\
             transport = \"device:/dev/capi20\"\nmsn = [\"+49 30 100\"]\n\
             [[isdn.controller]]\nnumber = 1\ntransport = \"remote:10.0.0.1:5031\"\n\
             capi_controller = 1\nb3 = \"transparent\"\nb_channels = 30\n",
        )
        .unwrap();
        assert_eq!(c.isdn.match_digits, 7);
        let c0 = c.isdn.controller(0).unwrap();
        assert_eq!(
            (c0.capi_controller, c0.msn.clone(), c0.b3, c0.b_channels),
            (1, vec!["4930100".to_owned()], B3Mode::Iso8208, 2)
        );
        let c1 = c.isdn.controller(1).unwrap();
        assert_eq!((c1.capi_controller, c1.b3), (1, B3Mode::Transparent));
        assert!(c.isdn.controller(2).is_none());
        assert!(parse("").unwrap().isdn.controllers.is_empty());

        let key = |t: &str| match parse(t) {
            Err(ConfigError::Key { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        let one = "[[isdn.controller]]\nnumber = 0\ntransport = \"device:/dev/capi20\"\n";
        assert_eq!(key(&format!("{one}{one}")), "isdn.controller.number");
        assert_eq!(key(&format!("{one}b3 = \"x75\"\n")), "isdn.controller.b3");
        assert_eq!(
            key(&format!("{one}msn = [\"abc\"]\n")),
            "isdn.controller.msn"
        );
        assert_eq!(
            key(&format!("{one}b_channels = 0\n")),
            "isdn.controller.b_channels"
        );
        assert_eq!(
            key(&format!("{one}capi_controller = 128\n")),
            "isdn.controller.capi_controller"
        );
        assert_eq!(
            key("[[isdn.controller]]\nnumber = 0\ntransport = \"isdn0\"\n"),
            "isdn.controller.transport"
        );
        assert!(key(&format!("{one}msns = []\n")).contains("msns"));
    }
}
