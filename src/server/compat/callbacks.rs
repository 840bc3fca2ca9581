//! Callbacks: 2captcha's `pingback` and the task protocol's `callbackUrl`. When an upload
//! that asked for one finishes, its owner shard POSTs the answer there: plain HTTP, with a
//! deadline per attempt (`callback_timeout_ms`) and a bounded number of attempts
//! (`callback_attempts`, `callback_retry_ms` apart).
//!
//! Only to destinations the operator allows (`callback_allow`, `host:port` entries; empty,
//! the default, refuses every callback): a client must not be able to make the server send
//! requests into the operator's network. A request naming another destination is refused
//! before anything is charged. A callback waits for its upload as the upload's finish hook
//! (server/state/finish_hooks.rs, bounded by `max_waiters_per_shard`); a callback for an
//! upload voided before it ran is dropped, and
//! callbacks of uploads still pending at a stop are lost with the stop (those uploads are
//! voided and refunded).

use super::task_answers::AnswerFormat;
use crate::server::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

/// The longest callback URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Bytes of the receiver's answer read (enough for its status line).
const ANSWER_HEAD_BYTES: usize = 512;

/// Where a callback goes: an allowed `http://host:port/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackTarget {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// What the receiver is sent.
#[derive(Clone, Debug, PartialEq)]
pub enum CallbackBody {
    /// 2captcha: `id=<id>&code=<answer>`, form-urlencoded.
    Pingback,
    /// The task protocol: the JSON `getTaskResult` answers, for the client at this address,
    /// with the task's id (given when the upload is accepted: `Callback::with_task_id`).
    TaskResult {
        client_ip: std::net::IpAddr,
        task_id: Option<u64>,
        /// How the task's type writes its solution.
        format: AnswerFormat,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Callback {
    pub target: CallbackTarget,
    pub body: CallbackBody,
}

impl Callback {
    /// The callback of an upload numbered `task_id` (the task protocol's; `None` for the
    /// others, whose bodies name the upload id).
    pub fn with_task_id(mut self, task_id: Option<u64>) -> Callback {
        if let CallbackBody::TaskResult { task_id: slot, .. } = &mut self.body {
            *slot = task_id;
        }
        self
    }
}

/// Why a callback URL is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum CallbackRefusal {
    /// Not `http://host[:port][/path]`.
    Malformed,
    /// Not among `callback_allow`.
    NotAllowed,
}

impl CallbackTarget {
    /// `url` if it is an `http://` URL to one of the `allowed` `(host, port)` pairs.
    pub fn parse(url: &str, allowed: &[(String, u16)]) -> Result<CallbackTarget, CallbackRefusal> {
        if url.len() > MAX_URL_BYTES || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(CallbackRefusal::Malformed);
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or(CallbackRefusal::Malformed)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return Err(CallbackRefusal::Malformed);
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| CallbackRefusal::Malformed)?,
            ),
            // `[::1]` has colons but no port.
            Some(_) if !authority.starts_with('[') => return Err(CallbackRefusal::Malformed),
            _ => (authority, 80),
        };
        let host = host.to_ascii_lowercase();
        if !allowed
            .iter()
            .any(|(name, allowed_port)| *name == host && *allowed_port == port)
        {
            return Err(CallbackRefusal::NotAllowed);
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(CallbackTarget { host, port, path })
    }
}

/// Sends `body` to the callback's target in a task of its own (the shard does not wait).
/// The protocol that registered the callback wrote the body (compat's `deliver_callback`).
pub fn send(shard: &Rc<Shard>, callback: Callback, content_type: &str, body: Vec<u8>) {
    let config = shard.config();
    let request = http_request(&callback.target, content_type, &body);
    let timeout = Duration::from_millis(config.compat.callback_timeout_ms);
    let retry = Duration::from_millis(config.compat.callback_retry_ms);
    let attempts = config.compat.callback_attempts;
    let shard = shard.clone();
    glommio::spawn_local(async move {
        for attempt in 1..=attempts {
            match post(&callback.target, &request, timeout).await {
                Ok(()) => {
                    shard.metrics().callbacks_delivered += 1;
                    return;
                }
                Err(error) if attempt == attempts => {
                    shard.metrics().callbacks_failed += 1;
                    log_line!(
                        "aiocr: callback to {}:{} failed after {attempts} attempt(s): {error}",
                        callback.target.host,
                        callback.target.port
                    );
                }
                Err(_) => glommio::timer::sleep(retry).await,
            }
        }
    })
    .detach();
}

fn http_request(target: &CallbackTarget, content_type: &str, body: &[u8]) -> Vec<u8> {
    let host = if target.port == 80 {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: aiocr\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        target.path,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One attempt: resolve, connect, send, read the status line; `Ok` for a 2xx answer.
async fn post(target: &CallbackTarget, request: &[u8], timeout: Duration) -> Result<(), String> {
    let address = resolve(target).await?;
    let mut stream = glommio::net::TcpStream::connect_timeout(address, timeout)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|_| stream.set_read_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut head = vec![0u8; ANSWER_HEAD_BYTES];
    let mut read = 0;
    while read < head.len() && !head[..read].contains(&b'\n') {
        match stream.read(&mut head[read..]).await {
            Ok(0) => break,
            Ok(count) => read += count,
            Err(error) => return Err(format!("answer: {error}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') && status.len() == 3 {
        Ok(())
    } else {
        Err(format!(
            "answer: {:?}",
            status_line.lines().next().unwrap_or("")
        ))
    }
}

/// The target's first address (name resolution blocks: it runs on the blocking pool).
async fn resolve(target: &CallbackTarget) -> Result<SocketAddr, String> {
    let (host, port) = (target.host.clone(), target.port);
    glommio::executor()
        .spawn_blocking(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("resolve: {e}"))?
                .next()
                .ok_or_else(|| "resolve: no address".to_string())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_http_destinations() {
        let allowed = vec![
            ("127.0.0.1".to_string(), 9000),
            ("hooks.local".to_string(), 80),
        ];
        let target = CallbackTarget::parse("http://127.0.0.1:9000/done?x=1", &allowed).unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.path.as_str()),
            ("127.0.0.1", 9000, "/done?x=1")
        );
        let target = CallbackTarget::parse("http://HOOKS.local", &allowed).unwrap();
        assert_eq!((target.port, target.path.as_str()), (80, "/"));
        let refused = |url: &str| CallbackTarget::parse(url, &allowed).unwrap_err();
        assert_eq!(
            refused("http://127.0.0.1:9001/"),
            CallbackRefusal::NotAllowed
        );
        assert_eq!(refused("http://10.0.0.1/"), CallbackRefusal::NotAllowed);
        assert_eq!(
            refused("https://127.0.0.1:9000/"),
            CallbackRefusal::Malformed
        );
        assert_eq!(
            refused("http://user@127.0.0.1:9000/"),
            CallbackRefusal::Malformed
        );
        assert_eq!(
            refused("http://127.0.0.1:9000/a b"),
            CallbackRefusal::Malformed
        );
        assert_eq!(refused("http://127.0.0.1:x/"), CallbackRefusal::Malformed);
        assert_eq!(
            CallbackTarget::parse("http://127.0.0.1:9000/", &[]).unwrap_err(),
            CallbackRefusal::NotAllowed,
            "nothing is allowed by default"
        );
    }
}
