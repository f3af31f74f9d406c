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
    fn malformed_times_are_none() {
        assert!(parse_api_time("2026-11-27").is_none());
        assert!(parse_api_time("yesterday").is_none());
    }
}
