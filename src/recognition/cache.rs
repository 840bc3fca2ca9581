//! Answers already given, keyed by the image's bytes and the options that shape the answer.
//!
//! One cache per shard (no locks across cores). An upload whose bytes and options equal an
//! earlier one's gets the earlier answer without running the model; it is still charged and
//! counted as a cache hit. The key is a BLAKE3 hash of the bytes: a user must not be able to
//! craft a colliding image that returns another image's answer.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::engine::{Answer, RecognizeOptions};

/// The hash of an image's bytes.
pub type ImageDigest = [u8; 32];

pub fn digest(image: &[u8]) -> ImageDigest {
    *blake3::hash(image).as_bytes()
}

pub struct AnswerCache {
    entries: Option<LruCache<(ImageDigest, RecognizeOptions), Answer>>,
}

impl AnswerCache {
    /// A cache of at most `capacity` answers; 0 disables caching.
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
        }
    }

    /// Whether answers are kept at all (`cache_entries` > 0).
    pub fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }

    pub fn get(&mut self, digest: &ImageDigest, options: &RecognizeOptions) -> Option<Answer> {
        self.entries
            .as_mut()?
            .get(&(*digest, options.clone()))
            .cloned()
    }

    pub fn insert(&mut self, digest: ImageDigest, options: RecognizeOptions, answer: Answer) {
        if let Some(entries) = self.entries.as_mut() {
            entries.put((digest, options), answer);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer {
        Answer {
            text: text.into(),
            confidence: None,
        }
    }

    #[test]
    fn same_bytes_and_options_hit_other_options_miss() {
        let mut cache = AnswerCache::new(8);
        let old = RecognizeOptions::default();
        let beta = RecognizeOptions {
            model: "beta".into(),
            ..Default::default()
        };
        cache.insert(digest(b"image-1"), old.clone(), answer("ab12"));
        assert_eq!(cache.get(&digest(b"image-1"), &old), Some(answer("ab12")));
        assert_eq!(cache.get(&digest(b"image-1"), &beta), None);
        assert_eq!(cache.get(&digest(b"image-2"), &old), None);
    }

    #[test]
    fn least_recently_used_is_evicted_and_zero_disables() {
        let mut cache = AnswerCache::new(2);
        let options = RecognizeOptions::default();
        cache.insert(digest(b"a"), options.clone(), answer("a"));
        cache.insert(digest(b"b"), options.clone(), answer("b"));
        assert!(cache.get(&digest(b"a"), &options).is_some());
        cache.insert(digest(b"c"), options.clone(), answer("c"));
        assert!(
            cache.get(&digest(b"b"), &options).is_none(),
            "b was least recently used"
        );
        assert_eq!(cache.len(), 2);

        let mut disabled = AnswerCache::new(0);
        disabled.insert(digest(b"a"), options.clone(), answer("a"));
        assert!(disabled.get(&digest(b"a"), &options).is_none());
    }
}
