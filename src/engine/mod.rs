//! The recognition engine (placeholder).
