//! Both APIs speak Japan local time as `YYYY-MM-DD HH:MM:SS` without a zone.
//! Inside the service every instant is UTC; these helpers are the only bridge.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

pub const API_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

pub fn to_jst(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.with_timezone(&jst()).naive_local()
}

pub fn from_jst(local: NaiveDateTime) -> DateTime<Utc> {
    jst()
        .from_local_datetime(&local)
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

pub fn format_jst(instant: DateTime<Utc>) -> String {
    to_jst(instant).format(API_FORMAT).to_string()
}

pub fn parse_api_time(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text.trim(), API_FORMAT).ok()
}

/// A time in a push, as Japan local time. Besides the API's own format, pushes
/// may carry ISO 8601 / RFC 3339 times (with or without offset, `T` or space,
/// fractional seconds): refusing one would fail every 再送 of that push forever,
/// so every unambiguous writing is read. A time without offset is Japan time,
/// as everywhere in the API; one with an offset is converted to it.
pub fn parse_push_time(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(to_jst(with_offset.with_timezone(&Utc)));
    }
    // RFC 3339 needs the colon in the offset; ISO 8601's basic `+0900` is read too.
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(with_offset) = DateTime::parse_from_str(text, format) {
            return Some(to_jst(with_offset.with_timezone(&Utc)));
        }
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_japan_time_are_nine_hours_apart() {
        let local = parse_api_time("2026-11-27 09:00:00").unwrap();
        let utc = from_jst(local);
        assert_eq!(utc.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(format_jst(utc), "2026-11-27 09:00:00");
    }

    #[test]
    fn push_times_in_every_unambiguous_writing_are_japan_time() {
        let expected = parse_api_time("2026-01-02 03:04:05");
        for text in [
            "2026-01-02 03:04:05",
            " 2026-01-02 03:04:05 ",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+09:00",
            "2026-01-02T03:04:05+0900",
            "2026-01-02 03:04:05+09:00",
            "2026-01-01T18:04:05Z",
            "2026-01-01T18:04:05z",
            "2026-01-01T18:04:05+00:00",
            "2026-01-01T13:04:05-05:00",
        ] {
            assert_eq!(parse_push_time(text), expected, "{text}");
        }
    }

    #[test]
    fn push_times_keep_their_fractional_seconds() {
        let expected =
            NaiveDateTime::parse_from_str("2026-01-02 03:04:05.250", "%Y-%m-%d %H:%M:%S%.f");
        for text in [
            "2026-01-02 03:04:05.250",
            "2026-01-02T03:04:05.25",
            "2026-01-02T03:04:05.250+09:00",
            "2026-01-01T18:04:05.250000Z",
        ] {
            assert_eq!(parse_push_time(text), expected.ok(), "{text}");
        }
    }

    #[test]
    fn impossible_or_partial_push_times_are_none() {
        for text in [
            "",
            "2026-02-30 10:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-02 24:00:01",
            "2026-01-02",
            "2026/01/02 03:04:05",
            "2026-01-02T03:04",
            "2026-01-02T03:04:05+25:00",
            "yesterday",
        ] {
            assert_eq!(parse_push_time(text), None, "{text}");
        }
    }

    #[test]
    fn malformed_times_are_none() {
        assert!(parse_api_time("2026-11-27").is_none());
        assert!(parse_api_time("yesterday").is_none());
    }
}
