//! Virtual file date and time stamps (SFIDDATE/SFIDTIME, EERPDATE/...).
//!
//! OFTP 2.0 and 1.4 use `CCYYMMDD` and `HHMMSScccc` (the counter gives
//! sub-second resolution, 0001-9999); OFTP 1.3 uses `YYMMDD` and `HHMMSS`.
//! Together with the dataset name they identify a virtual file, so they are
//! kept exactly as the originator assigned them.

use std::fmt;
use std::str::FromStr;

use super::ValueError;

/// A calendar date (`CCYYMMDD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// A time of day with the OFTP counter (`HHMMSScccc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    hour: u8,
    minute: u8,
    second: u8,
    counter: u16,
}

/// Date and time stamp of a virtual file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// The date stamp.
    pub date: Date,
    /// The time stamp.
    pub time: Time,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A validated date; year 0..=9999.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, ValueError> {
        if year > 9999 {
            return Err(ValueError::OutOfRange {
                what: "year",
                value: year.into(),
                range: "0..=9999",
            });
        }
        if !(1..=12).contains(&month) {
            return Err(ValueError::OutOfRange {
                what: "month",
                value: month.into(),
                range: "1..=12",
            });
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(ValueError::OutOfRange {
                what: "day",
                value: day.into(),
                range: "1..=days in month",
            });
        }
        Ok(Date { year, month, day })
    }

    /// Year (four digits).
    pub const fn year(self) -> u16 {
        self.year
    }
    /// Month 1..=12.
    pub const fn month(self) -> u8 {
        self.month
    }
    /// Day of month.
    pub const fn day(self) -> u8 {
        self.day
    }

    /// `CCYYMMDD` as a number (e.g. 20071101).
    pub const fn ccyymmdd(self) -> u32 {
        self.year as u32 * 10_000 + self.month as u32 * 100 + self.day as u32
    }

    /// From the `CCYYMMDD` number.
    pub fn from_ccyymmdd(v: u32) -> Result<Self, ValueError> {
        if v > 99_991_231 {
            return Err(ValueError::OutOfRange {
                what: "date",
                value: v.into(),
                range: "CCYYMMDD",
            });
        }
        Date::new((v / 10_000) as u16, (v / 100 % 100) as u8, (v % 100) as u8)
    }

    /// The two-digit year of the OFTP 1.3 `YYMMDD` form, if the year is in
    /// the window 1970..=2069 that [`Date::from_yymmdd`] maps back.
    pub fn yymmdd(self) -> Option<u32> {
        if (1970..=2069).contains(&self.year) {
            Some(
                u32::from(self.year % 100) * 10_000
                    + u32::from(self.month) * 100
                    + u32::from(self.day),
            )
        } else {
            None
        }
    }

    /// From the OFTP 1.3 `YYMMDD` number: years 70..=99 are 19xx, 00..=69
    /// are 20xx (OFTP 1.3 dates from 1997, so nothing earlier than 1970 is
    /// meaningful).
    pub fn from_yymmdd(v: u32) -> Result<Self, ValueError> {
        if v > 991_231 {
            return Err(ValueError::OutOfRange {
                what: "date",
                value: v.into(),
                range: "YYMMDD",
            });
        }
        let yy = (v / 10_000) as u16;
        let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
        Date::new(year, (v / 100 % 100) as u8, (v % 100) as u8)
    }
}

impl Time {
    /// A validated time; `counter` is the OFTP sub-second counter
    /// (RFC 5024: 0001-9999; 0000 is what 1.x stamps and many
    /// implementations send, so it is accepted too).
    pub fn new(hour: u8, minute: u8, second: u8, counter: u16) -> Result<Self, ValueError> {
        let check = |what, v: u64, max: u64, range| {
            if v > max {
                Err(ValueError::OutOfRange {
                    what,
                    value: v,
                    range,
                })
            } else {
                Ok(())
            }
        };
        check("hour", hour.into(), 23, "0..=23")?;
        check("minute", minute.into(), 59, "0..=59")?;
        check("second", second.into(), 59, "0..=59")?;
        check("time counter", counter.into(), 9999, "0..=9999")?;
        Ok(Time {
            hour,
            minute,
            second,
            counter,
        })
    }

    /// Hour 0..=23.
    pub const fn hour(self) -> u8 {
        self.hour
    }
    /// Minute 0..=59.
    pub const fn minute(self) -> u8 {
        self.minute
    }
    /// Second 0..=59.
    pub const fn second(self) -> u8 {
        self.second
    }
    /// Counter 0..=9999.
    pub const fn counter(self) -> u16 {
        self.counter
    }

    /// `HHMMSScccc` as a number.
    pub const fn hhmmsscccc(self) -> u64 {
        self.hour as u64 * 100_000_000
            + self.minute as u64 * 1_000_000
            + self.second as u64 * 10_000
            + self.counter as u64
    }

    /// From the `HHMMSScccc` number.
    pub fn from_hhmmsscccc(v: u64) -> Result<Self, ValueError> {
        if v > 2_359_599_999 {
            return Err(ValueError::OutOfRange {
                what: "time",
                value: v,
                range: "HHMMSScccc",
            });
        }
        Time::new(
            (v / 100_000_000) as u8,
            (v / 1_000_000 % 100) as u8,
            (v / 10_000 % 100) as u8,
            (v % 10_000) as u16,
        )
    }

    /// The OFTP 1.3 `HHMMSS` number, if the counter is zero (1.3 has no
    /// counter, so a non-zero one cannot be represented).
    pub const fn hhmmss(self) -> Option<u32> {
        if self.counter == 0 {
            Some(self.hour as u32 * 10_000 + self.minute as u32 * 100 + self.second as u32)
        } else {
            None
        }
    }

    /// From the OFTP 1.3 `HHMMSS` number (counter zero).
    pub fn from_hhmmss(v: u32) -> Result<Self, ValueError> {
        if v > 235_959 {
            return Err(ValueError::OutOfRange {
                what: "time",
                value: v.into(),
                range: "HHMMSS",
            });
        }
        Time::new(
            (v / 10_000) as u8,
            (v / 100 % 100) as u8,
            (v % 100) as u8,
            0,
        )
    }
}

impl Timestamp {
    /// A stamp from its parts.
    pub const fn new(date: Date, time: Time) -> Self {
        Timestamp { date, time }
    }

    /// A stamp for a UTC instant given as seconds since the Unix epoch, with
    /// the OFTP counter (the caller keeps the counter unique per second).
    /// This crate never reads the clock itself.
    pub fn from_unix_seconds(secs: i64, counter: u16) -> Result<Self, ValueError> {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Civil-from-days (proleptic Gregorian), H. Hinnant's algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let year = u16::try_from(year).map_err(|_| ValueError::OutOfRange {
            what: "year",
            value: year.unsigned_abs(),
            range: "0..=9999",
        })?;
        Ok(Timestamp {
            date: Date::new(year, month as u8, day as u8)?,
            time: Time::new(
                (sod / 3600) as u8,
                (sod / 60 % 60) as u8,
                (sod % 60) as u8,
                counter,
            )?,
        })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}{:02}{:02}{:04}",
            self.hour, self.minute, self.second, self.counter
        )
    }
}

impl fmt::Display for Timestamp {
    /// `CCYYMMDDHHMMSScccc`, the wire digits of date and time together.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.date, self.time)
    }
}

fn parse_digits(
    what: &'static str,
    s: &str,
    len: usize,
    expected: &'static str,
) -> Result<u64, ValueError> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::Parse {
            what,
            input: s.chars().take(32).collect(),
            expected,
        });
    }
    Ok(s.bytes()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0')))
}

impl FromStr for Date {
    type Err = ValueError;
    /// Parses `CCYYMMDD`.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Date::from_ccyymmdd(parse_digits("date", s, 8, "8 digits CCYYMMDD")? as u32)
    }
}

impl FromStr for Time {
    type Err = ValueError;
    /// Parses `HHMMSScccc`.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Time::from_hhmmsscccc(parse_digits("time", s, 10, "10 digits HHMMSScccc")?)
    }
}

impl FromStr for Timestamp {
    type Err = ValueError;
    /// Parses `CCYYMMDDHHMMSScccc`.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let expected = "18 digits CCYYMMDDHHMMSScccc";
        if s.len() != 18 || !s.is_ascii() {
            return Err(ValueError::Parse {
                what: "timestamp",
                input: s.chars().take(32).collect(),
                expected,
            });
        }
        let (d, t) = s.split_at(8);
        Ok(Timestamp {
            date: d.parse()?,
            time: t.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_validation() {
        assert!(Date::new(2024, 2, 29).is_ok());
        assert!(Date::new(2023, 2, 29).is_err());
        assert!(Date::new(2000, 2, 29).is_ok());
        assert!(Date::new(1900, 2, 29).is_err());
        assert!(Date::new(2024, 13, 1).is_err());
        assert!(Date::new(2024, 4, 31).is_err());
        assert_eq!(Date::from_ccyymmdd(20071101).unwrap().ccyymmdd(), 20071101);
    }

    #[test]
    fn two_digit_years_window() {
        let d = Date::from_yymmdd(970923).unwrap();
        assert_eq!(d.year(), 1997);
        assert_eq!(d.yymmdd(), Some(970923));
        let d = Date::from_yymmdd(240101).unwrap();
        assert_eq!(d.year(), 2024);
        assert_eq!(Date::new(2070, 1, 1).unwrap().yymmdd(), None);
    }

    #[test]
    fn timestamp_text_and_unix() {
        let ts: Timestamp = "200711011230450001".parse().unwrap();
        assert_eq!(ts.to_string(), "200711011230450001");
        assert!("20071101123045000".parse::<Timestamp>().is_err());
        assert!("2007110112304500x1".parse::<Timestamp>().is_err());
        // 2007-11-01T12:30:45Z
        let u = Timestamp::from_unix_seconds(1_193_920_245, 1).unwrap();
        assert_eq!(u, ts);
        let epoch = Timestamp::from_unix_seconds(0, 0).unwrap();
        assert_eq!(epoch.to_string(), "197001010000000000");
        assert_eq!(Time::new(12, 0, 0, 5).unwrap().hhmmss(), None);
    }
}
