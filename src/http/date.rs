//! The `Date` header value, formatted once per second per thread (IMF-fixdate, RFC 9110 §5.6.7).

use std::cell::RefCell;

/// "Sun, 06 Nov 1994 08:49:37 GMT" is always 29 bytes.
pub const HTTP_DATE_LEN: usize = 29;

thread_local! {
    static CACHED: RefCell<(u64, [u8; HTTP_DATE_LEN])> = const { RefCell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
}

/// Appends the current HTTP date to `out`, reformatting only when the second changed. The
/// second is the coarse clock's (crate::clock): every answer reads it, and a `Date` a few
/// milliseconds late at a second's turn is still the right second for HTTP.
pub fn append_now(out: &mut Vec<u8>) {
    let now_secs = crate::clock::unix_now_secs_coarse();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != now_secs {
            *cached = (now_secs, format_http_date(now_secs));
        }
        out.extend_from_slice(&cached.1);
    });
}

pub fn format_http_date(unix_secs: u64) -> [u8; HTTP_DATE_LEN] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days_since_epoch = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days_since_epoch as i64);
    let text = format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days_since_epoch % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    );
    let mut bytes = [0u8; HTTP_DATE_LEN];
    assert_eq!(text.len(), HTTP_DATE_LEN, "years 1000..=9999 only");
    bytes.copy_from_slice(text.as_bytes());
    bytes
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, exact for the proleptic Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(
            &format_http_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(&format_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &format_http_date(1_709_164_800),
            b"Thu, 29 Feb 2024 00:00:00 GMT"
        );
    }
}
