//! `[local]`: this station's identity in the SSID exchange.

use oftp2::value::{OdetteId, Password, UserData};
use serde::Deserialize;

use crate::field::ConfigError;

/// `[local]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFile {
    odette_id: Option<String>,
    password: Option<String>,
    user_data: Option<String>,
}

/// This station's identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalStation {
    /// SSIDCODE we send. `None` until configured; daemons that speak OFTP
    /// refuse to start without it.
    pub odette_id: Option<OdetteId>,
    /// SSIDPSWD fallback. Sessions with a known partner use that
    /// partner's `password_out` instead (in both roles).
    pub password: Password,
    /// SSIDUSER.
    pub user_data: UserData,
}

impl LocalStation {
    /// The Odette ID, or the error an admin needs to fix it.
    pub fn require_id(&self) -> Result<OdetteId, String> {
        self.odette_id.ok_or_else(|| {
            "[local] odette_id is not set; add e.g.\n  [local]\n  odette_id = \"O0013000000MYCOMPANY\"\n  password = \"SECRET\"\nto the configuration file".to_owned()
        })
    }
}

/// Validates `[local]`.
pub fn resolve(
    file: LocalFile,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<LocalStation, ConfigError> {
    let odette_id = file
        .odette_id
        .map(|s| OdetteId::new(&s).map_err(|e| bad("local.odette_id", e.to_string())))
        .transpose()?;
    let password = match file.password {
        Some(s) => Password::new_relaxed(&s).map_err(|e| bad("local.password", e.to_string()))?,
        None => Password::default(),
    };
    let user_data = match file.user_data {
        Some(s) => UserData::new(&s).map_err(|e| bad("local.user_data", e.to_string()))?,
        None => UserData::EMPTY,
    };
    Ok(LocalStation {
        odette_id,
        password,
        user_data,
    })
}
