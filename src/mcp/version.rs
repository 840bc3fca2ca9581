//! Protocol versions: the ones served, `initialize`'s negotiation, and the
//! `MCP-Protocol-Version` header's check.
//!
//! Served are the revisions that open with the `initialize` handshake and keep a session
//! (`Mcp-Session-Id`): 2025-11-25 (what the official SDKs offer), 2025-06-18 and 2025-03-26.
//! The stateless 2026-07-28 revision (no handshake, no sessions) is not served: a client that
//! probes with it gets a 400 with a plain JSON-RPC error and, as that revision's
//! compatibility rules say, falls back to `initialize`.

/// Newest first.
pub const SUPPORTED: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// What `initialize` answers to a version it does not serve (the client then decides).
pub const LATEST: &str = SUPPORTED[0];

/// The version of a request without the header and without a session that says otherwise
/// (the transport's rule for clients older than the header).
pub const WITHOUT_HEADER: &str = "2025-03-26";

/// The served version named `text`.
pub fn served(text: &str) -> Option<&'static str> {
    SUPPORTED.iter().copied().find(|version| *version == text)
}

/// The version `initialize` answers: the one asked for when served, else the latest.
pub fn negotiate(requested: &str) -> &'static str {
    served(requested).unwrap_or(LATEST)
}

/// What a session's version lets its answers carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// Tools' `title` and `outputSchema`, results' `structuredContent` (2025-06-18 on).
    pub structured_output: bool,
}

impl Features {
    pub fn of(version: &str) -> Features {
        Features {
            structured_output: version != "2025-03-26",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_keeps_a_served_version_and_offers_the_latest_otherwise() {
        for version in SUPPORTED {
            assert_eq!(negotiate(version), version);
        }
        assert_eq!(negotiate("2026-07-28"), LATEST);
        assert_eq!(negotiate("2024-11-05"), LATEST);
        assert_eq!(negotiate(""), LATEST);
        assert_eq!(served("2025-06-18"), Some("2025-06-18"));
        assert_eq!(served("2025-06-18 "), None);
        assert_eq!(served(WITHOUT_HEADER), Some(WITHOUT_HEADER));
    }

    #[test]
    fn structured_output_came_with_2025_06_18() {
        assert!(Features::of("2025-11-25").structured_output);
        assert!(Features::of("2025-06-18").structured_output);
        assert!(!Features::of("2025-03-26").structured_output);
    }
}
