//! Alphanumeric (`X(n)`) field values: identification codes, passwords,
//! dataset names and user data.
//!
//! They are stored inline (`[u8; N]` plus a length) so they are `Copy` and
//! decoding a command allocates nothing for them.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::ValueError;

/// How far a character sequence is from the RFC 5024 `String` rules
/// (section 5.3 "Format", Appendix B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Laxness {
    /// Lowercase letters `a-z` (upper case is required).
    Lowercase,
    /// Printable ASCII outside the Appendix B subset (e.g. `_`, `@`, `#`).
    OutsideAppendixB,
    /// A space between non-space characters, or a leading space.
    EmbeddedSpace,
}

/// Is `b` in the Appendix B subset, space excluded?
pub(crate) const fn is_appendix_b(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'&' | b'(' | b')')
}

/// Checks an already right-trimmed printable-ASCII value against the strict
/// rules; returns the first (most severe) kind of deviation found.
pub(crate) fn laxness(v: &[u8], embedded_space_ok: bool) -> Option<Laxness> {
    let mut found = None;
    for &b in v {
        let this = if is_appendix_b(b) {
            continue;
        } else if b == b' ' {
            if embedded_space_ok {
                continue;
            }
            Laxness::EmbeddedSpace
        } else if b.is_ascii_lowercase() {
            Laxness::Lowercase
        } else {
            Laxness::OutsideAppendixB
        };
        // Report the most surprising deviation: foreign characters first.
        found = match (found, this) {
            (Some(Laxness::OutsideAppendixB), _) => found,
            (_, Laxness::OutsideAppendixB) => Some(this),
            (None, _) => Some(this),
            _ => found,
        };
    }
    if embedded_space_ok && v.first() == Some(&b' ') && found.is_none() {
        found = Some(Laxness::EmbeddedSpace);
    }
    found
}

/// Inline, right-trimmed, printable-ASCII field content of at most `N` octets.
#[derive(Clone, Copy)]
struct Inline<const N: usize> {
    buf: [u8; N],
    len: u8,
}

impl<const N: usize> Inline<N> {
    /// `v` must be printable ASCII, right-trimmed, `len <= N`.
    fn from_trimmed(v: &[u8]) -> Self {
        let mut buf = [b' '; N];
        let len = v.len().min(N);
        buf[..len].copy_from_slice(&v[..len]);
        Inline {
            buf,
            len: len as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn as_str(&self) -> &str {
        // Content is printable ASCII by construction.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The full field, right-padded with spaces.
    fn padded(&self) -> &[u8; N] {
        &self.buf
    }
}

/// Strict validation shared by the constructors.
fn strict<const N: usize>(
    what: &'static str,
    s: &str,
    allow_empty: bool,
    embedded_space_ok: bool,
) -> Result<Inline<N>, ValueError> {
    let trimmed = s.trim_end_matches(' ');
    if trimmed.len() > N {
        return Err(ValueError::TooLong {
            what,
            len: trimmed.len(),
            max: N,
        });
    }
    if trimmed.is_empty() && !allow_empty {
        return Err(ValueError::Empty { what });
    }
    for (pos, c) in trimmed.chars().enumerate() {
        if c == ' ' {
            if !embedded_space_ok || pos == 0 {
                return Err(ValueError::EmbeddedSpace { what, pos });
            }
        } else if !c.is_ascii() || !is_appendix_b(c as u8) {
            return Err(ValueError::InvalidChar {
                what,
                found: c,
                pos,
            });
        }
    }
    Ok(Inline::from_trimmed(trimmed.as_bytes()))
}

macro_rules! alnum_type {
    (
        $(#[$meta:meta])*
        $name:ident, $n:literal, $what:literal, allow_empty = $empty:literal,
        embedded_space = $space:literal
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy)]
        pub struct $name(Inline<$n>);

        impl $name {
            /// Width of the field in octets.
            pub const WIDTH: usize = $n;

            /// Validates `s` against the RFC 5024 rules for this field.
            /// Trailing spaces are padding and are ignored.
            pub fn new(s: &str) -> Result<Self, ValueError> {
                strict::<$n>($what, s, $empty, $space).map($name)
            }

            /// Rebuilds a value that was received from a partner (and
            /// stored, e.g. to echo it in a receipt): any printable ASCII
            /// the codec accepts leniently (lowercase letters, characters
            /// outside Appendix B), so an answer repeats exactly what the
            /// partner sent. Length and emptiness rules still apply.
            pub fn as_received(s: &str) -> Result<Self, ValueError> {
                let trimmed = s.trim_end_matches(' ');
                if trimmed.len() > $n {
                    return Err(ValueError::TooLong {
                        what: $what,
                        len: trimmed.len(),
                        max: $n,
                    });
                }
                if trimmed.is_empty() && !$empty {
                    return Err(ValueError::Empty { what: $what });
                }
                if let Some((pos, found)) = trimmed
                    .chars()
                    .enumerate()
                    .find(|(_, c)| !(c.is_ascii_graphic() || *c == ' '))
                {
                    return Err(ValueError::InvalidChar {
                        what: $what,
                        found,
                        pos,
                    });
                }
                Ok($name(Inline::from_trimmed(trimmed.as_bytes())))
            }

            /// Builds the value from a field as received, without the
            /// character checks (the caller has checked the octets are
            /// printable ASCII and recorded any deviation). `field` may be
            /// shorter than the width; trailing spaces are trimmed.
            pub(crate) fn from_wire(field: &[u8]) -> Self {
                let end = field.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
                $name(Inline::from_trimmed(&field[..end]))
            }

            /// The value without its padding.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The value without its padding, as octets.
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }

            /// The field as it goes on the wire: right-padded with spaces.
            pub fn padded(&self) -> &[u8; $n] {
                self.0.padded()
            }

            /// Whether the value satisfies the strict RFC 5024 character
            /// rules (always true for values built with `new`).
            pub fn is_strict(&self) -> bool {
                laxness(self.as_bytes(), $space).is_none()
                    && ($empty || !self.as_bytes().is_empty())
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }
        impl Eq for $name {}
        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_bytes().hash(state)
            }
        }
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_bytes().cmp(other.as_bytes())
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, ValueError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;
            fn try_from(s: &str) -> Result<Self, ValueError> {
                Self::new(s)
            }
        }
    };
}

alnum_type!(
    /// An ODETTE identification code (SSIDCODE, SFIDDEST, SFIDORIG, EERPDEST,
    /// EERPORIG, NERPDEST, NERPORIG, NERPCREA): `X(25)`, RFC 5024 section 5.4.
    ///
    /// The code follows ISO 6523 (SIO): an ODETTE identifier (`O`), a 4-digit
    /// International Code Designator, a 14-character organisation code and a
    /// 6-character computer subaddress. Because the organisation code may
    /// itself contain spaces, an embedded space is accepted here (a leading
    /// one is not); everything else must be Appendix B characters.
    OdetteId, 25, "identification code", allow_empty = false, embedded_space = true
);

alnum_type!(
    /// A virtual file dataset name (SFIDDSN, EERPDSN, NERPDSN): `X(26)`.
    DatasetName, 26, "dataset name", allow_empty = false, embedded_space = false
);

alnum_type!(
    /// User data (SSIDUSER, SFIDUSER, EERPUSER): `X(8)`, meaning by bilateral
    /// agreement; empty (all spaces) when unused.
    UserData, 8, "user data", allow_empty = true, embedded_space = false
);

alnum_type!(
    /// A session password (SSIDPSWD): `X(8)`.
    ///
    /// `Debug` does not show it. Some partners insist on passwords outside
    /// the RFC's character set; [`Password::new_relaxed`] admits those.
    Password, 8, "password", allow_empty = true, embedded_space = false
);

impl Password {
    /// Accepts any printable ASCII password without spaces, for partners
    /// whose agreed password does not keep to Appendix B (lowercase letters
    /// are common). It is sent as given.
    pub fn new_relaxed(s: &str) -> Result<Self, ValueError> {
        let what = "password";
        let trimmed = s.trim_end_matches(' ');
        if trimmed.len() > 8 {
            return Err(ValueError::TooLong {
                what,
                len: trimmed.len(),
                max: 8,
            });
        }
        for (pos, c) in trimmed.chars().enumerate() {
            if c == ' ' {
                return Err(ValueError::EmbeddedSpace { what, pos });
            }
            if !c.is_ascii_graphic() {
                return Err(ValueError::InvalidChar {
                    what,
                    found: c,
                    pos,
                });
            }
        }
        Ok(Password(Inline::from_trimmed(trimmed.as_bytes())))
    }
}

impl UserData {
    /// No user data (eight spaces on the wire).
    pub const EMPTY: UserData = UserData(Inline {
        buf: [b' '; 8],
        len: 0,
    });

    /// Whether no user data is present.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }
}

impl Default for UserData {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Default for Password {
    /// No password (eight spaces).
    fn default() -> Self {
        Password(Inline {
            buf: [b' '; 8],
            len: 0,
        })
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

macro_rules! display_debug {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }
    )*};
}
display_debug!(OdetteId, DatasetName, UserData);

impl OdetteId {
    /// Case-insensitive comparison, for matching a partner's code against
    /// configuration when the partner sends lowercase letters.
    pub fn eq_ignore_case(&self, other: &OdetteId) -> bool {
        self.as_bytes().eq_ignore_ascii_case(other.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odette_id_strict_rules() {
        let id = OdetteId::new("O0013000000000000TEST1").unwrap();
        assert_eq!(id.as_str(), "O0013000000000000TEST1");
        assert_eq!(&id.padded()[..], b"O0013000000000000TEST1   ");
        assert!(OdetteId::new("O0013ACME CORP    SUB1").is_ok());
        assert!(matches!(
            OdetteId::new(" O001"),
            Err(ValueError::EmbeddedSpace { pos: 0, .. })
        ));
        assert!(matches!(
            OdetteId::new("o0013"),
            Err(ValueError::InvalidChar { found: 'o', .. })
        ));
        assert!(matches!(
            OdetteId::new("   "),
            Err(ValueError::Empty { .. })
        ));
        assert!(matches!(
            OdetteId::new("O00130000000000000000000000"),
            Err(ValueError::TooLong {
                len: 27,
                max: 25,
                ..
            })
        ));
    }

    #[test]
    fn dataset_name_rejects_embedded_space() {
        assert!(DatasetName::new("PAYMENTS.2024").is_ok());
        assert!(DatasetName::new("A B").is_err());
        assert!(DatasetName::new("ABC   ").is_ok());
    }

    #[test]
    fn as_received_keeps_lenient_values() {
        let d = DatasetName::as_received("invoice.2026").unwrap();
        assert_eq!(d.as_str(), "invoice.2026");
        assert!(!d.is_strict());
        assert!(DatasetName::new("invoice.2026").is_err());
        assert!(DatasetName::as_received("").is_err());
        assert!(DatasetName::as_received(&"A".repeat(27)).is_err());
        assert!(DatasetName::as_received("A\u{7f}").is_err());
        assert_eq!(UserData::as_received("").unwrap(), UserData::EMPTY);
        assert_eq!(
            OdetteId::as_received("o0013000000x  ").unwrap().as_str(),
            "o0013000000x"
        );
    }

    #[test]
    fn password_relaxed_and_redacted() {
        assert!(Password::new("secret").is_err());
        let p = Password::new_relaxed("secret").unwrap();
        assert_eq!(p.as_str(), "secret");
        assert!(!p.is_strict());
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert!(Password::new_relaxed("a b").is_err());
    }

    #[test]
    fn laxness_classification() {
        assert_eq!(laxness(b"ABC", false), None);
        assert_eq!(laxness(b"AbC", false), Some(Laxness::Lowercase));
        assert_eq!(laxness(b"A_b", false), Some(Laxness::OutsideAppendixB));
        assert_eq!(laxness(b"A B", false), Some(Laxness::EmbeddedSpace));
        assert_eq!(laxness(b"A B", true), None);
        assert_eq!(laxness(b" AB", true), Some(Laxness::EmbeddedSpace));
    }
}
