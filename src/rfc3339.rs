//! Timestamps as RFC 3339 text in UTC: written into JSON responses straight
//! from a stack buffer, and read back from the text sqlx stores in SQLite.
//!
//! The text is exactly chrono's own serde output (`SecondsFormat::AutoSi`
//! with `Z`: no fraction, or 3, 6 or 9 digits, whichever is exact), so
//! clients see no difference. chrono writes through `core::fmt`, which
//! serde_json must escape piece by piece; on `GET /v1/companies` that was
//! about 5% of the server's CPU for ten timestamps. Years outside 0..=9999
//! and leap seconds, which need chrono's longer forms, go through chrono.
//!
//! [`parse`] reads what sqlx writes for a `DateTime<Utc>` in SQLite
//! (`to_rfc3339_opts(AutoSi, false)`, so `+00:00`) without chrono's
//! general-purpose scanner, which was a tenth of the SQLite read path;
//! anything but that plain UTC form goes through chrono.
//!
//! Use on a response field: `#[serde(serialize_with = "crate::rfc3339::serialize")]`
//! (or `serialize_option` for `Option<DateTime<Utc>>`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Longest text written here: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// Serializes `t` as RFC 3339 text, e.g. `2026-11-22T10:04:05.123456Z`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write(t, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => t.serialize(serializer),
    }
}

/// [`serialize`] for an optional timestamp (`null` when absent).
pub fn serialize_option<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, serializer),
        None => serializer.serialize_none(),
    }
}

/// Writes `t` into `buf`; the length written, or `None` when `t` needs a
/// form this fast path does not write (year outside 0..=9999, leap second).
fn write(t: &DateTime<Utc>, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut buf[0..4], year);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], t.second());
    let (width, fraction) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (3, nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        (6, nanos / 1_000)
    } else {
        (9, nanos)
    };
    let mut end = 19;
    if width > 0 {
        buf[19] = b'.';
        digits(&mut buf[20..20 + width], fraction);
        end = 20 + width;
    }
    buf[end] = b'Z';
    Some(end + 1)
}

/// Reads a timestamp as sqlx stores `DateTime<Utc>` in SQLite: RFC 3339
/// (`2026-11-22T10:04:05.123456789+00:00`, any offset, `Z` too), or
/// `YYYY-MM-DD HH:MM:SS[.f]` read as UTC. `None` when `s` is neither. The
/// plain UTC form (`T`, 0 to 9 fraction digits, `Z` or `+00:00`, no leap
/// second) is parsed here; every other form goes through chrono.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    parse_utc(s.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc())
            })
    })
}

/// The plain UTC form of [`parse`]; `None` for anything else.
fn parse_utc(b: &[u8]) -> Option<DateTime<Utc>> {
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 20 || (b[4], b[7], b[10], b[13], b[16]) != (b'-', b'-', b'T', b':', b':') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut end = 19;
    let mut nanos = 0;
    if b[end] == b'.' {
        let digits = b[end + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = number(end + 1..end + 1 + digits)? * 10u32.pow(9 - digits as u32);
        end += 1 + digits;
    }
    if !matches!(&b[end..], b"Z" | b"+00:00") || second > 59 {
        return None;
    }
    Some(
        date.and_hms_nano_opt(hour, minute, second, nanos)?
            .and_utc(),
    )
}

/// `n` in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, SecondsFormat, TimeZone};

    use super::*;

    fn ours(t: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(t, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn chronos(t: &DateTime<Utc>) -> String {
        serde_json::to_string(t).unwrap()
    }

    #[test]
    fn writes_what_chrono_writes() {
        // Fixed edge cases, then a spread of instants and sub-second parts.
        let mut cases = vec![
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.from_utc_datetime(
                &NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                    .unwrap(),
            ),
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let secs = (seed >> 11) as i64 % 253_402_300_799; // up to 9999-12-31
            let nanos = match seed % 4 {
                0 => 0,
                1 => (seed >> 7) as u32 % 1000 * 1_000_000,
                2 => (seed >> 7) as u32 % 1_000_000 * 1_000,
                _ => (seed >> 7) as u32 % 1_000_000_000,
            };
            cases.push(Utc.timestamp_opt(secs, nanos).unwrap());
        }
        for t in &cases {
            assert_eq!(
                ours(t),
                chronos(t),
                "{}",
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        }
    }

    #[test]
    fn parses_what_chrono_parses() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let secs = (seed >> 11) as i64 % 253_402_300_799;
            let nanos = (seed >> 7) as u32 % 1_000_000_000 / 10u32.pow((seed % 10) as u32)
                * 10u32.pow((seed % 10) as u32);
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            for text in [
                t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                t.to_rfc3339_opts(SecondsFormat::Nanos, false),
                t.to_rfc3339_opts(SecondsFormat::Millis, true),
            ] {
                assert!(!text.ends_with("+00:00") || parse(&text) == Some(t));
                let chrono = DateTime::parse_from_rfc3339(&text).unwrap().to_utc();
                assert_eq!(parse_utc(text.as_bytes()), Some(chrono), "{text}");
            }
        }
        // Other forms are chrono's; malformed text is `None`, never a panic.
        for other in [
            "2016-12-31T23:59:60.5+00:00",
            "2026-11-22T10:00:00.1234567890Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(other).ok().map(|t| t.to_utc());
            assert_eq!(parse(other), chrono, "{other}");
        }
        assert_eq!(
            parse("2026-11-22T12:00:00+02:00"),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap())
        );
        assert_eq!(
            parse("2026-11-22 10:00:00.25"),
            Some(Utc.timestamp_opt(1_795_341_600, 250_000_000).unwrap())
        );
        for bad in [
            "",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00+00:0",
            "2026-11-22T10:00:00Zjunk",
            "2026-11-22T1a:00:00Z",
            "２026-11-22T10:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn option_none_is_null() {
        let mut out = Vec::new();
        serialize_option(&None, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(out, b"null");
    }
}
