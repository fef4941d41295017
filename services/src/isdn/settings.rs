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
//! transport = "capi20:/dev/capi20"  # or "sim:127.0.0.1:7000" (os4x-isdn-sim)
//! capi_controller = 1               # controller number at the transport [default: number + 1]
//! msn = ["4930100"]                 # MSNs/DDIs to accept calls for; the first is presented when dialling
//! b3 = "transparent"                # B3 protocol: "transparent" (X.75 SLP, RFC 5024 STH framing)
//! b_channels = 2                    # calls at once (2 on a basic rate interface)
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConfigError;

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

/// How the controller is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportKind {
    /// The Linux CAPI device (`capi20:/dev/capi20`).
    Device(PathBuf),
    /// A line of the ISDN exchange simulator `os4x-isdn-sim`
    /// (`sim:HOST:PORT`), for tests and demos without hardware.
    Simulator(SocketAddr),
    /// A remote-CAPI server of an ISDN router on the LAN
    /// (`remote:HOST:PORT`); not available in this build.
    Remote(String),
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportKind::Device(p) => write!(f, "capi20:{}", p.display()),
            TransportKind::Simulator(a) => write!(f, "sim:{a}"),
            TransportKind::Remote(a) => write!(f, "remote:{a}"),
        }
    }
}

/// The B-channel protocol stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Mode {
    /// B1 HDLC, B2 X.75 SLP, B3 transparent: OFTP frames itself with the
    /// Stream Transmission Header, as over TCP.
    Transparent,
}

impl fmt::Display for B3Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            B3Mode::Transparent => "transparent",
        })
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
    let (scheme, rest) = s.split_once(':').ok_or_else(|| {
        format!("{s:?}: expected \"capi20:/dev/capi20\", \"sim:HOST:PORT\" or \"remote:HOST:PORT\"")
    })?;
    match scheme {
        "capi20" => {
            let p = PathBuf::from(rest);
            if !p.is_absolute() {
                return Err(format!("{s:?}: the device must be an absolute path"));
            }
            Ok(TransportKind::Device(p))
        }
        "sim" => rest
            .parse()
            .map(TransportKind::Simulator)
            .map_err(|_| format!("{s:?}: expected sim:IP:PORT, e.g. sim:127.0.0.1:7000")),
        "remote" => {
            if rest.rsplit_once(':').is_none() {
                return Err(format!("{s:?}: expected remote:HOST:PORT"));
            }
            Ok(TransportKind::Remote(rest.to_owned()))
        }
        other => Err(format!(
            "unknown transport {other:?}; use capi20:/dev/capi20, sim:HOST:PORT or remote:HOST:PORT"
        )),
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
        let b3 = match c.b3.as_deref().unwrap_or("transparent") {
            "transparent" => B3Mode::Transparent,
            "iso8208" | "x25" => {
                return Err(bad(
                    "isdn.controller.b3",
                    "ISO 8208 (X.25 packet layer, RFC 5024 Appendix D) is not available in this build; use \"transparent\"".into(),
                ))
            }
            other => {
                return Err(bad(
                    "isdn.controller.b3",
                    format!("{other:?}: expected \"transparent\""),
                ))
            }
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
            parse_transport("capi20:/dev/capi20").unwrap(),
            TransportKind::Device("/dev/capi20".into())
        );
        assert_eq!(
            parse_transport("sim:127.0.0.1:7").unwrap(),
            TransportKind::Simulator("127.0.0.1:7".parse().unwrap())
        );
        assert!(parse_transport("sim:localhost").is_err());
        assert!(parse_transport("capi20:dev").is_err());
        assert!(parse_transport("tcp:1.2.3.4:5").is_err());
    }
}
