//! What identifies an answer: the image's bytes and everything else that shapes the answer.
//!
//! Jobs carry their [`CacheKey`] to the recognition threads and back, so that the owner of
//! the answer can keep it; the cache itself (one logical cache, each entry owned by the
//! shard its image hash names) is `server::cache`.
//!
//! The digest is SHA-256: the hash the contract lets clients look answers up by
//! (`POST /v2/decode/cached`), so one hash serves both. It is cryptographic for the reason
//! BLAKE3 was before it: a user must not be able to craft an image that collides with
//! another image and so be handed its answer.

use super::Kind;
use crate::engine::{RecognizeOptions, SlideMode};
use sha2::{Digest, Sha256};

/// The SHA-256 of an image's bytes (for a slide: of its two images' hashes).
pub type ImageDigest = [u8; 32];

/// The first half of a digest: what an upload record keeps (`image_hash`), enough to find
/// the image's entries again when the upload is reported.
pub type ImagePrefix = [u8; 16];

pub fn digest(image: &[u8]) -> ImageDigest {
    Sha256::digest(image).into()
}

/// A slide's digest: the SHA-256 of the target's SHA-256 followed by the background's. A
/// client that looks a slide up by hash sends the two images' own SHA-256s; no two pairs
/// of byte strings share the 64 bytes hashed here, whatever their lengths.
pub fn slide_digest(target: &[u8], background: &[u8]) -> ImageDigest {
    slide_digest_of(&digest(target), &digest(background))
}

/// [`slide_digest`] from the two images' SHA-256s.
pub fn slide_digest_of(target: &ImageDigest, background: &ImageDigest) -> ImageDigest {
    let mut hasher = Sha256::new();
    hasher.update(target);
    hasher.update(background);
    hasher.finalize().into()
}

pub fn prefix(digest: &ImageDigest) -> ImagePrefix {
    digest[..16].try_into().expect("a 32-byte digest")
}

/// What besides the bytes decides an answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskKey {
    Ocr(RecognizeOptions),
    Detect,
    /// A click captcha: its hint and whether the answer is rectangles.
    Click {
        hint: ClickHintKey,
        rectangles: bool,
    },
    Slide(SlideMode),
}

/// A click captcha's hint as a key: its text, or its image's digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClickHintKey {
    Text(String),
    Image(ImageDigest),
    Nothing,
}

impl ClickHintKey {
    pub fn of(hint: &super::ClickHint) -> ClickHintKey {
        use super::ClickHint;
        match hint {
            ClickHint::Text(text) => ClickHintKey::Text(text.clone()),
            ClickHint::Image(image) => ClickHintKey::Image(digest(image)),
            ClickHint::Nothing => ClickHintKey::Nothing,
        }
    }
}

/// An answer cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub digest: ImageDigest,
    pub task: TaskKey,
}

impl CacheKey {
    pub fn ocr(digest: ImageDigest, options: RecognizeOptions) -> CacheKey {
        CacheKey {
            digest,
            task: TaskKey::Ocr(options),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.task {
            TaskKey::Ocr(_) => Kind::Ocr,
            TaskKey::Detect | TaskKey::Click { .. } => Kind::Detect,
            TaskKey::Slide(_) => Kind::Slide,
        }
    }

    pub fn prefix(&self) -> ImagePrefix {
        prefix(&self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_of_the_bytes() {
        // FIPS 180-2's test vector "abc".
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hex: String = digest(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert_eq!(prefix(&digest(b"abc"))[..], digest(b"abc")[..16]);
    }

    #[test]
    fn slide_digests_tell_the_pairs_apart() {
        assert_ne!(slide_digest(b"ab", b"c"), slide_digest(b"a", b"bc"));
        assert_ne!(slide_digest(b"ab", b"c"), slide_digest(b"c", b"ab"));
        assert_eq!(slide_digest(b"ab", b"c"), slide_digest(b"ab", b"c"));
        assert_eq!(
            slide_digest(b"ab", b"c"),
            slide_digest_of(&digest(b"ab"), &digest(b"c"))
        );
    }

    #[test]
    fn keys_differ_by_options_and_kind() {
        let old = CacheKey::ocr(digest(b"image-1"), RecognizeOptions::default());
        let beta = CacheKey::ocr(
            digest(b"image-1"),
            RecognizeOptions {
                model: "beta".into(),
                ..Default::default()
            },
        );
        let detect = CacheKey {
            digest: digest(b"image-1"),
            task: TaskKey::Detect,
        };
        assert_ne!(old, beta);
        assert_ne!(old, detect);
        assert_eq!(old.prefix(), detect.prefix());
        assert_eq!(detect.kind(), Kind::Detect);
    }
}
