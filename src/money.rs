//! Points as the money the captcha protocols show (server/compat/): balances and prices are decimal amounts
//! there. One point is worth `price_per_point` (config); amounts are computed in millionths,
//! exactly, never in floating point.

/// The most points a balance holds (spendable and reserved together), and the most any
/// single amount of points (a cost, a grant, an adjustment) may be: 2^53 - 1, so that every
/// points number in a JSON answer is an integer every reader reads exactly
/// (`json_numbers`). The store's journal refuses any movement that would take a balance past
/// it; the configuration refuses costs above it.
pub const MAX_POINTS: i64 = crate::json_numbers::MAX_SAFE_INTEGER;

/// Millionths of a currency unit in one unit.
const MICROS_PER_UNIT: u64 = 1_000_000;

/// The worth of one point, in millionths of a currency unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointPrice {
    pub micros: u64,
}

impl PointPrice {
    /// `"0.001"`, `"1"`, `"0.000125"`: at most 6 decimals, at most 1000 per point.
    pub fn parse(text: &str) -> Option<PointPrice> {
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        if whole.is_empty() && fraction.is_empty() || fraction.len() > 6 {
            return None;
        }
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(fraction) {
            return None;
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let padded = format!("{fraction:0<6}");
        let fraction: u64 = padded.parse().ok()?;
        (whole <= 1000).then_some(PointPrice {
            micros: whole * MICROS_PER_UNIT + fraction,
        })
    }

    /// The amount of `points` with `decimals` decimals (rounded down), e.g. `12.345`.
    pub fn amount(self, points: i64, decimals: u32) -> String {
        assert!(decimals <= 6);
        let micros = i128::from(points) * i128::from(self.micros);
        let scale = 10i128.pow(6 - decimals);
        let scaled = micros / scale;
        let sign = if scaled < 0 { "-" } else { "" };
        let scaled = scaled.abs();
        let unit = 10i128.pow(decimals);
        match decimals {
            0 => format!("{sign}{scaled}"),
            _ => format!(
                "{sign}{}.{:0width$}",
                scaled / unit,
                scaled % unit,
                width = decimals as usize
            ),
        }
    }

    /// The amount of `points` as a JSON number.
    pub fn amount_number(self, points: i64) -> f64 {
        (i128::from(points) * i128::from(self.micros)) as f64 / MICROS_PER_UNIT as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly_and_amounts_format_as_decimals() {
        let price = PointPrice::parse("0.001").unwrap();
        assert_eq!(price.micros, 1000);
        assert_eq!(price.amount(12_345, 5), "12.34500");
        assert_eq!(price.amount(1, 5), "0.00100");
        assert_eq!(price.amount(0, 3), "0.000");
        assert_eq!(price.amount(-2, 3), "-0.002");
        assert_eq!(price.amount_number(1500), 1.5);
        assert_eq!(PointPrice::parse("1").unwrap().amount(3, 0), "3");
        assert_eq!(PointPrice::parse(".5").unwrap().micros, 500_000);
        for bad in ["", ".", "0.0000001", "-1", "1e3", "abc", "1001"] {
            assert_eq!(PointPrice::parse(bad), None, "{bad}");
        }
    }
}
