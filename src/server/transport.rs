//! What a connection reads from and writes to: the accepted TCP stream itself, or a TLS
//! stream over it. `conn.rs` runs one request loop over either (generic, so the plain path
//! compiles to the same direct calls as before TLS existed: no boxing, no dynamic dispatch).
//!
//! TLS is rustls driven by futures-rustls over glommio's `TcpStream` (which implements
//! futures' `AsyncRead`/`AsyncWrite`), on the shard's own reactor. Every wait keeps its
//! deadline: a request's reads are bounded by the connection's [`ReadWatch`] (the shard's
//! sweep ends a read whose deadline passed, however many socket reads a TLS record took), and
//! the handshake, before there is a request, gives each socket read the time left until the
//! handshake's deadline; a client that dribbles a record cannot stretch either.

use super::state::ReadWatch;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// A connection's byte stream, as the request loop uses it.
pub trait Transport {
    /// Reads at least one byte into `buf` (0: the peer closed) by `deadline`
    /// (`ErrorKind::TimedOut` once the shard's sweep finds it passed: `watch` is the
    /// connection's).
    async fn read_by(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        watch: &ReadWatch,
    ) -> io::Result<usize>;

    /// Writes all of `bytes` out to the socket (each socket write bounded by the write
    /// timeout).
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Ends the connection politely (TLS: close_notify), then shuts the socket's write side.
    async fn close(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
    async fn read_by(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        watch: &ReadWatch,
    ) -> io::Result<usize> {
        watch.within(deadline, AsyncReadExt::read(self, buf)).await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(self, bytes).await
    }

    async fn close(&mut self) -> io::Result<()> {
        AsyncWriteExt::close(self).await
    }
}

/// A server-side TLS connection after its handshake.
pub struct TlsTransport {
    stream: futures_rustls::server::TlsStream<DeadlineStream>,
}

impl Transport for TlsTransport {
    async fn read_by(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        watch: &ReadWatch,
    ) -> io::Result<usize> {
        watch.within(deadline, self.stream.read(buf)).await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        // rustls encrypts into its own buffer; flushing sends what write_all left there.
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.stream.close().await
    }
}

/// Runs the server side of a TLS handshake on an accepted socket with `config` (the shard's
/// current certificate), reading the client's messages by `deadline` at the latest.
pub async fn tls_handshake(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    deadline: Instant,
) -> io::Result<TlsTransport> {
    let io = DeadlineStream {
        tcp,
        read_deadline: Some(deadline),
    };
    let mut stream = futures_rustls::TlsAcceptor::from(config).accept(io).await?;
    // From now on the connection's ReadWatch bounds the reads: no socket read may keep the
    // handshake's timeout (glommio would time it out on its own).
    let under = &mut stream.get_mut().0;
    under.read_deadline = None;
    under.tcp.set_read_timeout(None)?;
    Ok(TlsTransport { stream })
}

/// The TCP stream under a TLS stream: during the handshake, each socket read gets the time
/// left until `read_deadline` as its timeout, and fails at once once it passed (afterwards
/// `None`: the connection's `ReadWatch` bounds its reads).
struct DeadlineStream {
    tcp: TcpStream,
    read_deadline: Option<Instant>,
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(deadline) = self.read_deadline {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero());
            let Some(left) = left else {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            };
            // Only takes effect when this poll arms a new timer: a read already waiting keeps
            // the timer it has, which ends no later than the deadline.
            self.tcp.set_read_timeout(Some(left))?;
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_close(cx)
    }
}
