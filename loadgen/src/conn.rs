//! One client connection's socket side: nonblocking connect, a reused write buffer flushed
//! with as few syscalls as possible, and a fixed read buffer fed to the response parser.

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Read buffer per connection; also bounds a response head (see response::MAX_HEAD_BYTES).
pub const READ_BUF_BYTES: usize = 64 * 1024;

pub enum ReadOutcome {
    /// New bytes are in `unread()`.
    Data,
    /// Nothing more to read now.
    Drained,
    Eof,
}

pub struct Socket {
    stream: TcpStream,
    pub connected: bool,
    read_buf: Box<[u8]>,
    read_start: usize,
    read_end: usize,
    write_buf: Vec<u8>,
    write_pos: usize,
}

impl Socket {
    pub fn connect(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<Socket> {
        let mut stream = TcpStream::connect(addr)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Socket {
            stream,
            connected: false,
            read_buf: vec![0; READ_BUF_BYTES].into_boxed_slice(),
            read_start: 0,
            read_end: 0,
            write_buf: Vec::with_capacity(4096),
            write_pos: 0,
        })
    }

    /// After a readiness event on a connecting socket: Ok(true) once connected, Ok(false)
    /// while still connecting, Err when the connect failed.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(error) = self.stream.take_error()? {
            return Err(error);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                // Requests are written whole; Nagle would only delay them.
                self.stream.set_nodelay(true)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }

    /// The buffer requests are appended to before `flush`.
    pub fn outgoing(&mut self) -> &mut Vec<u8> {
        &mut self.write_buf
    }

    /// Writes what is buffered; returns bytes written. WouldBlock leaves the rest for the
    /// next writable event.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while self.write_pos < self.write_buf.len() {
            match self.stream.write(&self.write_buf[self.write_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.write_pos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.write_pos == self.write_buf.len() {
            self.write_buf.clear();
            self.write_pos = 0;
        }
        Ok(written)
    }

    /// One read into the free part of the buffer.
    pub fn read_some(&mut self, bytes_read: &mut u64) -> io::Result<ReadOutcome> {
        if self.read_start == self.read_end {
            self.read_start = 0;
            self.read_end = 0;
        } else if self.read_end == self.read_buf.len() && self.read_start > 0 {
            self.read_buf.copy_within(self.read_start..self.read_end, 0);
            self.read_end -= self.read_start;
            self.read_start = 0;
        }
        let spare = self.read_buf.len() - self.read_end;
        if spare == 0 {
            // The parser refuses a head longer than the buffer, so a full buffer with
            // nothing consumed cannot happen; report it as data to let the parser say so.
            return Ok(ReadOutcome::Data);
        }
        loop {
            match self.stream.read(&mut self.read_buf[self.read_end..]) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.read_end += n;
                    *bytes_read += n as u64;
                    // A short read means the socket is drained: with edge-triggered epoll
                    // the next arrival raises a new event, so no extra read for EAGAIN.
                    return Ok(if n < spare {
                        ReadOutcome::Drained
                    } else {
                        ReadOutcome::Data
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn unread(&self) -> &[u8] {
        &self.read_buf[self.read_start..self.read_end]
    }

    pub fn consume(&mut self, bytes: usize) {
        debug_assert!(self.read_start + bytes <= self.read_end);
        self.read_start += bytes;
    }
}
