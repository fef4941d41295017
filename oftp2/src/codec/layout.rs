//! Per-command layouts (in progress).

use bytes::{Bytes, BytesMut};

use super::wire::Sink;
use super::{Command, DecodeError, EncodeError};
use crate::value::ProtocolLevel;

pub(crate) fn decode(
    frame: Bytes,
    level: ProtocolLevel,
    sink: &mut Sink<'_>,
) -> Result<Command, DecodeError> {
    let _ = (level, sink);
    Err(DecodeError::UnknownCommand { code: frame.first().copied().unwrap_or(0) })
}

pub(crate) fn encode(
    cmd: &Command,
    level: ProtocolLevel,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = out;
    Err(EncodeError::NotAtLevel { command: cmd.id(), level })
}
