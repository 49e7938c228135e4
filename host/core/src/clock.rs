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

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates_are_the_calendar_ones() {
        assert_eq!(super::utc(0), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(super::utc(1_709_251_199), (2024, 2, 29, 23, 59, 59));
        assert_eq!(super::utc(1_764_639_000), (2025, 12, 2, 1, 30, 0));
    }
}
