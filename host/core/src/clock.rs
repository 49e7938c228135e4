//! The clock records, ground truth and shards share.

/// Nanoseconds on `CLOCK_MONOTONIC`: the clock of every `Instant` here, and
/// the same for every process on the machine, so a separate `barrage sim`'s
/// ground truth compares directly with a run's records.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The UTC calendar date and time of `unix_s` seconds since the epoch:
/// (year, month, day, hour, minute, second). For names and timestamps
/// (results directories, JUnit files) without a date crate.
pub fn utc(unix_s: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (unix_s.div_euclid(86_400), unix_s.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days from 1970-01-01 to the civil date `y-m-d` (the inverse of [`utc`]'s).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An instant given as RFC 3339 (`2026-12-03T10:00:00Z`,
/// `2026-12-03T11:00:00.250+01:00`) or as Unix seconds (`1796292000`,
/// `1796292000.25`): ms since the Unix epoch.
pub fn parse_instant(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if let Ok(unix_s) = t.parse::<f64>() {
        return if unix_s.is_finite() && unix_s >= 0.0 {
            Ok(unix_s * 1000.0)
        } else {
            Err(format!("`{text}` is not a time: give Unix seconds or RFC 3339"))
        };
    }
    let bad = || format!("`{text}` is not a time: give RFC 3339, e.g. 2026-12-03T10:00:00Z, or Unix seconds");
    let (date, rest) = t.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (y, mo, d) = (
        ymd.next().ok_or_else(bad)??,
        ymd.next().ok_or_else(bad)??,
        ymd.next().ok_or_else(bad)??,
    );
    // The offset: `Z`, or `±hh:mm` after the time.
    let (time, offset_min) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else {
        let at = rest.rfind(['+', '-']).ok_or_else(bad)?;
        let (time, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
        let minutes = h.parse::<i64>().map_err(|_| bad())? * 60 + m.parse::<i64>().map_err(|_| bad())?;
        (time, sign * minutes)
    };
    let mut hms = time.split(':');
    let (h, mi, sec) = (
        hms.next().ok_or_else(bad)?,
        hms.next().ok_or_else(bad)?,
        hms.next().ok_or_else(bad)?,
    );
    let (h, mi): (i64, i64) = (h.parse().map_err(|_| bad())?, mi.parse().map_err(|_| bad())?);
    let sec: f64 = sec.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    let seconds = (days * 86_400 + h * 3600 + mi * 60 - offset_min * 60) as f64 + sec;
    Ok(seconds * 1000.0)
}

/// Now, ms since the Unix epoch.
pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_are_read_as_rfc_3339_or_unix_seconds() {
        use super::parse_instant;
        assert_eq!(parse_instant("1709251199"), Ok(1_709_251_199_000.0));
        assert_eq!(parse_instant("1709251199.5"), Ok(1_709_251_199_500.0));
        assert_eq!(parse_instant("2024-02-29T23:59:59Z"), Ok(1_709_251_199_000.0));
        assert_eq!(parse_instant("2024-03-01T00:59:59.25+01:00"), Ok(1_709_251_199_250.0));
        assert_eq!(parse_instant("2024-02-29T18:59:59-05:00"), Ok(1_709_251_199_000.0));
        for bad in ["tomorrow", "2024-13-01T00:00:00Z", "2024-02-29T23:59:59", "-5"] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn utc_dates_are_the_calendar_ones() {
        assert_eq!(super::utc(0), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(super::utc(1_709_251_199), (2024, 2, 29, 23, 59, 59));
        assert_eq!(super::utc(1_764_639_000), (2025, 12, 2, 1, 30, 0));
    }
}
