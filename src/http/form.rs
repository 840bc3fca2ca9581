//! `application/x-www-form-urlencoded` bodies and query strings.

/// Why a form could not be read (the API answers 1001).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadForm;

/// Splits `a=1&b=x%20y` into decoded pairs (`+` is a space). Empty segments are skipped;
/// a key without `=` has an empty value. Bad percent escapes and non-UTF-8 are refused.
pub fn parse_urlencoded(bytes: &[u8]) -> Result<Vec<(String, String)>, BadForm> {
    let mut pairs = Vec::new();
    for segment in bytes.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (key, value) = match segment.iter().position(|&b| b == b'=') {
            Some(at) => (&segment[..at], &segment[at + 1..]),
            None => (segment, &b""[..]),
        };
        pairs.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(pairs)
}

pub fn percent_decode(bytes: &[u8]) -> Result<String, BadForm> {
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = bytes
                    .get(at + 1)
                    .and_then(|&b| hex_value(b))
                    .ok_or(BadForm)?;
                let low = bytes
                    .get(at + 2)
                    .and_then(|&b| hex_value(b))
                    .ok_or(BadForm)?;
                decoded.push(high << 4 | low);
                at += 2;
            }
            other => decoded.push(other),
        }
        at += 1;
    }
    String::from_utf8(decoded).map_err(|_| BadForm)
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

/// `text` percent-encoded for a form value: unreserved characters as they are, everything
/// else as `%XX` of its UTF-8 bytes (so spaces are `%20`, never `+`).
pub fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_components_decode_to_themselves() {
        for text in ["ab12", "a b+c&d=e", "工b0", ""] {
            let encoded = encode_component(text);
            assert!(!encoded.contains([' ', '&', '=', '+']), "{encoded}");
            let form = format!("x={encoded}");
            assert_eq!(parse_urlencoded(form.as_bytes()).unwrap()[0].1, text);
        }
    }

    #[test]
    fn decodes_pairs() {
        let pairs = parse_urlencoded(b"a=1&&b=x%20y+z&flag&c=%2B%3D").unwrap();
        let expected = [("a", "1"), ("b", "x y z"), ("flag", ""), ("c", "+=")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn refuses_bad_escapes() {
        assert_eq!(parse_urlencoded(b"a=%zz"), Err(BadForm));
        assert_eq!(parse_urlencoded(b"a=%4"), Err(BadForm));
        assert_eq!(parse_urlencoded(b"a=%ff"), Err(BadForm));
    }
}
