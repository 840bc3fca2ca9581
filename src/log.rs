//! The server's log lines (stderr) and announcements (stdout), written without ever panicking.
//!
//! Why not `eprintln!`: it panics when the write fails, and a server's output is often a file
//! on the same disk as its data. With that disk full, a log line about the full disk would
//! kill the shard's thread that wrote it (issue 14: a shard died that way, and SIGTERM then
//! never finished). A line that cannot be written is dropped; the server goes on.

/// `eprintln!` that drops the line instead of panicking when stderr cannot be written.
#[macro_export]
macro_rules! log_line {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// `println!` that drops the line instead of panicking when stdout cannot be written.
#[macro_export]
macro_rules! out_line {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}
