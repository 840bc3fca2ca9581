//! Answers already given, keyed by the images' bytes and everything that shapes the answer.
//!
//! One cache per shard (no locks across cores). An upload whose key equals an earlier one's
//! gets the earlier answer without running anything; it is still charged and counted as a
//! cache hit. The key holds a BLAKE3 hash of the bytes: a user must not be able to craft a
//! colliding image that returns another image's answer. Every kind shares one LRU of
//! `cache_entries` answers: an entry is small whatever its kind, and a detection hit saves
//! the most model time, so no kind needs a budget of its own.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::{JobAnswer, Kind};
use crate::engine::{RecognizeOptions, SlideMode};

/// The hash of an image's bytes (for a slide: of both images).
pub type ImageDigest = [u8; 32];

pub fn digest(image: &[u8]) -> ImageDigest {
    *blake3::hash(image).as_bytes()
}

/// The digest of a slide's two images: the target's length first, so that no two different
/// pairs of byte strings hash the same concatenation.
pub fn slide_digest(target: &[u8], background: &[u8]) -> ImageDigest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(target.len() as u64).to_le_bytes());
    hasher.update(target);
    hasher.update(background);
    *hasher.finalize().as_bytes()
}

/// What besides the bytes decides an answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskKey {
    Ocr(RecognizeOptions),
    Detect,
    Slide(SlideMode),
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
            TaskKey::Detect => Kind::Detect,
            TaskKey::Slide(_) => Kind::Slide,
        }
    }
}

pub struct AnswerCache {
    entries: Option<LruCache<CacheKey, JobAnswer>>,
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

    pub fn get(&mut self, key: &CacheKey) -> Option<JobAnswer> {
        self.entries.as_mut()?.get(key).cloned()
    }

    pub fn insert(&mut self, key: CacheKey, answer: JobAnswer) {
        if let Some(entries) = self.entries.as_mut() {
            entries.put(key, answer);
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
    use crate::engine::Answer;

    fn answer(text: &str) -> JobAnswer {
        JobAnswer::Text(Answer {
            text: text.into(),
            confidence: None,
        })
    }

    #[test]
    fn same_bytes_and_options_hit_other_options_miss() {
        let mut cache = AnswerCache::new(8);
        let old = RecognizeOptions::default();
        let beta = RecognizeOptions {
            model: "beta".into(),
            ..Default::default()
        };
        cache.insert(
            CacheKey::ocr(digest(b"image-1"), old.clone()),
            answer("ab12"),
        );
        let key = |bytes: &[u8], options: &RecognizeOptions| {
            CacheKey::ocr(digest(bytes), options.clone())
        };
        assert_eq!(cache.get(&key(b"image-1", &old)), Some(answer("ab12")));
        assert_eq!(cache.get(&key(b"image-1", &beta)), None);
        assert_eq!(cache.get(&key(b"image-2", &old)), None);
        let detect = CacheKey {
            digest: digest(b"image-1"),
            task: TaskKey::Detect,
        };
        assert_eq!(cache.get(&detect), None, "another kind, another answer");
        assert_eq!(detect.kind(), Kind::Detect);
    }

    #[test]
    fn slide_digests_tell_the_pairs_apart() {
        assert_ne!(slide_digest(b"ab", b"c"), slide_digest(b"a", b"bc"));
        assert_eq!(slide_digest(b"ab", b"c"), slide_digest(b"ab", b"c"));
    }

    #[test]
    fn least_recently_used_is_evicted_and_zero_disables() {
        let mut cache = AnswerCache::new(2);
        let key = |bytes: &[u8]| CacheKey::ocr(digest(bytes), RecognizeOptions::default());
        cache.insert(key(b"a"), answer("a"));
        cache.insert(key(b"b"), answer("b"));
        assert!(cache.get(&key(b"a")).is_some());
        cache.insert(key(b"c"), answer("c"));
        assert!(cache.get(&key(b"b")).is_none(), "b was least recently used");
        assert_eq!(cache.len(), 2);

        let mut disabled = AnswerCache::new(0);
        disabled.insert(key(b"a"), answer("a"));
        assert!(disabled.get(&key(b"a")).is_none());
    }
}
