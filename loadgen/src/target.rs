//! The target URL: `http://host[:port][/base][?query]`. Only plain HTTP/1.1 is spoken.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone)]
pub struct Target {
    /// What the user typed, for reports.
    pub url: String,
    /// `host[:port]` as it goes into the `Host` header.
    pub host_header: String,
    /// The resolved address every connection dials.
    pub addr: SocketAddr,
    /// Path and query of the URL (at least "/"); plain requests use it as is, scenarios
    /// use it as the prefix of the aiocr routes (a trailing "/" is dropped there).
    pub path_and_query: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("only http:// URLs are supported (got {url:?})");
        };
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(at) if rest.as_bytes()[at] == b'/' => (&rest[..at], rest[at..].to_string()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            bail!("bad host in URL {url:?}");
        }
        let with_port = if authority_has_port(authority) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {authority:?}"))?
            .next()
            .with_context(|| format!("{authority:?} resolves to no address"))?;
        Ok(Target {
            url: url.to_string(),
            host_header: authority.to_string(),
            addr,
            path_and_query,
        })
    }

    /// The prefix the aiocr routes ("/v2/...") are appended to.
    pub fn route_prefix(&self) -> &str {
        let path = self.path_and_query.split('?').next().unwrap_or("");
        path.trim_end_matches('/')
    }
}

fn authority_has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        // "[::1]" has colons but no port; "[::1]:8080" and "host:8080" have one.
        Some(at) => !authority[at..].contains(']'),
        None => false,
    }
}

/// The `Authorization` header line for a token.
pub fn auth_header(token: &str) -> Vec<u8> {
    format!("Authorization: Bearer {token}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_path() {
        let t = Target::parse("http://127.0.0.1:8080/api/?x=1").unwrap();
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.path_and_query, "/api/?x=1");
        assert_eq!(t.route_prefix(), "/api");
    }

    #[test]
    fn defaults_path_and_port() {
        let t = Target::parse("http://127.0.0.1").unwrap();
        assert_eq!(t.path_and_query, "/");
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.route_prefix(), "");
        let q = Target::parse("http://127.0.0.1:9?a=b").unwrap();
        assert_eq!(q.path_and_query, "/?a=b");
    }

    #[test]
    fn refuses_other_schemes() {
        assert!(Target::parse("https://127.0.0.1/").is_err());
        assert!(Target::parse("http:///x").is_err());
    }
}
