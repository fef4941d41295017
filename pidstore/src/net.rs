//! Listening TCP sockets of a process, as `lsof -p PID | grep LISTEN` shows
//! them: socket inodes from `/proc/PID/fd` matched against the process's own
//! network namespace tables `/proc/PID/net/tcp` and `/proc/PID/net/tcp6`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// `TCP_LISTEN` in the kernel's `st` column.
const TCP_LISTEN: u8 = 0x0A;

/// One row of `/proc/net/tcp{,6}` reduced to what we match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

/// Parses `/proc/net/tcp` (`v6 == false`) or `/proc/net/tcp6`. Lines that do
/// not have the documented shape are skipped: the kernel's format has been
/// stable for decades, and a status display must not fail on one odd row.
pub fn parse_proc_net_tcp(text: &str, v6: bool) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|l| parse_line(l, v6))
        .collect()
}

fn parse_line(line: &str, v6: bool) -> Option<TcpEntry> {
    let mut fields = line.split_ascii_whitespace();
    let local = fields.nth(1)?;
    let state = u8::from_str_radix(fields.nth(1)?, 16).ok()?;
    // After `st`: tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    let inode = fields.nth(5)?.parse().ok()?;
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if v6 {
        parse_ipv6(addr)?.into()
    } else {
        parse_ipv4(addr)?.into()
    };
    Some(TcpEntry {
        local: SocketAddr::new(ip, port),
        state,
        inode,
    })
}

/// The kernel prints the raw in-memory `__be32` as a host-order integer, so
/// the native-endian bytes of the parsed number are the network-order bytes.
fn parse_ipv4(hex: &str) -> Option<Ipv4Addr> {
    if hex.len() != 8 {
        return None;
    }
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(word.to_ne_bytes()))
}

/// Four 32-bit words, each printed like an IPv4 address.
fn parse_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(octets))
}

/// Inodes of the sockets a process holds open (`socket:[INODE]` links).
/// Needs the same user as the process, or root; the error says so.
pub fn socket_inodes(pid: i32) -> io::Result<HashSet<u64>> {
    socket_inodes_in(&Path::new("/proc").join(pid.to_string()).join("fd"))
}

fn socket_inodes_in(fd_dir: &Path) -> io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in fs::read_dir(fd_dir)? {
        // An fd closed while we iterate is not an error.
        let Ok(target) = fs::read_link(entry?.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse().ok());
        if let Some(inode) = inode {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

/// Local addresses of the TCP sockets in LISTEN state that `pid` holds,
/// sorted by port then address.
pub fn listening_sockets(pid: i32) -> io::Result<Vec<SocketAddr>> {
    let inodes = socket_inodes(pid)?;
    let net = Path::new("/proc").join(pid.to_string()).join("net");
    let mut found = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        let text = match fs::read_to_string(net.join(file)) {
            Ok(t) => t,
            // tcp6 is absent when IPv6 is disabled.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        found.extend(
            parse_proc_net_tcp(&text, v6)
                .into_iter()
                .filter(|e| e.state == TCP_LISTEN && inodes.contains(&e.inode))
                .map(|e| e.local),
        );
    }
    found.sort_by_key(|a| (a.port(), a.ip()));
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2711 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2711 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 123457 1 0000000000000000 20 4 30 10 -1
   2: garbage
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0CE9 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1A0B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_ipv4_table() {
        let rows = parse_proc_net_tcp(TCP, false);
        assert_eq!(rows.len(), 2, "header and garbage skipped");
        assert_eq!(rows[0].local, "127.0.0.1:10001".parse().unwrap());
        assert_eq!(rows[0].state, TCP_LISTEN);
        assert_eq!(rows[0].inode, 123_456);
        assert_eq!(rows[1].state, 0x01);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_ipv6_table() {
        let rows = parse_proc_net_tcp(TCP6, true);
        assert_eq!(rows[0].local, "[::]:3305".parse().unwrap());
        assert_eq!(rows[1].local, "[::1]:6667".parse().unwrap());
        assert_eq!(rows[1].inode, 778);
    }

    #[test]
    fn rejects_bad_addresses() {
        assert_eq!(parse_ipv4("0100007"), None);
        assert_eq!(parse_ipv4("0100007G"), None);
        assert_eq!(parse_ipv6("00"), None);
    }

    #[test]
    fn finds_own_listener_but_not_connections() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A connected (non-listening) socket of ours must not be listed.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let found = listening_sockets(pid).unwrap();
        assert!(found.contains(&addr), "{found:?} lacks {addr}");
        assert!(found.iter().all(|a| a.port() != 0));
        let connected: Vec<_> = found.iter().filter(|a| a.port() == addr.port()).collect();
        assert_eq!(connected.len(), 1);
        drop(listener);
        assert!(!listening_sockets(pid).unwrap().contains(&addr));
    }
}
