//! The web console (`/console/`) and the API description (`/openapi.json`): static files
//! built into the binary (`web/console/`, `docs/openapi.json`), so the server needs nothing
//! beside itself to serve them.
//!
//! Every answer carries an entity tag (BLAKE3 of the bytes: they change only with the binary)
//! and `Cache-Control: no-cache`, so a browser revalidates each time and gets a 304 without
//! the bytes while they are current. The console's pages carry a strict Content-Security-
//! Policy: scripts, styles and connections only from this origin, no inline script or style,
//! no frames, no plugins; images also from `blob:` (the try-it page shows the image being
//! solved from memory).

use crate::contract::ApiError;
use crate::http::{RequestHead, Response};
use crate::server::reply::Refusal;
use std::sync::LazyLock;

/// The policy every console answer carries (and `/openapi.json`: it is harmless there).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where the console is served (`/console` and `/` redirect here).
pub const CONSOLE_PATH: &str = "/console/";

/// One built-in file.
pub struct Asset {
    /// Its path under `/console/` (empty for `/openapi.json`, which has a route of its own).
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const PNG: &str = "image/png";
const TEXT: &str = "text/plain; charset=utf-8";

/// A file of `web/console/`, read at build time.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/console/", $path)),
        }
    };
}

/// Every file of `web/console/` (a test checks that none is missing and none is extra).
pub const ASSETS: [Asset; 19] = [
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    // A captcha to try when one has none at hand (tests/fixtures/captcha/0001.png).
    asset!("sample.png", PNG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("chart.js", JS),
    asset!("kinds.js", JS),
    asset!("pages/signin.js", JS),
    asset!("pages/account.js", JS),
    asset!("pages/try.js", JS),
    asset!("pages/usage.js", JS),
    asset!("pages/models.js", JS),
    asset!("pages/admin.js", JS),
    asset!("pages/reference.js", JS),
    asset!("vendor/uplot/uPlot.esm.js", JS),
    asset!("vendor/uplot/uPlot.min.css", CSS),
    asset!("vendor/uplot/LICENSE", TEXT),
];

/// The OpenAPI 3.1 description of `/v2`.
pub const OPENAPI: Asset = Asset {
    path: "",
    content_type: "application/json",
    bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")),
};

/// The entity tags of `ASSETS` (same order) and of `OPENAPI`, computed once.
static ETAGS: LazyLock<(Vec<String>, String)> = LazyLock::new(|| {
    let tags = ASSETS.iter().map(|asset| entity_tag(asset.bytes)).collect();
    (tags, entity_tag(OPENAPI.bytes))
});

fn entity_tag(bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes).to_hex();
    format!("\"{}\"", &hash.as_str()[..32])
}

/// `GET /console/...` (and `/console`, `/`: redirects).
pub fn console(head: &RequestHead) -> Result<Response, Refusal> {
    let Some(rest) = head.path.strip_prefix(CONSOLE_PATH) else {
        // `/console` or `/`: the console's own URL.
        return Ok(redirect(CONSOLE_PATH));
    };
    let name = if rest.is_empty() { "index.html" } else { rest };
    let index = ASSETS
        .iter()
        .position(|asset| asset.path == name)
        .ok_or_else(|| Refusal::new(ApiError::NoRoute, "no such file in the console"))?;
    let answer = cached(head, &ASSETS[index], &ETAGS.0[index]);
    Ok(with_page_headers(answer))
}

/// `GET /openapi.json`.
pub fn openapi(head: &RequestHead) -> Response {
    with_page_headers(cached(head, &OPENAPI, &ETAGS.1))
}

/// The asset, or 304 when the request's `If-None-Match` names its current tag.
fn cached(head: &RequestHead, asset: &Asset, tag: &str) -> Response {
    let current = head
        .if_none_match
        .as_deref()
        .is_some_and(|tags| matches_tag(tags, tag));
    let answer = if current {
        Response::not_modified()
    } else {
        let mut answer = Response::plain(200, asset.bytes.to_vec());
        answer.content_type = asset.content_type;
        answer
    };
    answer
        .with_header("ETag", tag.to_string())
        .with_header("Cache-Control", "no-cache".to_string())
}

/// RFC 9110 §13.1.2: `*`, or a list of tags compared weakly (a `W/` prefix is ignored).
fn matches_tag(if_none_match: &str, tag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .map(|candidate| candidate.trim())
            .map(|candidate| candidate.strip_prefix("W/").unwrap_or(candidate))
            .any(|candidate| candidate == tag)
}

fn with_page_headers(answer: Response) -> Response {
    answer
        .with_header(
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY.to_string(),
        )
        .with_header("X-Content-Type-Options", "nosniff".to_string())
        .with_header("Referrer-Policy", "no-referrer".to_string())
        .with_header("X-Frame-Options", "DENY".to_string())
}

fn redirect(location: &str) -> Response {
    let mut answer = Response::plain(308, format!("see {location}\n").into_bytes());
    answer
        .extra_headers
        .push(("Location", location.to_string()));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_file_of_web_console_is_built_in_once() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/console");
        let mut on_disk = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap();
                    on_disk.push(relative.to_str().unwrap().to_string());
                }
            }
        }
        let mut built_in: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        on_disk.sort();
        built_in.sort();
        assert_eq!(on_disk, built_in);
    }

    /// The sample is a fixture, so the browser test knows ddddocr's answer for it.
    #[test]
    fn the_sample_is_a_fixture() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha/0001.png");
        let sample = ASSETS
            .iter()
            .find(|asset| asset.path == "sample.png")
            .unwrap();
        assert_eq!(sample.bytes, std::fs::read(fixture).unwrap());
    }

    #[test]
    fn entity_tags_compare_weakly_and_in_lists() {
        let tag = "\"abc\"";
        assert!(matches_tag("\"abc\"", tag));
        assert!(matches_tag("W/\"abc\"", tag));
        assert!(matches_tag("\"x\", \"abc\"", tag));
        assert!(matches_tag("*", tag));
        assert!(!matches_tag("\"abcd\"", tag));
        assert!(!matches_tag("abc", tag));
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_nothing_from_elsewhere() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'self';"));
    }
}
