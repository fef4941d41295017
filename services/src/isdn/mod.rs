//! OFTP over ISDN through CAPI 2.0 (RFC 5024 Appendix D): the receive
//! daemon `os4xrd_capi_<n>` for controller `n` and what it shares with
//! dialling in `os4xsqd`. The CAPI side (codec, transports, B3 protocols,
//! the exchange simulator `capi-sim`) is the [`capi`] crate.
//!
//! * [`settings`]: `[isdn]` and `[[isdn.controller]]`.
//! * [`link`]: a configured controller as a [`capi::transport::Transport`].
//! * [`call`]: a call as the session's byte stream, line failures as errors.
//! * [`receiver`]: the body of `os4xrd_capi_<n>`: listen, accept calls
//!   from partners' numbers, serve their sessions with [`crate::rd`].
//! * [`state`]: the controller state `os4x-pidctl status` shows.
//!
//! Dialling by `os4xsqd` is in [`crate::sq::isdn`].

pub mod call;
pub mod link;
pub mod receiver;
/// `[isdn]` settings (they live in the configuration crate).
pub use os4x_config::isdn as settings;
pub mod state;
