//! Integers every JSON reader reads exactly. JavaScript's `JSON.parse` (and every parser that
//! reads JSON numbers as IEEE 754 doubles) rounds integers beyond 2^53 - 1, so RFC 7493
//! (I-JSON) asks a sender to keep integers within +-(2^53 - 1). Every JSON answer of the
//! server holds to it, by construction:
//! - ids are decimal strings (`/v2`, 2captcha, ddddocr-fastapi), and the JSON task
//!   protocol's `taskId` is a task id of 53 bits (`store::task_ids`);
//! - points are bounded where they move (`money::MAX_POINTS`, checked by the store's journal
//!   and by the configuration's costs);
//! - times are Unix milliseconds or seconds (2^53 ms is the year 287,396);
//! - counters that only grow (daily stats, the metrics' totals) saturate at the bound when
//!   they are written ([`saturated_u64`], [`saturated_i64`], [`saturate_all`]): they would
//!   need 2^53 events to get there, and a saturated counter says "at least this many".
//!
//! [`unsafe_integers`] finds what breaks the rule in a written answer (the tests walk every
//! answer with it).

use serde_json::Value;

/// 2^53 - 1: the largest integer a double holds exactly with all smaller ones.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// `value`, or the bound when it is above.
pub fn saturate_u64(value: u64) -> u64 {
    value.min(MAX_SAFE_INTEGER as u64)
}

/// `value` within +-[`MAX_SAFE_INTEGER`].
pub fn saturate_i64(value: i64) -> i64 {
    value.clamp(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
}

/// A serde `serialize_with` for a counter: written saturated.
pub fn saturated_u64<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(saturate_u64(*value))
}

/// A serde `serialize_with` for a signed sum: written saturated.
pub fn saturated_i64<S: serde::Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_i64(saturate_i64(*value))
}

/// Saturates every integer in `value` (a document of counters, such as the metrics' totals).
pub fn saturate_all(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                *number = saturate_u64(unsigned).into();
            } else if let Some(signed) = number.as_i64() {
                *number = saturate_i64(signed).into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(saturate_all),
        Value::Object(fields) => fields.values_mut().for_each(saturate_all),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// Every integer of `value` outside +-(2^53 - 1), as `path = number` (`$.data.points =
/// 9007199254740992`). Numbers with a fraction or an exponent are doubles already: a reader
/// gets the double that was written.
pub fn unsafe_integers(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, &mut String::from("$"), &mut found);
    found
}

fn walk(value: &Value, path: &mut String, found: &mut Vec<String>) {
    match value {
        Value::Number(number) => {
            let safe = match (number.as_u64(), number.as_i64()) {
                (Some(unsigned), _) => unsigned <= MAX_SAFE_INTEGER as u64,
                (None, Some(signed)) => signed >= -MAX_SAFE_INTEGER,
                // A double (serde_json keeps integers beyond i64/u64 only as doubles too).
                (None, None) => number.as_f64().is_some_and(f64::is_finite),
            };
            if !safe {
                found.push(format!("{path} = {number}"));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                walk(item, path, found);
                path.truncate(length);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                let length = path.len();
                path.push('.');
                path.push_str(name);
                walk(field, path, found);
                path.truncate(length);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bound_is_two_to_the_53_minus_one() {
        assert_eq!(MAX_SAFE_INTEGER, 9_007_199_254_740_991);
        // The first integer a double cannot tell from its neighbour.
        let first_unsafe = (MAX_SAFE_INTEGER + 2) as f64;
        assert_eq!(first_unsafe, (MAX_SAFE_INTEGER + 1) as f64);
        assert_ne!(MAX_SAFE_INTEGER as f64, (MAX_SAFE_INTEGER - 1) as f64);
    }

    #[test]
    fn finds_integers_beyond_the_bound_anywhere() {
        let answer = json!({
            "errorId": 0,
            "taskId": 123_031_848_359_034_880u64,
            "data": { "points": MAX_SAFE_INTEGER, "list": [1, -MAX_SAFE_INTEGER - 1] },
            "amount": 1.5e300,
            "id": "123031848359034880",
        });
        let mut found = unsafe_integers(&answer);
        found.sort();
        assert_eq!(
            found,
            vec![
                "$.data.list[1] = -9007199254740992".to_string(),
                "$.taskId = 123031848359034880".to_string(),
            ]
        );
        assert!(unsafe_integers(&json!({"a": [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]})).is_empty());
        assert_eq!(unsafe_integers(&json!(u64::MAX)).len(), 1);
    }

    #[test]
    fn counters_saturate_at_the_bound() {
        assert_eq!(saturate_u64(u64::MAX), MAX_SAFE_INTEGER as u64);
        assert_eq!(saturate_u64(7), 7);
        assert_eq!(saturate_i64(i64::MIN), -MAX_SAFE_INTEGER);
        assert_eq!(saturate_i64(-7), -7);
        let mut totals = json!({ "a": u64::MAX, "b": [i64::MIN, 3], "c": "x", "d": 0.5 });
        saturate_all(&mut totals);
        assert_eq!(
            totals,
            json!({ "a": MAX_SAFE_INTEGER, "b": [-MAX_SAFE_INTEGER, 3], "c": "x", "d": 0.5 })
        );
        assert!(unsafe_integers(&totals).is_empty());
    }
}
