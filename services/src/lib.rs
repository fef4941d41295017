//! os4x services: what the daemons (`os4xrd_tcpip`, `os4xsqd`,
//! `os4xdebugd`, …) and admin tools (`os4x-pidctl`) share.
//!
//! - [`config`]: the one configuration file.
//! - [`daemon`]: start-up/shutdown scaffolding every daemon runs in.
//! - [`logging`]: journald or stderr.
//! - [`pidctl`]: status and monitoring-check logic of `os4x-pidctl`.
//! - [`exit`]: exit codes.
//! - [`debug`]: debug records: forwarding layer, `os4xdebugd`, bundles.
//! - [`client`]: `os4xclientd`, the authenticated client/job service.
//! - [`users`]: users of `os4xclientd` (and the web UI), argon2 hashes.
//! - [`usecase`]: the error type of what CLI, `os4xclientd` and `os4x-web`
//!   do for a user, with its one exit-code mapping.
//! - [`cli`]: `os4x` subcommands (`user`, `debug`, `client`).
//! - [`db`]: the os4x tables of the shared SQLite database.
//! - [`station`]: `[local]`, this station's OFTP identity.
//! - [`partner`], [`partner_cli`]: trading partners, `os4x partner`.
//! - [`inbox`]: the durable inbox of received files, receipts due.
//! - [`actions`]: post-receive commands, queued durably with the file.
//! - [`rd`]: the receive daemons `os4xrd_tcpip`, `os4xrd_tcpip_tls`, `os4xrd`.
//! - [`queue`], [`sq`]: the send queue and its daemon `os4xsqd`.
//! - [`receipts`]: EERPs/NERPs partners deliver for files we sent: who
//!   may settle which entry.
//! - [`security`]: OFTP2 security in the daemons: key pairs, partner
//!   certificates, CRLs, file services, signed receipts.
//! - [`tls`]: TLS for both directions (rustls): servers, clients, the
//!   certificate checks they share.
//! - [`isdn_routes`]: partners' ISDN numbers, read by `os4xsqd` and
//!   `os4xrd_capi_<n>`.
//! - [`isdn`]: OFTP over ISDN (CAPI): `os4xrd_capi_<n>`, controller settings.
//! - [`web_settings`]: `[web]`, the web administration service `os4x-web`.

pub mod actions;
pub mod cli;
pub mod client;
/// The configuration file (its own crate; re-exported for the daemons).
pub use os4x_config as config;
pub mod daemon;
pub mod db;
pub mod debug;
pub mod exchange;
pub mod exit;
pub mod inbox;
pub mod isdn;
pub mod isdn_routes;
pub mod lease;
pub mod logging;
pub mod os4x_import;
pub mod partner;
pub mod partner_cli;
pub mod pidctl;
pub mod queue;
pub mod rd;
pub mod receipts;
pub mod security;
pub mod serve;
pub mod sq;
pub mod tls;
pub use os4x_config::station;
pub mod usecase;
pub mod users;
pub use os4x_config::web as web_settings;

/// Program names admins know, as used in `os4x_pids.program`.
pub mod programs {
    pub const OS4XRD: &str = "os4xrd";
    /// OFTP over TCP (port 3305).
    pub const OS4XRD_TCPIP: &str = "os4xrd_tcpip";
    /// OFTP over TLS (port 6619).
    pub const OS4XRD_TCPIP_TLS: &str = "os4xrd_tcpip_tls";
    pub const OS4XSQD: &str = "os4xsqd";
    pub const OS4XCLIENTD: &str = "os4xclientd";
    pub const OS4XDEBUGD: &str = "os4xdebugd";

    /// `os4xrd_capi_<n>`: ISDN (CAPI) controller `n`.
    pub fn os4xrd_capi(controller: u32) -> String {
        format!("os4xrd_capi_{controller}")
    }
}
