//! Raw packets for tests that play a peer by hand (feature `wire`): what smoltcp's
//! `wire` module builds, with every checksum filled.

use core::net::SocketAddrV4;
use std::vec;
use std::vec::Vec;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

/// An IPv4 packet carrying a client's first TCP segment, a SYN from `src` to `dst`
/// with sequence number `seq`, receive window `window` and MSS `mss`. Sent from an
/// address that answers nothing, it opens a handshake that never completes.
pub fn syn(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, window: u16, mss: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: None,
        window_len: window,
        window_scale: None,
        max_seg_size: Some(mss),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut frame = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[..]);
    ip.emit(&mut packet, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(*src.ip()),
        &IpAddress::Ipv4(*dst.ip()),
        &caps,
    );
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn a_syn_parses_back_with_its_fields_and_valid_checksums() {
        let (src, dst) = (
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 4000),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
        );
        let bytes = syn(src, dst, 4_000_000, 1024, 1400);
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        let (s, d) = (IpAddress::Ipv4(*src.ip()), IpAddress::Ipv4(*dst.ip()));
        let tcp = TcpPacket::new_checked(packet.payload()).unwrap();
        assert!(tcp.verify_checksum(&s, &d));
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(
            (tcp.src_port(), tcp.dst_port(), tcp.window_len()),
            (4000, 80, 1024)
        );
        assert_eq!(tcp.seq_number(), TcpSeqNumber(4_000_000));
    }
}
