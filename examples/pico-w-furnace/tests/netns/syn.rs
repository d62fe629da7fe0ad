//! Half-open handshakes: raw TCP SYNs to the device from spoofed addresses on the
//! namespace's TAP subnet that nobody answers ARP for, so the device's SYN-ACK never
//! gets an answer and its socket stays in SYN-RECEIVED.
//!
//! Sent through a raw IPv4 socket with `IP_HDRINCL` (socket2, `Type::RAW`): the
//! kernel routes the packet out of the TAP device (the device's address is on its
//! connected /24) and resolves the device's MAC itself; the TCP checksum is computed
//! here (RFC 793 pseudo-header). Each SYN has its own source address (from the
//! caller's list), a random source port and a random ISN.
//!
//! Safety net: a [`SynSender`] is made only on a thread inside the test's namespace
//! (checked against `/run/netns/<name>`), and only for a destination and sources on
//! the namespace's own /24 (`Netns::host_ip`): nothing can leave for another network.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::MetadataExt;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::Netns;

/// A raw socket that sends SYNs to one address of the namespace.
pub struct SynSender {
    socket: Socket,
    dst: SocketAddrV4,
    sources: Vec<Ipv4Addr>,
    rng: u64,
    /// SYNs sent so far.
    pub sent: u64,
}

/// Whether the calling thread is in `ns`'s network namespace.
pub fn thread_in(ns: &Netns) -> bool {
    let ours = std::fs::metadata("/proc/thread-self/ns/net");
    let theirs = std::fs::metadata(format!("/run/netns/{}", ns.name));
    match (ours, theirs) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Whether `a` is on the namespace's /24 (the TAP subnet).
fn on_subnet(ns: &Netns, a: Ipv4Addr) -> bool {
    let host: Ipv4Addr = ns.host_ip.parse().expect("host_ip is an IPv4 address");
    host.octets()[..3] == a.octets()[..3]
}

impl SynSender {
    /// A sender to `dst` from `sources`; the calling thread must be inside `ns`.
    pub fn new(ns: &Netns, dst: SocketAddrV4, sources: Vec<Ipv4Addr>) -> SynSender {
        assert!(
            thread_in(ns),
            "the SYN sender runs only inside the test's namespace {}",
            ns.name
        );
        assert!(
            on_subnet(ns, *dst.ip()),
            "{dst} is not on the namespace's TAP subnet"
        );
        let host: Ipv4Addr = ns.host_ip.parse().unwrap();
        assert!(!sources.is_empty());
        for s in &sources {
            assert!(
                on_subnet(ns, *s) && s != dst.ip() && *s != host,
                "spoofed source {s}: must be an unused address of the namespace's TAP subnet"
            );
        }
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).unwrap_or_else(|e| {
            panic!("raw socket for the SYN sender (needs CAP_NET_RAW: run as root): {e}")
        });
        socket
            .set_header_included_v4(true)
            .unwrap_or_else(|e| panic!("IP_HDRINCL: {e}"));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        SynSender {
            socket,
            dst,
            sources,
            rng: seed | 1,
            sent: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Send one SYN from a random source of the list, a random port and ISN.
    pub fn send(&mut self) {
        let r = self.next();
        let src = self.sources[(r % self.sources.len() as u64) as usize];
        let sport = 1024 + ((r >> 16) % (65535 - 1024)) as u16;
        let isn = (r >> 32) as u32;
        let id = (r >> 8) as u16;
        let packet = syn_packet(src, sport, self.dst, isn, id);
        let to = SockAddr::from(SocketAddrV4::new(*self.dst.ip(), 0));
        let n = self
            .socket
            .send_to(&packet, &to)
            .unwrap_or_else(|e| panic!("send a SYN to {}: {e}", self.dst));
        assert_eq!(n, packet.len());
        self.sent += 1;
    }
}

/// One's complement sum of 16-bit words (RFC 1071), not yet complemented.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 packet holding a TCP SYN with an MSS option (1460), as a client's.
pub fn syn_packet(src: Ipv4Addr, sport: u16, dst: SocketAddrV4, isn: u32, id: u16) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(24);
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&isn.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
    tcp.push(6 << 4); // data offset: 6 words (20 + 4 bytes of options)
    tcp.push(0x02); // SYN
    tcp.extend_from_slice(&64240u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0]); // checksum, below
    tcp.extend_from_slice(&[0, 0]); // urgent pointer
    tcp.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    let check = fold(sum16(sum16(0, &pseudo), &tcp));
    tcp[16..18].copy_from_slice(&check.to_be_bytes());

    let mut ip = Vec::with_capacity(20 + tcp.len());
    ip.push(0x45); // IPv4, 5 words
    ip.push(0);
    ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip.push(64); // TTL
    ip.push(6); // TCP
    ip.extend_from_slice(&[0, 0]); // header checksum, below (the kernel fills it too)
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.ip().octets());
    let check = fold(sum16(0, &ip));
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

#[test]
fn checksums_verify() {
    let p = syn_packet(
        Ipv4Addr::new(10, 78, 0, 150),
        40000,
        SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 2), 80),
        0x1234_5678,
        7,
    );
    // A packet with correct checksums sums to 0xffff (folds to 0).
    assert_eq!(fold(sum16(0, &p[..20])), 0);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&p[12..20]);
    pseudo.extend_from_slice(&[0, 6, 0, 24]);
    assert_eq!(fold(sum16(sum16(0, &pseudo), &p[20..])), 0);
}
