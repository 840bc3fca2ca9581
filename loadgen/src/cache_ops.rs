//! What the answer-cache scenarios send: `cached` (batches of hash lookups,
//! `POST /v2/decode/cached`) and `mixed` (sync decodes of which a share repeats the corpus's
//! images and the rest are images never seen before), and the per-request choice of user
//! (`--api-keys-file`) that spreads either over many users.

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most keys read from `--api-keys-file`.
const MAX_KEYS: usize = 1_000_000;

/// The SHA-256 of `bytes` in lower-case hex: the hash the lookups ask by.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        // Writing into a String cannot fail.
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{byte:02x}"));
    }
    out
}

/// The options of a lookup from `--upload-query` (`model=beta&png_fix=1`): the upload's
/// options other than how it is answered (`wait`, `timeout_ms`) and `soft_id`, as a JSON
/// object typed as the API describes it (the flags as booleans, the rest as strings).
pub fn lookup_options(upload_query: &str) -> serde_json::Map<String, serde_json::Value> {
    upload_query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| !["wait", "timeout_ms", "soft_id"].contains(name))
        .map(|(name, value)| (name.to_string(), option_value(name, value)))
        .collect()
}

/// A query option as its JSON value: `png_fix` and `probability` are booleans (`1`, `true`,
/// `yes`, `on` are true, as the server reads a query), the others strings.
fn option_value(name: &str, value: &str) -> serde_json::Value {
    match name {
        "png_fix" | "probability" => serde_json::Value::Bool(matches!(
            value.to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )),
        _ => serde_json::Value::from(value),
    }
}

/// Per corpus image, the body (`Content-Length`, blank line, JSON) of a batch of `batch`
/// lookups of the corpus's hashes, starting at that image and going round the corpus.
pub fn lookup_tails(images: &[Vec<u8>], batch: usize, upload_query: &str) -> Vec<Vec<u8>> {
    assert!(!images.is_empty() && batch > 0);
    let hashes: Vec<String> = images.iter().map(|image| sha256_hex(image)).collect();
    let options = serde_json::Value::Object(lookup_options(upload_query));
    (0..images.len())
        .map(|start| {
            let lookups: Vec<serde_json::Value> = (0..batch)
                .map(|i| {
                    let hash = &hashes[(start + i) % hashes.len()];
                    serde_json::json!({ "hash": hash, "options": options })
                })
                .collect();
            let body = serde_json::json!({ "lookups": lookups }).to_string();
            with_length(body.as_bytes())
        })
        .collect()
}

pub fn with_length(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Whether operation number `n` of a run repeats a corpus image (else it sends one never
/// seen): a fixed pseudo-random sequence (SplitMix64), so runs are repeatable and the share
/// holds over any stretch of operations, not only on average.
pub fn repeats(n: u64, share_per_million: u64) -> bool {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % 1_000_000 < share_per_million
}

/// `image` made unique by `nonce` without changing its pixels: a PNG gets a `tEXt` chunk
/// after its header, a JPEG a comment segment after its start marker. `None` for other
/// formats (and for anything too short to be an image).
pub fn unique_variant(image: &[u8], nonce: u64) -> Option<Vec<u8>> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let text = format!("aiocr-loadgen {nonce}");
    if image.starts_with(PNG_SIGNATURE) {
        // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
        let after_header = 8 + 25;
        if image.len() < after_header || &image[12..16] != b"IHDR" {
            return None;
        }
        let mut chunk_data = b"Comment\0".to_vec();
        chunk_data.extend_from_slice(text.as_bytes());
        let mut out = image[..after_header].to_vec();
        out.extend_from_slice(&(chunk_data.len() as u32).to_be_bytes());
        let typed: Vec<u8> = b"tEXt".iter().chain(&chunk_data).copied().collect();
        out.extend_from_slice(&typed);
        out.extend_from_slice(&crc32(&typed).to_be_bytes());
        out.extend_from_slice(&image[after_header..]);
        return Some(out);
    }
    if image.starts_with(b"\xff\xd8") {
        let mut out = b"\xff\xd8\xff\xfe".to_vec();
        out.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&image[2..]);
        return Some(out);
    }
    None
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit: a few hundred bytes per request.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `--api-keys-file`: one API key or login token a line (`#` comments allowed), each an
/// `Authorization` header; requests take them in turn.
pub fn read_keys_file(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    let keys: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|key| {
            if key
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                bail!("a key or token is one word a line");
            }
            Ok(crate::target::auth_header(key))
        })
        .collect::<Result<_>>()?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        bail!("{} must hold 1..={MAX_KEYS} keys", path.display());
    }
    Ok(keys)
}

/// The sequence numbers of a run's operations, shared by its threads (uniqueness of the
/// images that must be new, and the turn of keys).
#[derive(Default)]
pub struct Sequence(AtomicU64);

impl Sequence {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Appends a base64 JSON upload body (`{"file": ...}`) of `image`, with its length.
pub fn write_base64_json(image: &[u8], out: &mut Vec<u8>) {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(image);
    let body_len = encoded.len() + r#"{"file":""}"#.len();
    let _ = write!(
        out,
        "Content-Length: {body_len}\r\n\r\n{{\"file\":\"{encoded}\"}}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_sha256_match_their_standards() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082, "PNG's IEND chunk");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn variants_are_unique_and_keep_the_format() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR0123456789abcCRC!rest".to_vec();
        let first = unique_variant(&png, 1).unwrap();
        let second = unique_variant(&png, 2).unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with(&png[..33]) && first.ends_with(b"rest"));
        assert_eq!(&first[37..41], b"tEXt");
        let jpeg = b"\xff\xd8\xff\xe0rest".to_vec();
        let variant = unique_variant(&jpeg, 7).unwrap();
        assert!(variant.starts_with(b"\xff\xd8\xff\xfe") && variant.ends_with(b"\xff\xe0rest"));
        assert_eq!(unique_variant(b"GIF89a...", 1), None);
    }

    #[test]
    fn the_repeated_share_holds() {
        let repeated = (0..100_000).filter(|n| repeats(*n, 700_000)).count();
        assert!((69_000..71_000).contains(&repeated), "{repeated}");
        assert!((0..1000).all(|n| !repeats(n, 0)));
        assert!((0..1000).all(|n| repeats(n, 1_000_000)));
    }

    #[test]
    fn lookups_carry_the_uploads_options_and_go_round_the_corpus() {
        let images = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let tails = lookup_tails(&images, 4, "model=beta&wait=1&soft_id=3");
        let text = String::from_utf8(tails[2].clone()).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let lookups = body["lookups"].as_array().unwrap();
        assert_eq!(lookups.len(), 4);
        assert_eq!(lookups[0]["hash"], sha256_hex(b"c"));
        assert_eq!(lookups[1]["hash"], sha256_hex(b"a"));
        assert_eq!(lookups[0]["options"], serde_json::json!({"model": "beta"}));
        assert_eq!(
            serde_json::Value::Object(lookup_options("png_fix=1&probability=0&colors=red")),
            serde_json::json!({"png_fix": true, "probability": false, "colors": "red"})
        );
    }
}
