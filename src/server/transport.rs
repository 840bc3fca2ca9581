//! What a connection reads from and writes to: the accepted TCP stream itself, or a TLS
//! stream over it. `conn.rs` runs one request loop over either (generic, so the plain path
//! compiles to the same direct calls as before TLS existed: no boxing, no dynamic dispatch).
//!
//! TLS is rustls driven by futures-rustls over glommio's `TcpStream` (which implements
//! futures' `AsyncRead`/`AsyncWrite`), on the shard's own reactor. Every wait keeps its
//! deadline: glommio's read timeout covers one read of the socket, and a TLS read may take
//! several (a record arriving in pieces), so the TLS stream re-arms each of them with the time
//! left until the read's deadline; a client that dribbles a record cannot stretch it.

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A connection's byte stream, as the request loop uses it.
pub trait Transport {
    /// Reads at least one byte into `buf` (0: the peer closed) within `timeout`
    /// (`ErrorKind::TimedOut` after it).
    async fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;

    /// Writes all of `bytes` out to the socket (each socket write bounded by the write
    /// timeout).
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Ends the connection politely (TLS: close_notify), then shuts the socket's write side.
    async fn close(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
    async fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.set_read_timeout(Some(timeout))?;
        AsyncReadExt::read(self, buf).await
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
    async fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.stream.get_mut().0.read_deadline = Some(Instant::now() + timeout);
        let read = self.stream.read(buf).await;
        self.stream.get_mut().0.read_deadline = None;
        read
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
    stream.get_mut().0.read_deadline = None;
    Ok(TlsTransport { stream })
}

/// The TCP stream under a TLS stream: each socket read gets the time left until
/// `read_deadline` as its timeout, and fails at once once it passed.
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
