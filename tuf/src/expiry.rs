//! Expiry times: always `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, UTC.
//!
//! python-tuf refuses fractional seconds and offsets other than `Z`, so Notar neither writes
//! nor accepts them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::Error;

/// A point in time at which metadata stops being valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry(OffsetDateTime);

impl Expiry {
    /// The expiry `seconds` after `now`, truncated to whole seconds.
    pub fn after(now: OffsetDateTime, lifetime: time::Duration) -> Self {
        Self::from_datetime(now + lifetime)
    }

    /// Truncates `at` to whole seconds in UTC.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(time::UtcOffset::UTC);
        Expiry(utc.replace_nanosecond(0).unwrap_or(utc))
    }

    /// The expiry as a date-time in UTC.
    pub fn datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// Whether metadata with this expiry is expired at `now` (an expiry equal to now counts
    /// as expired, as the specification's "expiration timestamp is not in the past" implies).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.0 <= now
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

impl FromStr for Expiry {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidExpiry {
            value: s.to_owned(),
        };
        let b = s.as_bytes();
        let shape_ok = b.len() == 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z'
            && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
                .iter()
                .all(|&i| b[i].is_ascii_digit());
        if !shape_ok {
            return Err(invalid());
        }
        let num = |range: std::ops::Range<usize>| -> Result<u16, Error> {
            s.get(range)
                .and_then(|part| part.parse().ok())
                .ok_or_else(invalid)
        };
        let year = i32::from(num(0..4)?);
        let month = Month::try_from(u8::try_from(num(5..7)?).map_err(|_| invalid())?)
            .map_err(|_| invalid())?;
        let as_u8 = |v: u16| u8::try_from(v).map_err(|_| invalid());
        let date =
            Date::from_calendar_date(year, month, as_u8(num(8..10)?)?).map_err(|_| invalid())?;
        let clock = Time::from_hms(
            as_u8(num(11..13)?)?,
            as_u8(num(14..16)?)?,
            as_u8(num(17..19)?)?,
        )
        .map_err(|_| invalid())?;
        Ok(Expiry(PrimitiveDateTime::new(date, clock).assume_utc()))
    }
}

impl Serialize for Expiry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_one_format() {
        let e: Expiry = "2030-01-02T03:04:05Z".parse().expect("valid expiry");
        assert_eq!(e.to_string(), "2030-01-02T03:04:05Z");
    }

    #[test]
    fn refuses_every_other_format() {
        for bad in [
            "2030-01-02T03:04:05.5Z",
            "2030-01-02T03:04:05+00:00",
            "2030-01-02 03:04:05Z",
            "2030-01-02T03:04:05z",
            "2030-13-02T03:04:05Z",
            "2030-02-30T03:04:05Z",
            "2030-01-02T24:00:00Z",
            "30-01-02T03:04:05Z",
            "２030-01-02T03:04:05Z",
            "",
        ] {
            assert!(
                matches!(bad.parse::<Expiry>(), Err(Error::InvalidExpiry { .. })),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn truncates_fractions_when_made_from_a_time() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_987_654_321)
            .expect("valid timestamp");
        assert_eq!(
            Expiry::from_datetime(at).to_string(),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn expired_at_the_instant_itself() {
        let e: Expiry = "2030-01-02T03:04:05Z".parse().expect("valid expiry");
        assert!(e.is_expired_at(e.datetime()));
        assert!(!e.is_expired_at(e.datetime() - time::Duration::seconds(1)));
    }
}
