//! Command layouts per protocol level.
//!
//! Sources: RFC 5024 section 5.3 for OFTP 2.0; RFC 2204 section 5.3 for
//! OFTP 1.3. OFTP 1.4 (an ODETTE document, not an RFC) keeps the 1.3
//! layouts except that the file date/time stamps widen to `CCYYMMDD` and
//! `HHMMSScccc` (using 6 of the 9 reserved octets before them) and NERP is
//! added; 2.0 then grows the numeric fields and adds the security fields,
//! the reason texts and SECD/AUCH/AURP.

use bytes::{Bytes, BytesMut};

use super::commands::*;
use super::error::{DecodeError, DeviationKind, EncodeError, FieldProblem};
use super::wire::{value_err, Reader, Sink, Writer};
use super::{Command, CommandId};
use crate::value::{
    CipherSuite, EndFileRefusal, EndSessionReason, FileCompression, FileEnvelope, NerpReason,
    ProtocolLevel, RecordFormat, SecurityLevel, SendReceive, StartFileRefusal, Timestamp,
    ValueError,
};

/// The three command layout families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// OFTP 1.3 (RFC 2204); also levels 1 (1.2 and RFC 2204's own value)
    /// and 3 (unassigned).
    V13,
    /// OFTP 1.4.
    V14,
    /// OFTP 2.0 (RFC 5024) and, presumably compatible, later levels.
    V20,
}

impl Layout {
    fn of(level: ProtocolLevel) -> Layout {
        if level.is_v2() {
            Layout::V20
        } else if level.digit() == 4 {
            Layout::V14
        } else {
            Layout::V13
        }
    }

    /// Whether date/time stamps are `CCYYMMDD` + `HHMMSScccc`.
    fn wide_stamps(self) -> bool {
        self != Layout::V13
    }
}

/// Length of the SSID up to (excluding) SSIDCR, at every level.
const SSID_BODY: usize = 60;

pub(crate) fn decode(
    frame: Bytes,
    level: ProtocolLevel,
    sink: &mut Sink<'_>,
) -> Result<Command, DecodeError> {
    let Some(&code) = frame.first() else {
        return Err(DecodeError::Empty);
    };
    // The data path: no checks beyond the command octet, no copy.
    if code == b'D' {
        return Ok(Command::Data(Data {
            payload: frame.slice(1..),
        }));
    }
    let id = CommandId::from_code(code).ok_or(DecodeError::UnknownCommand { code })?;
    if !id.exists_at(level) {
        return Err(DecodeError::NotAtLevel { command: id, level });
    }
    let layout = Layout::of(level);
    let mut r = Reader::new(frame, id, sink);
    let cmd = match id {
        CommandId::Ssrm => decode_ssrm(&mut r).map(Command::Ssrm),
        CommandId::Ssid => decode_ssid(&mut r).map(Command::Ssid),
        CommandId::Sfid => decode_sfid(&mut r, layout).map(Command::Sfid),
        CommandId::Sfpa => {
            let n = if layout == Layout::V20 { 17 } else { 9 };
            r.numeric("SFPAACNT", n)
                .map(|answer_count| Command::Sfpa(Sfpa { answer_count }))
        }
        CommandId::Sfna => decode_sfna(&mut r, layout).map(Command::Sfna),
        CommandId::Data => unreachable_data(),
        CommandId::Cdt => {
            r.pad_short(3, 1, "CDTRSV1");
            r.reserved("CDTRSV1", 2).map(|()| Command::Cdt(Cdt))
        }
        CommandId::Efid => decode_efid(&mut r, layout).map(Command::Efid),
        CommandId::Efpa => r
            .flag("EFPACD")
            .map(|change_direction| Command::Efpa(Efpa { change_direction })),
        CommandId::Efna => decode_efna(&mut r, layout).map(Command::Efna),
        CommandId::Esid => decode_esid(&mut r, layout).map(Command::Esid),
        CommandId::Cd => Ok(Command::Cd(Cd)),
        CommandId::Eerp => decode_eerp(&mut r, layout).map(Command::Eerp),
        CommandId::Nerp => decode_nerp(&mut r, layout).map(Command::Nerp),
        CommandId::Rtr => Ok(Command::Rtr(Rtr)),
        CommandId::Secd => Ok(Command::Secd(Secd)),
        CommandId::Auch => r
            .binary_with_len()
            .map(|challenge| Command::Auch(Auch { challenge })),
        CommandId::Aurp => decode_aurp(&mut r).map(Command::Aurp),
    }?;
    r.finish()?;
    Ok(cmd)
}

/// DATA is handled before dispatch; this keeps the match exhaustive
/// without a panic path.
fn unreachable_data() -> Result<Command, DecodeError> {
    Err(DecodeError::UnknownCommand { code: b'D' })
}

fn decode_ssrm(r: &mut Reader<'_, '_>) -> Result<Ssrm, DecodeError> {
    let full = 1 + Ssrm::MESSAGE.len();
    if r.len() < full + 1 {
        r.strip_terminator("SSRMCR");
        // "ODETTE FTP READY" without its trailing space.
        r.pad_short(full, full - 1, "SSRMMSG");
    }
    let msg = r.bytes(Ssrm::MESSAGE.len())?;
    if &msg[..] != Ssrm::MESSAGE {
        return Err(r.invalid(
            "SSRMMSG",
            FieldProblem::WrongText {
                found: String::from_utf8_lossy(&msg).into_owned(),
            },
        ));
    }
    if r.len() > full {
        r.terminator("SSRMCR")?;
    }
    Ok(Ssrm)
}

fn decode_ssid(r: &mut Reader<'_, '_>) -> Result<Ssid, DecodeError> {
    let short = r.len() <= SSID_BODY;
    if short {
        r.strip_terminator("SSIDCR");
    }
    let lev = r.byte()?;
    let level = match lev {
        b'0'..=b'9' => ProtocolLevel::from_digit(lev - b'0').ok(),
        _ => None,
    }
    .ok_or_else(|| {
        r.invalid(
            "SSIDLEV",
            FieldProblem::Unexpected {
                found: lev,
                expected: "a protocol level digit 1-9",
            },
        )
    })?;
    let layout = Layout::of(level);
    if short {
        // Only the reserved field and the user data may be cut off.
        let paddable = if layout == Layout::V20 { 48 } else { 47 };
        r.pad_short(SSID_BODY, paddable, "SSIDUSER");
    }
    let id = r.odette_id("SSIDCODE")?;
    let password = r.password("SSIDPSWD")?;
    let buffer_size = r.numeric("SSIDSDEB", 5)? as u32;
    let capabilities = r.letter("SSIDSR", "'S', 'R' or 'B'", SendReceive::from_byte)?;
    let compression = r.flag("SSIDCMPR")?;
    let restart = r.flag("SSIDREST")?;
    let special_logic = r.flag("SSIDSPEC")?;
    let credit = r.numeric("SSIDCRED", 3)? as u16;
    let secure_authentication = if layout == Layout::V20 {
        let a = r.flag("SSIDAUTH")?;
        r.reserved("SSIDRSV1", 4)?;
        a
    } else {
        r.reserved("SSIDRSV1", 5)?;
        false
    };
    let user_data = r.user_data("SSIDUSER")?;
    if !short {
        r.terminator("SSIDCR")?;
    }
    Ok(Ssid {
        level,
        id,
        password,
        buffer_size,
        capabilities,
        compression,
        restart,
        special_logic,
        credit,
        secure_authentication,
        user_data,
    })
}

fn decode_sfid(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Sfid, DecodeError> {
    let dataset_name = r.dataset_name("SFIDDSN")?;
    r.reserved("SFIDRSV1", if layout == Layout::V13 { 9 } else { 3 })?;
    let timestamp = Timestamp {
        date: r.date("SFIDDATE", layout.wide_stamps())?,
        time: r.time("SFIDTIME", layout.wide_stamps())?,
    };
    let user_data = r.user_data("SFIDUSER")?;
    let destination = r.odette_id("SFIDDEST")?;
    let originator = r.odette_id("SFIDORIG")?;
    let format = r.letter("SFIDFMT", "'F', 'V', 'U' or 'T'", RecordFormat::from_byte)?;
    let max_record_size = r.numeric("SFIDLRECL", 5)? as u32;
    if layout != Layout::V20 {
        let file_size = r.numeric("SFIDFSIZ", 7)?;
        let restart_position = r.numeric("SFIDREST", 9)?;
        return Ok(Sfid {
            dataset_name,
            timestamp,
            user_data,
            destination,
            originator,
            format,
            max_record_size,
            file_size,
            original_file_size: file_size,
            restart_position,
            security: SecurityLevel::None,
            cipher_suite: CipherSuite::None,
            compression: FileCompression::None,
            envelope: FileEnvelope::None,
            signed_eerp: false,
            description: String::new(),
        });
    }
    let file_size = r.numeric("SFIDFSIZ", 13)?;
    let original_file_size = r.numeric("SFIDOSIZ", 13)?;
    let restart_position = r.numeric("SFIDREST", 17)?;
    let sec = r.numeric("SFIDSEC", 2)?;
    let security = SecurityLevel::from_code(sec as u8).ok_or_else(|| {
        value_err(
            r.cmd,
            "SFIDSEC",
            ValueError::OutOfRange {
                what: "security level",
                value: sec,
                range: "00..=03",
            },
        )
    })?;
    let cipher_suite = CipherSuite::from_code(r.numeric("SFIDCIPH", 2)? as u8);
    let compression = FileCompression::from_code(r.numeric("SFIDCOMP", 1)? as u8);
    let envelope = FileEnvelope::from_code(r.numeric("SFIDENV", 1)? as u8);
    let signed_eerp = r.flag("SFIDSIGN")?;
    let description = r.text_with_len("SFIDDESCL", "SFIDDESC")?;
    Ok(Sfid {
        dataset_name,
        timestamp,
        user_data,
        destination,
        originator,
        format,
        max_record_size,
        file_size,
        original_file_size,
        restart_position,
        security,
        cipher_suite,
        compression,
        envelope,
        signed_eerp,
        description,
    })
}

fn decode_sfna(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Sfna, DecodeError> {
    let reason = StartFileRefusal::from_code(r.numeric("SFNAREAS", 2)? as u8);
    let retry = r.flag("SFNARRTR")?;
    let text = if layout == Layout::V20 {
        r.text_with_len("SFNAREASL", "SFNAREAST")?
    } else {
        String::new()
    };
    Ok(Sfna {
        reason,
        retry,
        text,
    })
}

fn decode_efid(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Efid, DecodeError> {
    let (rn, un) = if layout == Layout::V20 {
        (17, 17)
    } else {
        (9, 12)
    };
    Ok(Efid {
        record_count: r.numeric("EFIDRCNT", rn)?,
        unit_count: r.numeric("EFIDUCNT", un)?,
    })
}

fn decode_efna(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Efna, DecodeError> {
    let reason = EndFileRefusal::from_code(r.numeric("EFNAREAS", 2)? as u8);
    let text = if layout == Layout::V20 {
        r.text_with_len("EFNAREASL", "EFNAREAST")?
    } else {
        String::new()
    };
    Ok(Efna { reason, text })
}

fn decode_esid(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Esid, DecodeError> {
    let reason = EndSessionReason::from_code(r.numeric("ESIDREAS", 2)? as u8);
    // An ESID may cross a level boundary (a 1.x responder refusing a 2.0
    // initiator's SSID answers in its own layout); the two forms differ in
    // length, so accept both.
    let rest = r.rest();
    let short_form = rest.len() <= 2 && rest.iter().all(|&b| matches!(b, b'\r' | b'\n' | 0x8d));
    let text = if short_form {
        if layout == Layout::V20 {
            r.deviation("ESIDREASL", DeviationKind::OtherLevelLayout);
        }
        String::new()
    } else {
        if layout != Layout::V20 {
            r.deviation("ESIDREASL", DeviationKind::OtherLevelLayout);
        }
        r.text_with_len("ESIDREASL", "ESIDREAST")?
    };
    r.terminator("ESIDCR")?;
    Ok(Esid { reason, text })
}

fn decode_eerp(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Eerp, DecodeError> {
    if layout != Layout::V20 {
        // EERPORIG ends the 1.x command; allow its padding to be trimmed.
        r.pad_short(106, 82, "EERPORIG");
    }
    let dataset_name = r.dataset_name("EERPDSN")?;
    r.reserved("EERPRSV1", if layout == Layout::V13 { 9 } else { 3 })?;
    let timestamp = Timestamp {
        date: r.date("EERPDATE", layout.wide_stamps())?,
        time: r.time("EERPTIME", layout.wide_stamps())?,
    };
    let user_data = r.user_data("EERPUSER")?;
    let destination = r.odette_id("EERPDEST")?;
    let originator = r.odette_id("EERPORIG")?;
    let (hash, signature) = if layout != Layout::V20 {
        (Bytes::new(), Bytes::new())
    } else if r.remaining() == 0 {
        // A 1.4-style EERP (identical up to here): unsigned.
        r.deviation("EERPHSHL", DeviationKind::OtherLevelLayout);
        (Bytes::new(), Bytes::new())
    } else {
        (r.binary_with_len()?, r.binary_with_len()?)
    };
    Ok(Eerp {
        dataset_name,
        timestamp,
        user_data,
        destination,
        originator,
        hash,
        signature,
    })
}

fn decode_nerp(r: &mut Reader<'_, '_>, layout: Layout) -> Result<Nerp, DecodeError> {
    let dataset_name = r.dataset_name("NERPDSN")?;
    r.reserved("NERPRSV1", 6)?;
    let timestamp = Timestamp {
        date: r.date("NERPDATE", true)?,
        time: r.time("NERPTIME", true)?,
    };
    let destination = r.odette_id("NERPDEST")?;
    let originator = r.odette_id("NERPORIG")?;
    let creator = r.odette_id("NERPCREA")?;
    let reason = NerpReason::from_code(r.numeric("NERPREAS", 2)? as u8);
    let (text, hash, signature) = if layout != Layout::V20 {
        (String::new(), Bytes::new(), Bytes::new())
    } else if r.remaining() == 0 {
        // A 1.4-style NERP (identical up to here).
        r.deviation("NERPREASL", DeviationKind::OtherLevelLayout);
        (String::new(), Bytes::new(), Bytes::new())
    } else {
        let text = r.text_with_len("NERPREASL", "NERPREAST")?;
        (text, r.binary_with_len()?, r.binary_with_len()?)
    };
    Ok(Nerp {
        dataset_name,
        timestamp,
        destination,
        originator,
        creator,
        reason,
        text,
        hash,
        signature,
    })
}

fn decode_aurp(r: &mut Reader<'_, '_>) -> Result<Aurp, DecodeError> {
    let b = r.bytes(20)?;
    let mut response = [0u8; 20];
    response.copy_from_slice(&b);
    Ok(Aurp { response })
}

pub(crate) fn encode(
    cmd: &Command,
    level: ProtocolLevel,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let id = cmd.id();
    // An SSID is laid out after the level it announces.
    let level = match cmd {
        Command::Ssid(s) => s.level,
        _ => level,
    };
    if !id.exists_at(level) {
        return Err(EncodeError::NotAtLevel { command: id, level });
    }
    let layout = Layout::of(level);
    let mut w = Writer {
        out,
        cmd: id,
        level,
    };
    w.byte(id.code());
    match cmd {
        Command::Ssrm(_) => {
            w.raw(Ssrm::MESSAGE);
            w.byte(b'\r');
            Ok(())
        }
        Command::Ssid(s) => encode_ssid(&mut w, s, layout),
        Command::Sfid(s) => encode_sfid(&mut w, s, layout),
        Command::Sfpa(s) => {
            let n = if layout == Layout::V20 { 17 } else { 9 };
            w.numeric("SFPAACNT", n, s.answer_count)
        }
        Command::Sfna(s) => {
            w.numeric("SFNAREAS", 2, s.reason.code().into())?;
            w.flag(s.retry);
            if layout == Layout::V20 {
                w.text_with_len("SFNAREASL", &s.text)?;
            }
            Ok(())
        }
        Command::Data(d) => {
            w.raw(&d.payload);
            Ok(())
        }
        Command::Cdt(_) => {
            w.spaces(2);
            Ok(())
        }
        Command::Efid(e) => {
            let (rn, un) = if layout == Layout::V20 {
                (17, 17)
            } else {
                (9, 12)
            };
            w.numeric("EFIDRCNT", rn, e.record_count)?;
            w.numeric("EFIDUCNT", un, e.unit_count)
        }
        Command::Efpa(e) => {
            w.flag(e.change_direction);
            Ok(())
        }
        Command::Efna(e) => {
            w.numeric("EFNAREAS", 2, e.reason.code().into())?;
            if layout == Layout::V20 {
                w.text_with_len("EFNAREASL", &e.text)?;
            }
            Ok(())
        }
        Command::Esid(e) => {
            w.numeric("ESIDREAS", 2, e.reason.code().into())?;
            if layout == Layout::V20 {
                w.text_with_len("ESIDREASL", &e.text)?;
            }
            w.byte(b'\r');
            Ok(())
        }
        Command::Cd(_) | Command::Rtr(_) | Command::Secd(_) => Ok(()),
        Command::Eerp(e) => encode_eerp(&mut w, e, layout),
        Command::Nerp(n) => encode_nerp(&mut w, n, layout),
        Command::Auch(a) => w.binary_with_len("AUCHCHLL", &a.challenge),
        Command::Aurp(a) => {
            w.raw(&a.response);
            Ok(())
        }
    }
}

fn encode_ssid(w: &mut Writer<'_>, s: &Ssid, layout: Layout) -> Result<(), EncodeError> {
    w.byte(b'0' + s.level.digit());
    w.raw(s.id.padded());
    w.raw(s.password.padded());
    w.numeric("SSIDSDEB", 5, s.buffer_size.into())?;
    w.byte(s.capabilities.as_byte());
    w.flag(s.compression);
    w.flag(s.restart);
    w.flag(s.special_logic);
    w.numeric("SSIDCRED", 3, s.credit.into())?;
    if layout == Layout::V20 {
        w.flag(s.secure_authentication);
        w.spaces(4);
    } else {
        if s.secure_authentication {
            return Err(
                w.not_representable("SSIDAUTH", "secure authentication exists from OFTP 2.0 on")
            );
        }
        w.spaces(5);
    }
    w.raw(s.user_data.padded());
    w.byte(b'\r');
    Ok(())
}

fn encode_sfid(w: &mut Writer<'_>, s: &Sfid, layout: Layout) -> Result<(), EncodeError> {
    if layout != Layout::V20 {
        // Refuse what OFTP 1.x cannot say rather than drop it silently:
        // the receiver would store a secured or compressed file as plain.
        let checks: [(bool, &'static str, &'static str); 6] = [
            (
                s.security != SecurityLevel::None,
                "SFIDSEC",
                "file security exists from OFTP 2.0 on",
            ),
            (
                s.cipher_suite != CipherSuite::None,
                "SFIDCIPH",
                "cipher suites exist from OFTP 2.0 on",
            ),
            (
                s.compression != FileCompression::None,
                "SFIDCOMP",
                "file compression exists from OFTP 2.0 on",
            ),
            (
                s.envelope != FileEnvelope::None,
                "SFIDENV",
                "file enveloping exists from OFTP 2.0 on",
            ),
            (
                s.signed_eerp,
                "SFIDSIGN",
                "signed EERPs exist from OFTP 2.0 on",
            ),
            (
                !s.description.is_empty(),
                "SFIDDESC",
                "the file description exists from OFTP 2.0 on",
            ),
        ];
        if let Some((_, field, why)) = checks.iter().find(|c| c.0) {
            return Err(w.not_representable(field, why));
        }
        if s.original_file_size != 0 && s.original_file_size != s.file_size {
            return Err(w.not_representable(
                "SFIDOSIZ",
                "OFTP 1.x has no original file size; it must be 0 or equal the file size",
            ));
        }
    }
    w.raw(s.dataset_name.padded());
    w.spaces(if layout == Layout::V13 { 9 } else { 3 });
    w.timestamp("SFIDDATE", "SFIDTIME", &s.timestamp, layout.wide_stamps())?;
    w.raw(s.user_data.padded());
    w.raw(s.destination.padded());
    w.raw(s.originator.padded());
    w.byte(s.format.as_byte());
    w.numeric("SFIDLRECL", 5, s.max_record_size.into())?;
    if layout != Layout::V20 {
        w.numeric("SFIDFSIZ", 7, s.file_size)?;
        return w.numeric("SFIDREST", 9, s.restart_position);
    }
    w.numeric("SFIDFSIZ", 13, s.file_size)?;
    w.numeric("SFIDOSIZ", 13, s.original_file_size)?;
    w.numeric("SFIDREST", 17, s.restart_position)?;
    w.numeric("SFIDSEC", 2, s.security.code().into())?;
    w.numeric("SFIDCIPH", 2, s.cipher_suite.code().into())?;
    w.numeric("SFIDCOMP", 1, s.compression.code().into())?;
    w.numeric("SFIDENV", 1, s.envelope.code().into())?;
    w.flag(s.signed_eerp);
    w.text_with_len("SFIDDESCL", &s.description)
}

fn encode_eerp(w: &mut Writer<'_>, e: &Eerp, layout: Layout) -> Result<(), EncodeError> {
    if layout != Layout::V20 {
        if !e.hash.is_empty() {
            return Err(w.not_representable("EERPHSH", "EERP hashes exist from OFTP 2.0 on"));
        }
        if !e.signature.is_empty() {
            return Err(w.not_representable("EERPSIG", "signed EERPs exist from OFTP 2.0 on"));
        }
    }
    w.raw(e.dataset_name.padded());
    w.spaces(if layout == Layout::V13 { 9 } else { 3 });
    w.timestamp("EERPDATE", "EERPTIME", &e.timestamp, layout.wide_stamps())?;
    w.raw(e.user_data.padded());
    w.raw(e.destination.padded());
    w.raw(e.originator.padded());
    if layout == Layout::V20 {
        w.binary_with_len("EERPHSHL", &e.hash)?;
        w.binary_with_len("EERPSIGL", &e.signature)?;
    }
    Ok(())
}

fn encode_nerp(w: &mut Writer<'_>, n: &Nerp, layout: Layout) -> Result<(), EncodeError> {
    if layout != Layout::V20 {
        if !n.hash.is_empty() {
            return Err(w.not_representable("NERPHSH", "NERP hashes exist from OFTP 2.0 on"));
        }
        if !n.signature.is_empty() {
            return Err(w.not_representable("NERPSIG", "signed NERPs exist from OFTP 2.0 on"));
        }
    }
    w.raw(n.dataset_name.padded());
    w.spaces(6);
    w.timestamp("NERPDATE", "NERPTIME", &n.timestamp, true)?;
    w.raw(n.destination.padded());
    w.raw(n.originator.padded());
    w.raw(n.creator.padded());
    w.numeric("NERPREAS", 2, n.reason.code().into())?;
    if layout == Layout::V20 {
        w.text_with_len("NERPREASL", &n.text)?;
        w.binary_with_len("NERPHSHL", &n.hash)?;
        w.binary_with_len("NERPSIGL", &n.signature)?;
    }
    Ok(())
}
