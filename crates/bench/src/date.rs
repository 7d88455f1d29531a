//! Today's date (UTC) for the headers of reports and charts, without a date-time dependency.
//!
//! Benchmark figures are only meaningful with the date and machine they were taken on.

use std::time::{SystemTime, UNIX_EPOCH};

/// The civil date (`YYYY-MM-DD`, proleptic Gregorian) of `days` days since 1970-01-01.
///
/// ```
/// use revocable_bench::date::civil_from_days;
/// assert_eq!(civil_from_days(0), "1970-01-01");
/// assert_eq!(civil_from_days(19_782), "2024-02-29");
/// ```
pub fn civil_from_days(days: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm (eras of 400 years, March-based years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Today's date in UTC as `YYYY-MM-DD`.
///
/// ```
/// assert_eq!(revocable_bench::date::today_utc().len(), 10);
/// ```
pub fn today_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days((secs / 86_400) as i64)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(-1), "1969-12-31");
        assert_eq!(civil_from_days(10_957), "2000-01-01");
        assert_eq!(civil_from_days(11_016), "2000-02-29");
        assert_eq!(civil_from_days(20_417), "2025-11-25");
        assert_eq!(civil_from_days(20_454), "2026-01-01");
    }
}
