//! OFTP over ISDN through CAPI 2.0 (RFC 5024 Appendix D): the transport
//! that answering (`os4xrd_capi_<n>`, [`crate::rd::capi`]) and dialling
//! (`os4xsqd`, [`crate::sq::isdn`]) share. It imports neither daemon. The
//! CAPI side (codec, transports, B3 protocols, the exchange simulator
//! `capi-sim`) is the [`capi`] crate.
//!
//! * [`settings`]: `[isdn]` and `[[isdn.controller]]`.
//! * [`link`]: a configured controller as a [`capi::transport::Transport`].
//! * [`call`]: a call as the session's byte stream, line failures as errors.
//! * [`state`]: the controller state `os4x-pidctl status` shows.

pub mod call;
pub mod link;
/// `[isdn]` settings (they live in the configuration crate).
pub use os4x_config::isdn as settings;
pub mod state;
