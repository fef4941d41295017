//! Receiving sd_notify datagrams in tests.

use std::io;
use std::os::unix::net::UnixDatagram;

/// `recv` that retries on EINTR. With SO_RCVTIMEO set, Linux returns EINTR
/// after the process is stopped and continued (signal(7)), which happens when
/// a CI runner freezes and thaws the job's cgroup; no signal handler needed.
pub fn recv(sock: &UnixDatagram, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match sock.recv(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
