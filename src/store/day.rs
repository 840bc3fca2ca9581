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

/// Days since 1970-01-01 -> `YYYYMMDD` (Howard Hinnant's civil_from_days).
fn day_number_of_epoch_day(epoch_day: i64) -> DayNumber {
    let shifted = epoch_day + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    assert!((0..=9999).contains(&year));
    (year * 10_000 + month * 100 + day) as DayNumber
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
