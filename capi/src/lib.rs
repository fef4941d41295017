//! CAPI 2.0 for OFTP over ISDN.
//!
//! * [`message`]: the CAPI 2.0 message codec (header, the messages for
//!   listening, calling, accepting, B3 connections, data and disconnects,
//!   with their structs), sans-IO and panic-free on any input.
//! * [`transport`]: the trait every way of reaching a controller implements.
//! * [`device`]: the Linux `/dev/capi20` transport.
//! * [`sim`]: a built-in ISDN exchange connecting simulated controllers, so
//!   tests and demos run without ISDN hardware.
//! * [`stream`]: an established B3 connection as an `AsyncRead +
//!   AsyncWrite` byte stream, which the `oftp2` driver runs over as on TCP.

pub mod device;
pub mod message;
pub mod sim;
pub mod stream;
pub mod transport;
