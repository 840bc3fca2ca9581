//! TLS certificates: the PEM files named by `tls_cert` and `tls_key` read into the rustls
//! `ServerConfig` that the TLS listeners hand their connections (at start, and again on
//! SIGHUP), and the certificate's expiry for `aiocr doctor`. The connection side (the
//! handshake and the encrypted stream) is `server/transport.rs`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The one application protocol the TLS listener offers (ALPN): the server speaks HTTP/1.1.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A rustls server configuration from a PEM certificate chain (the server's certificate
/// first) and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC). Every error names the file
/// and what is wrong with it, for the start-up refusal and the SIGHUP log line.
pub fn load_server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = read_chain(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("tls_key {}: {}", key_path.display(), pem_error(e)))?;
    // ring: already in the build for the JWTs (aws-lc-rs would add a C build of its own).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        // Also checks that the key belongs to the certificate.
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "tls_cert {} with tls_key {}: {e}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// The certificate chain of a PEM file; at least one certificate.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let named =
        |e: rustls::pki_types::pem::Error| format!("tls_cert {}: {}", path.display(), pem_error(e));
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(named)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(named)?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert {}: no CERTIFICATE in the file",
            path.display()
        ));
    }
    Ok(chain)
}

/// pki-types says "no items found" for a PEM file without the block it looked for.
fn pem_error(error: rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM block of the expected kind (CERTIFICATE; PRIVATE KEY, RSA PRIVATE KEY or \
             EC PRIVATE KEY)"
                .to_string()
        }
        other => other.to_string(),
    }
}

/// When the first certificate of the PEM file `cert_path` expires (its `notAfter`), in Unix
/// seconds.
pub fn certificate_expiry_unix_secs(cert_path: &Path) -> Result<i64, String> {
    let chain = read_chain(cert_path)?;
    not_after_unix_secs(&chain[0]).ok_or_else(|| {
        format!(
            "tls_cert {}: cannot read the certificate's validity",
            cert_path.display()
        )
    })
}

const DER_SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT Version`, present in every v2/v3 certificate.
const DER_VERSION: u8 = 0xa0;
const DER_UTC_TIME: u8 = 0x17;
const DER_GENERALIZED_TIME: u8 = 0x18;

/// `notAfter` of an X.509 certificate (RFC 5280 4.1): Certificate = SEQUENCE { tbsCertificate
/// SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE {
/// notBefore, notAfter }, ... }, ... }. A walk over five DER elements; a parser crate
/// (x509-parser and its dependencies) would be ten crates for one date.
fn not_after_unix_secs(certificate: &[u8]) -> Option<i64> {
    let (tag, certificate, _) = der_element(certificate)?;
    (tag == DER_SEQUENCE).then_some(())?;
    let (tag, mut fields, _) = der_element(certificate)?;
    (tag == DER_SEQUENCE).then_some(())?;
    let (tag, _, after_version) = der_element(fields)?;
    if tag == DER_VERSION {
        fields = after_version;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        fields = der_element(fields)?.2;
    }
    let (tag, validity, _) = der_element(fields)?;
    (tag == DER_SEQUENCE).then_some(())?;
    let (_, _, after_not_before) = der_element(validity)?;
    let (tag, not_after, _) = der_element(after_not_before)?;
    der_time_unix_secs(tag, not_after)
}

/// One DER element of `input`: (tag, contents, what follows it). Lengths of up to four
/// bytes (a certificate is far smaller than 4 GiB).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, rest) = rest.split_at(length);
    Some((tag, contents, rest))
}

/// RFC 5280's two time forms: UTCTime `YYMMDDHHMMSSZ` (years 1950-2049) and GeneralizedTime
/// `YYYYMMDDHHMMSSZ`.
fn der_time_unix_secs(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match (tag, text.len()) {
        (DER_UTC_TIME, 12) => {
            let short: i64 = text[..2].parse().ok()?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                &text[2..],
            )
        }
        (DER_GENERALIZED_TIME, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let field = |at: usize| -> i64 { rest[at..at + 2].parse().unwrap_or(-1) };
    let (month, day, hour, minute, second) = (field(0), field(2), field(4), field(6), field(8));
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..=60).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD` of a Unix time (UTC), for messages (Hinnant's `civil_from_days`).
pub fn utc_date(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
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
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A self-signed certificate for localhost valid until `not_after` (Unix seconds), with
    /// its PEM certificate and key written into a fresh directory.
    fn written(tag: &str, not_after: i64, key_pem: Option<String>) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("aiocr-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let since_2000 = u64::try_from(not_after - 946_684_800).unwrap();
        params.not_after =
            rcgen::date_time_ymd(2000, 1, 1) + std::time::Duration::from_secs(since_2000);
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key_pem.unwrap_or_else(|| key.serialize_pem())).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn loads_a_certificate_and_reads_its_expiry() {
        // 2032-05-17 12:34:56 and 2050-12-31 23:59:59 UTC: certificates use UTCTime up to 2049
        // and GeneralizedTime from 2050 on.
        for (tag, not_after) in [("utc", 1_968_410_096), ("generalized", 2_556_143_999)] {
            let (cert, key) = written(tag, not_after, None);
            let config = load_server_config(&cert, &key).unwrap();
            assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
            assert_eq!(certificate_expiry_unix_secs(&cert).unwrap(), not_after);
            std::fs::remove_dir_all(cert.parent().unwrap()).unwrap();
        }
        assert_eq!(utc_date(1_968_410_096), "2032-05-17");
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
    }

    #[test]
    fn refuses_missing_broken_and_mismatched_files() {
        let (cert, key) = written("bad", 2_000_000_000, None);
        let missing = cert.with_file_name("absent.pem");
        let error = load_server_config(&missing, &key).unwrap_err();
        assert!(error.contains("absent.pem"), "{error}");
        let error = load_server_config(&cert, &missing).unwrap_err();
        assert!(error.starts_with("tls_key "), "{error}");
        // A key file given as the certificate (no CERTIFICATE block) and the other way round.
        let error = load_server_config(&key, &key).unwrap_err();
        assert!(error.contains("no CERTIFICATE"), "{error}");
        let error = load_server_config(&cert, &cert).unwrap_err();
        assert!(
            error.contains("tls_key") && error.contains("no PEM block"),
            "{error}"
        );
        // Another certificate's key.
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let (cert2, key2) = written("mismatch", 2_000_000_000, Some(other));
        let error = load_server_config(&cert2, &key2).unwrap_err();
        assert!(error.contains("with tls_key"), "{error}");
        for dir in [cert.parent().unwrap(), cert2.parent().unwrap()] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn der_walk_refuses_truncated_input() {
        let (cert, _) = written("truncated", 2_000_000_000, None);
        let der = read_chain(&cert).unwrap().remove(0);
        assert_eq!(not_after_unix_secs(&der), Some(2_000_000_000));
        for cut in [0, 1, 2, 10, 100, der.len() / 2] {
            assert_eq!(not_after_unix_secs(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            der_time_unix_secs(DER_UTC_TIME, b"491231235959Z"),
            Some(2_524_607_999)
        );
        assert_eq!(
            der_time_unix_secs(DER_UTC_TIME, b"500101000000Z"),
            Some(-631_152_000)
        );
        assert_eq!(der_time_unix_secs(DER_UTC_TIME, b"501301000000Z"), None);
        std::fs::remove_dir_all(cert.parent().unwrap()).unwrap();
    }
}
