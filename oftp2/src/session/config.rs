//! Local session parameters (the RFC's local constants, section 9.7) and
//! the values both sides agreed on in the SSID exchange.

use std::sync::Arc;
use std::time::Duration;

use crate::security::auth::SecureAuthentication;
use crate::security::receipt::ReceiptSecurity;

use crate::codec::Ssid;
use crate::value::{OdetteId, Password, ProtocolLevel, SendReceive, UserData};

/// Which side opened the connection (section 4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Took the initiative to connect; waits for SSRM, sends the first
    /// SSID and becomes the first Speaker.
    Initiator,
    /// Accepted the connection; sends SSRM and answers the SSID.
    Responder,
}

/// What this side offers in its SSID, and local policy.
///
/// With secure authentication, set both `secure_authentication` and
/// `authentication_keys` (see [`Config::with_secure_authentication`]).
///
/// [`Config::new`] gives the values a modern OFTP 2.0 server uses: level 5,
/// both directions, the largest buffer (99999) and credit (999), restart on,
/// buffer compression off (section 6.4 calls it deprecated by file
/// compression; partners that want it still get it when this is set).
#[derive(Debug, Clone)]
pub struct Config {
    /// SSIDCODE: our Odette identification code.
    pub id: OdetteId,
    /// SSIDPSWD: the password the partner expects from us.
    pub password: Password,
    /// SSIDUSER: user data (bilateral meaning; spaces if unused).
    pub user_data: UserData,
    /// SSIDLEV we offer; the session negotiates down to the partner's.
    pub level: ProtocolLevel,
    /// SSIDSR: whether we send, receive or both (C.Cap-mode).
    pub mode: SendReceive,
    /// SSIDSDEB: largest Data Exchange Buffer we accept, 128..=99999.
    pub buffer_size: u32,
    /// SSIDCRED: credit window we offer, 1..=999.
    pub credit: u16,
    /// SSIDCMPR: we can handle buffer compression (section 7).
    pub compression: bool,
    /// SSIDREST: we can restart interrupted transfers.
    pub restart: bool,
    /// SSIDAUTH: we require secure authentication (AUCH/AURP after the
    /// SSID exchange, section 4.2.3). Needs [`Config::authentication_keys`];
    /// [`Config::validate`] refuses `true` without them. Only OFTP 2.0
    /// has it: a partner at a lower level is ended with ESID `12`.
    pub secure_authentication: bool,
    /// Our key pair and the partner's certificate for secure
    /// authentication (see [`crate::security::auth`]).
    pub authentication_keys: Option<Arc<dyn SecureAuthentication>>,
    /// Certificates to check signed EERP/NERP with; when set, every
    /// received receipt is followed by [`super::Event::ReceiptChecked`].
    pub receipt_security: Option<Arc<dyn ReceiptSecurity>>,
    /// Response timer: how long to wait for the partner whenever it owes
    /// us a command (sections 4.7.2 and 9). On expiry the session ends
    /// with ESID `09`.
    pub response_timeout: Duration,
    /// After sending ESID, how long to wait for the partner to close the
    /// connection before giving up on it (state WF_NDISC).
    pub disconnect_timeout: Duration,
    /// Emit a progress event each time this many more octets of a file
    /// were sent or received.
    pub progress_interval: u64,
}

impl Config {
    /// Defaults for `id` with `password` (see the type docs).
    pub fn new(id: OdetteId, password: Password) -> Self {
        Self {
            id,
            password,
            user_data: UserData::EMPTY,
            level: ProtocolLevel::V2_0,
            mode: SendReceive::Both,
            buffer_size: 99_999,
            credit: 999,
            compression: false,
            restart: true,
            secure_authentication: false,
            authentication_keys: None,
            receipt_security: None,
            response_timeout: Duration::from_secs(120),
            disconnect_timeout: Duration::from_secs(10),
            progress_interval: 1 << 20,
        }
    }

    /// Require secure authentication with these keys.
    pub fn with_secure_authentication(mut self, keys: Arc<dyn SecureAuthentication>) -> Self {
        self.secure_authentication = true;
        self.authentication_keys = Some(keys);
        self
    }

    /// Check the values against the RFC's ranges (section 9.7).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(128..=99_999).contains(&self.buffer_size) {
            return Err(ConfigError::BufferSize(self.buffer_size));
        }
        if !(1..=999).contains(&self.credit) {
            return Err(ConfigError::Credit(self.credit));
        }
        if self.secure_authentication && self.authentication_keys.is_none() {
            return Err(ConfigError::SecureAuthenticationUnsupported);
        }
        if self.level < ProtocolLevel::V1_2 || !self.level.is_known() {
            return Err(ConfigError::Level(self.level));
        }
        Ok(())
    }
}

/// A [`Config`] value outside what RFC 5024 or this implementation allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// SSIDSDEB outside 128..=99999.
    #[error(
        "buffer size {0} is outside 128..=99999 (RFC 5024 SSIDSDEB); fix the partner configuration"
    )]
    BufferSize(u32),
    /// SSIDCRED outside 1..=999.
    #[error("credit {0} is outside 1..=999 (RFC 5024 SSIDCRED); fix the partner configuration")]
    Credit(u16),
    /// Secure authentication was requested without keys.
    #[error(
        "secure authentication (SSIDAUTH=Y, AUCH/AURP) needs our certificate and private key \
         and the partner's certificate; configure them or set it to N for this partner"
    )]
    SecureAuthenticationUnsupported,
    /// A protocol level this implementation does not speak.
    #[error("protocol level {0} is not one this implementation speaks (1.2/1.3, 1.4 or 2.0)")]
    Level(ProtocolLevel),
}

/// The session parameters both sides agreed on (the RFC's local variables
/// V.Buf-size, V.Window, V.Compression, V.Restart, V.Mode, section 9.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The partner's SSID as received (its id, password, user data...).
    pub partner: Ssid,
    /// Protocol level in use: the lower of both offers.
    pub level: ProtocolLevel,
    /// Largest Data Exchange Buffer, `'D'` included: the smaller offer.
    pub buffer_size: u32,
    /// Credit window: the smaller offer.
    pub credit: u16,
    /// Buffer compression: only if both sides offered it.
    pub compression: bool,
    /// Restart: only if both sides offered it.
    pub restart: bool,
    /// What *we* may do in this session after narrowing by the partner's
    /// capability (a `B` facing an `R` partner may only send).
    pub mode: SendReceive,
    /// Special logic: never over TCP/TLS (section 5.3.2 SSIDSPEC), so
    /// always `false` here; kept for the record.
    pub special_logic: bool,
    /// Secure authentication (AUCH/AURP) in use.
    pub secure_authentication: bool,
}

impl Negotiated {
    /// The partner's identification code.
    pub fn partner_id(&self) -> &OdetteId {
        &self.partner.id
    }
}
