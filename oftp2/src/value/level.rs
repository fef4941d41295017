//! Protocol release level (SSIDLEV).

use std::fmt;

use super::ValueError;

/// ODETTE-FTP protocol release level, the SSIDLEV digit.
///
/// RFC 5024 section 5.3.2 assigns `1` to revision 1.2, `2` to 1.3, `4` to
/// 1.4 and `5` to 2.0, and says future levels will have higher numbers and
/// that the lowest level of both sides is selected. Any non-zero digit is
/// therefore kept as received (a partner offering `6` simply negotiates down
/// to 5 with [`ProtocolLevel::negotiate`]); `0` is not a level.
///
/// Note that RFC 2204 (revision 1.3) itself sends `1`; levels 1 to 3 share
/// the 1.3 command layouts in [`crate::codec`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolLevel(u8);

impl ProtocolLevel {
    /// Revision 1.2 (`1`); also what RFC 2204 (revision 1.3) sends.
    pub const V1_2: ProtocolLevel = ProtocolLevel(1);
    /// Revision 1.3 (`2`).
    pub const V1_3: ProtocolLevel = ProtocolLevel(2);
    /// Revision 1.4 (`4`).
    pub const V1_4: ProtocolLevel = ProtocolLevel(4);
    /// Revision 2.0 (`5`), RFC 5024.
    pub const V2_0: ProtocolLevel = ProtocolLevel(5);

    /// The highest level this implementation speaks.
    pub const LATEST: ProtocolLevel = Self::V2_0;

    /// A level from its SSIDLEV value (1..=9).
    pub fn from_digit(d: u8) -> Result<Self, ValueError> {
        if (1..=9).contains(&d) {
            Ok(ProtocolLevel(d))
        } else {
            Err(ValueError::OutOfRange {
                what: "protocol level",
                value: u64::from(d),
                range: "1..=9",
            })
        }
    }

    /// The SSIDLEV digit value.
    pub const fn digit(self) -> u8 {
        self.0
    }

    /// Whether the level is one RFC 5024 names (1, 2, 4 or 5).
    pub const fn is_known(self) -> bool {
        matches!(self.0, 1 | 2 | 4 | 5)
    }

    /// Whether this level has the OFTP 2.0 command set and layouts
    /// (SECD/AUCH/AURP, variable-length reason texts, signed receipts...).
    pub const fn is_v2(self) -> bool {
        self.0 >= 5
    }

    /// The level both sides use: the lower of the two, capped at the highest
    /// level this implementation speaks.
    pub fn negotiate(self, other: ProtocolLevel) -> ProtocolLevel {
        self.min(other).min(Self::LATEST)
    }

    /// Human-readable revision, e.g. "2.0".
    pub const fn revision(self) -> &'static str {
        match self.0 {
            1 => "1.2",
            2 => "1.3",
            3 => "1.3+",
            4 => "1.4",
            5 => "2.0",
            _ => "future",
        }
    }
}

impl fmt::Display for ProtocolLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (revision {})", self.0, self.revision())
    }
}

impl fmt::Debug for ProtocolLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProtocolLevel({}, rev {})", self.0, self.revision())
    }
}

impl Default for ProtocolLevel {
    fn default() -> Self {
        Self::LATEST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_lowest_and_caps() {
        let six = ProtocolLevel::from_digit(6).unwrap();
        assert_eq!(six.negotiate(ProtocolLevel::V2_0), ProtocolLevel::V2_0);
        assert_eq!(ProtocolLevel::V2_0.negotiate(six), ProtocolLevel::V2_0);
        assert_eq!(
            ProtocolLevel::V2_0.negotiate(ProtocolLevel::V1_4),
            ProtocolLevel::V1_4
        );
        assert!(!six.is_known());
        assert!(ProtocolLevel::from_digit(0).is_err());
        assert!(ProtocolLevel::from_digit(10).is_err());
    }
}
