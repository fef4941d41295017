//! CAPI 2.0 for OFTP over ISDN.
//!
//! * [`message`]: the CAPI 2.0 message codec (header, the messages for
//!   listening, calling, accepting, B3 connections, data and disconnects,
//!   with their structs), sans-IO and panic-free on any input.
//! * [`transport`]: the trait every way of reaching a controller implements.
//! * [`remote`]: remote CAPI over TCP (rcapid / FRITZ!Box framing), client
//!   transport and a server that serves the simulator to other processes.
//! * [`device`]: the Linux `/dev/capi20` transport.
//! * [`config`]: choosing a transport and the B3 mode from configuration.
//! * [`x25`]: the ISO 8208 (X.25) side of RFC 5024 Appendix D: call
//!   facilities in the NCPI, M-bit packet sequences ⇄ OFTP exchange buffers.
//! * [`sim`]: a built-in ISDN exchange connecting simulated controllers, so
//!   tests and demos run without ISDN hardware.
//! * [`stream`]: an established B3 connection as an `AsyncRead +
//!   AsyncWrite` byte stream, which the `oftp2` driver runs over as on TCP.
//!
//! # Using it
//!
//! 1. Get a transport for the controller from configuration:
//!    [`config::TransportConfig`] (`"remote:HOST:PORT"`, `"device:/dev/capi20"`,
//!    or an in-process [`sim::Sim`]) and `connect(params).await`.
//! 2. [`stream::Application::start`] it.
//! 3. Receive: `listen(controller, cip::mask(cip::UNRESTRICTED_DIGITAL))`,
//!    then `next_call()`; look at `IncomingCall::calling` / `called` and
//!    `accept(b3_mode.b_protocol())` or `reject(cause)` (a
//!    [`message::reject`] value, or `0x34xx` for Q.850 cause `xx`, e.g.
//!    `0x3495` "call rejected").
//! 4. Call: `dial(Dial { controller, called, calling, b_protocol })`.
//! 5. Either way a [`stream::B3Stream`] results: run `oftp2::driver::run`
//!    over it. [`config::B3Mode`] chooses RFC 5024 Appendix D (ISO 8208,
//!    the default) or transparent B3; the stream hides the difference.
//!
//! See the example in [`config`].

pub mod config;
pub mod device;
pub mod message;
pub mod remote;
pub mod sim;
pub mod stream;
pub mod transport;
pub mod x25;
