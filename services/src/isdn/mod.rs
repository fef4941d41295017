//! OFTP over ISDN through CAPI 2.0 (RFC 5024 section 9 / Appendix D with
//! transparent B3): the receive daemon `os4xrd_capi_<n>` for controller
//! `n`, the controller transports, and the simulator line used without
//! hardware.
//!
//! * [`settings`]: `[isdn]` and `[[isdn.controller]]`.
//! * [`link`]: a configured controller as a [`capi::transport::Transport`].
//! * [`simnet`]: `os4x-isdn-sim`, the exchange simulator shared by
//!   processes over 127.0.0.1.
//! * [`receiver`]: the body of `os4xrd_capi_<n>`: listen, accept calls
//!   from partners' numbers, serve their sessions with [`crate::rd`].
//! * [`state`]: the controller state `os4x-pidctl status` shows.
//!
//! Dialling by `os4xsqd` is in [`crate::sq::isdn`].

pub mod link;
pub mod receiver;
pub mod settings;
pub mod simnet;
pub mod state;
