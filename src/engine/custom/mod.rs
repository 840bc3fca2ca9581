//! Models users bring: dddd_trainer's output (an ONNX file and its `charsets.json`), known by
//! the digest of their two files, checked once before they are accepted (`check.rs`) and
//! loaded on demand by each recognition thread within a memory bound (`sessions.rs`).
//!
//! A [`CustomModel`] is what a job carries: its digest, its description (parsed), and where
//! its ONNX file is on this machine. Two models with the same digest are the same model,
//! whatever their names or owners, so equality and hashing (the answer cache's key) go by
//! the digest alone.

mod check;
mod files;
mod sessions;

pub use check::{check_model, ModelCheckError, ModelInfo};
pub use files::ModelFiles;
pub use sessions::{CustomSessions, SessionBounds, SessionCounts};

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::model::ModelSpec;

/// A model's identity: the SHA-256 of the SHA-256 of its ONNX file followed by the SHA-256
/// of its `charsets.json` (as a slide's digest is made of its two images': no two pairs of
/// files share the 64 bytes hashed, whatever their lengths).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelDigest(pub [u8; 32]);

impl ModelDigest {
    pub fn of(onnx: &[u8], charsets: &[u8]) -> ModelDigest {
        let mut hasher = Sha256::new();
        hasher.update(Sha256::digest(onnx));
        hasher.update(Sha256::digest(charsets));
        ModelDigest(hasher.finalize().into())
    }

    /// 64 lowercase hex digits: how the API, file names and the cluster spell it.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The inverse of [`ModelDigest::hex`] (either case).
    pub fn parse_hex(text: &str) -> Option<ModelDigest> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ModelDigest(bytes))
    }

    /// The digest a model file is named by (`<hex>.onnx`, `<hex>.json`, `<hex>.tmp`), if any.
    pub fn of_file_name(path: &std::path::Path) -> Option<ModelDigest> {
        path.file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(ModelDigest::parse_hex)
    }
}

impl fmt::Debug for ModelDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}

impl fmt::Display for ModelDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}

/// Longest model name, in bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 64;

/// Whether `name` is shaped as a model's name: 1..=64 of `A-Z a-z 0-9 _ - .`, starting with
/// a letter or digit (so it is safe in URLs, file names, logs and metrics labels).
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODEL_NAME_BYTES
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// An accepted model on this machine: its digest, its description, where its ONNX file is
/// (`spec.onnx_path`) and that file's size (what a loaded session counts against the
/// memory bound: the weights are nearly all of a session's memory).
pub struct CustomModel {
    pub digest: ModelDigest,
    pub spec: Arc<ModelSpec>,
    pub onnx_bytes: u64,
}

impl CustomModel {
    /// The model whose files are `onnx_path` (`onnx_bytes` long) and `charsets` (the text of
    /// its `charsets.json`), already checked and known by `digest`.
    pub fn new(
        digest: ModelDigest,
        onnx_path: PathBuf,
        onnx_bytes: u64,
        charsets: &str,
    ) -> Result<CustomModel, ModelCheckError> {
        let spec = ModelSpec::from_description(onnx_path, charsets, false)
            .map_err(ModelCheckError::Charsets)?;
        Ok(CustomModel {
            digest,
            spec: Arc::new(spec),
            onnx_bytes,
        })
    }
}

impl PartialEq for CustomModel {
    fn eq(&self, other: &CustomModel) -> bool {
        self.digest == other.digest
    }
}

impl Eq for CustomModel {}

impl Hash for CustomModel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}

impl fmt::Debug for CustomModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomModel({})", self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_made_of_both_files_and_spelled_in_hex() {
        let digest = ModelDigest::of(b"onnx", b"charsets");
        assert_ne!(digest, ModelDigest::of(b"onnxc", b"harsets"));
        assert_ne!(digest, ModelDigest::of(b"charsets", b"onnx"));
        let hex = digest.hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(ModelDigest::parse_hex(&hex), Some(digest));
        assert_eq!(ModelDigest::parse_hex(&hex.to_uppercase()), Some(digest));
        assert_eq!(ModelDigest::parse_hex(&hex[1..]), None);
        assert_eq!(ModelDigest::parse_hex(&"g".repeat(64)), None);
        assert_eq!(ModelDigest::parse_hex(&"é".repeat(32)), None);
    }
}
