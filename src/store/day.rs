//! UTC calendar days: uploads and stats are kept per day, named `YYYYMMDD`.

pub const MS_PER_DAY: u64 = 86_400_000;

/// A UTC day as the number `YYYYMMDD` (sorts like the date, readable in tree names).
pub type DayNumber = u32;

/// The UTC day of a Unix millisecond timestamp.
pub fn day_of_ms(unix_ms: u64) -> DayNumber {
    day_number_of_epoch_day((unix_ms / MS_PER_DAY) as i64)
}

/// The day `days_back` days before the day of `unix_ms`.
pub fn day_before(unix_ms: u64, days_back: u32) -> DayNumber {
    day_number_of_epoch_day((unix_ms / MS_PER_DAY) as i64 - i64::from(days_back))
}

/// `20261123` -> `"2026-11-23"`.
pub fn display(day: DayNumber) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day / 10_000,
        day / 100 % 100,
        day % 100
    )
}

/// Days since 1970-01-01 -> `YYYYMMDD`.
fn day_number_of_epoch_day(epoch_day: i64) -> DayNumber {
    let (year, month, day) = crate::http::date::civil_from_days(epoch_day);
    assert!((0..=9999).contains(&year));
    (year * 10_000 + i64::from(month) * 100 + i64::from(day)) as DayNumber
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(day_of_ms(0), 19700101);
        assert_eq!(day_of_ms(1_767_225_600_000), 20260101);
        assert_eq!(day_of_ms(1_767_225_600_000 - 1), 20251231);
        assert_eq!(day_of_ms(1_709_164_800_000), 20240229); // leap day
        assert_eq!(day_before(1_767_225_600_000, 1), 20251231);
        assert_eq!(display(20260301), "2026-03-01");
    }
}
