//! `multipart/form-data` (RFC 7578) over a fully received, size-bounded body. The body is
//! already in memory (the body limit bounds it), so parts borrow from it instead of
//! streaming; a small parser is simpler and safer here than pulling in a stream-oriented one
//! built for another async runtime.

/// Bytes of headers accepted per part.
const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// Parts accepted per body.
const MAX_PARTS: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMultipart;

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (media_type, params) = content_type.split_once(';')?;
    if !media_type
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    let boundary = header_param(params, "boundary")?;
    let valid = !boundary.is_empty() && boundary.len() <= 70;
    valid.then_some(boundary)
}

pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, BadMultipart> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter may follow a preamble; later ones are always preceded by CRLF.
    let mut at = if body.starts_with(delimiter) {
        delimiter.len()
    } else {
        find(body, &[b"\r\n", delimiter].concat()).ok_or(BadMultipart)? + 2 + delimiter.len()
    };
    let mut parts = Vec::new();
    let next_delimiter = [b"\r\n", delimiter].concat();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts); // close delimiter; the epilogue is ignored
        }
        let line_end = find(rest, b"\r\n").ok_or(BadMultipart)?;
        if rest[..line_end].iter().any(|&b| b != b' ' && b != b'\t') {
            return Err(BadMultipart);
        }
        at += line_end + 2;
        let (part_headers, headers_len) = read_part_headers(&body[at..])?;
        at += headers_len;
        let data_len = find(&body[at..], &next_delimiter).ok_or(BadMultipart)?;
        if parts.len() == MAX_PARTS {
            return Err(BadMultipart);
        }
        parts.push(Part {
            name: part_headers.name,
            filename: part_headers.filename,
            content_type: part_headers.content_type,
            data: &body[at..at + data_len],
        });
        at += data_len + next_delimiter.len();
    }
}

struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

fn read_part_headers(bytes: &[u8]) -> Result<(PartHeaders, usize), BadMultipart> {
    let window = &bytes[..bytes.len().min(MAX_PART_HEADER_BYTES)];
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let (len, headers) = match httparse::parse_headers(window, &mut headers) {
        Ok(httparse::Status::Complete((len, headers))) => (len, headers),
        _ => return Err(BadMultipart),
    };
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for header in headers {
        let value = std::str::from_utf8(header.value).map_err(|_| BadMultipart)?;
        if header.name.eq_ignore_ascii_case("content-disposition") {
            let (kind, params) = value.split_once(';').ok_or(BadMultipart)?;
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(BadMultipart);
            }
            name = header_param(params, "name");
            filename = header_param(params, "filename");
        } else if header.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let name = name.ok_or(BadMultipart)?;
    Ok((
        PartHeaders {
            name,
            filename,
            content_type,
        },
        len,
    ))
}

/// The value of `key` in `; a=b; key="c d"` (quotes removed, `\"` unescaped).
fn header_param(params: &str, key: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let this_key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let (value, used) = read_quoted(quoted)?;
            (value, &quoted[used..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        if this_key.eq_ignore_ascii_case(key) {
            return Some(value);
        }
        rest = remaining;
    }
}

/// Reads a quoted string's content (after the opening quote); returns it and the bytes used
/// including the closing quote. Backslash escapes first (RFC 2045's quoted-string, which Go's
/// client writes); where they leave the string open, it ends at the first quote with its
/// backslashes kept, as browsers and Python's urllib3 write names (WHATWG's form encoding
/// turns `"` into `%22` and leaves `\` alone: a name `a\` arrives as `"a\"`).
fn read_quoted(text: &str) -> Option<(String, usize)> {
    read_escaped(text).or_else(|| {
        let end = text.find('"')?;
        Some((text[..end].to_string(), end + 1))
    })
}

fn read_escaped(text: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, at + 1)),
            '\\' => value.push(chars.next()?.1),
            other => value.push(other),
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut from = 0;
    while let Some(offset) = memchr(first, &haystack[from..=haystack.len() - needle.len()]) {
        let at = from + offset;
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn memchr(byte: u8, bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nbeta\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\nContent-Type: image/png\r\n\r\n\
\x89PNG\r\n--X\r\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn parses_fields_and_files() {
        let parts = parse(BODY, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].data),
            ("model", &b"beta"[..])
        );
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].filename.as_deref(), Some("a \"b\".png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[1].data, b"\x89PNG\r\n--X\r\n");
    }

    /// A name ending in a backslash, as browsers and urllib3 send it (no escapes), and one a
    /// Go client escaped: both parse.
    #[test]
    fn names_with_backslashes_unescaped_or_escaped() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\\\"\r\n\r\n1\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"b\\\\\"\r\n\r\n2\r\n--XyZ--\r\n";
        let parts = parse(body, "XyZ").unwrap();
        let names: Vec<&str> = parts.iter().map(|part| part.name.as_str()).collect();
        assert_eq!(names, ["a\\", "b\\"]);
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn refuses_truncated_bodies() {
        let complete_at = find(BODY, b"--XyZ--").unwrap() + 7;
        for cut in 0..complete_at {
            assert!(parse(&BODY[..cut], "XyZ").is_err(), "cut {cut}");
        }
        assert!(parse(&BODY[..complete_at], "XyZ").is_ok());
        assert!(parse(b"--XyZ\r\nContent-Type: x\r\n\r\ndata\r\n--XyZ--", "XyZ").is_err());
    }
}
