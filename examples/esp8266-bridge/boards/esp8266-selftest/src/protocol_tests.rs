//! The protocol's sizes, numbers, byte order and codecs, checked on the target CPU
//! (the same checks as `esp8266-bridge`'s unit tests in `src/protocol.rs`).

use esp8266_bridge::protocol::*;
use netpool::ConnState;

use crate::harness::{Ctx, Outcome, Test};
use crate::{ensure, ensure_eq};

pub const TESTS: &[Test] = &[
    ("sizes_are_the_protocols", sizes_are_the_protocols),
    ("enum_numbers_are_the_protocols", enum_numbers_are_the_protocols),
    (
        "headers_are_little_endian_at_the_c_offsets",
        headers_are_little_endian_at_the_c_offsets,
    ),
    (
        "validation_maps_to_response_codes",
        validation_maps_to_response_codes,
    ),
    ("structs_round_trip", structs_round_trip),
    ("pins_are_the_protocols", pins_are_the_protocols),
];

fn sizes_are_the_protocols(t: &mut Ctx<'_>) -> Outcome {
    ensure_eq!(t, SamHeader::SIZE, 12);
    ensure_eq!(t, EspHeader::SIZE, 12);
    ensure_eq!(t, ConnStatusResponse::SIZE, 20);
    ensure_eq!(t, ListenOrConnectData::SIZE, 12);
    ensure_eq!(t, WirelessConfigurationData::SIZE, 112);
    ensure_eq!(t, WirelessConfigurationData::REDUCED_SIZE, 48);
    ensure_eq!(t, NetworkStatusResponse::SIZE, 168);
    ensure_eq!(t, NetworkStatusResponse::MIN_LEN, 140);
    ensure_eq!(t, padded_len(13), 16);
    ensure_eq!(t, num_dwords(2048), 512);
    Ok(())
}

fn enum_numbers_are_the_protocols(t: &mut Ctx<'_>) -> Outcome {
    ensure_eq!(t, Command::ALL.len(), 27);
    for (i, c) in Command::ALL.iter().enumerate() {
        ensure_eq!(t, c.value() as usize, i);
        ensure_eq!(t, Command::try_from(i as u8), Ok(*c));
    }
    ensure_eq!(t, Command::try_from(27), Err(DecodeError::UnknownCommand(27)));
    ensure_eq!(t, Command::NetworkGetLastError.value(), 19);
    ensure_eq!(t, Command::NetworkAddEnterpriseSsid.value(), 26);
    ensure_eq!(t, WiFiState::ALL.len(), 7);
    ensure_eq!(t, WiFiState::Reconnecting.value(), 6);
    ensure!(t, WiFiState::try_from(7).is_err());
    let codes: [i32; 15] = [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14];
    ensure_eq!(t, Response::ALL.len(), codes.len());
    for (r, c) in Response::ALL.iter().zip(codes) {
        ensure_eq!(t, r.code(), c);
        ensure_eq!(t, Response::try_from(c), Ok(*r));
    }
    ensure_eq!(t, Response::try_from(-15), Err(DecodeError::UnknownResponse(-15)));
    ensure_eq!(t, Reply::from_code(20), Reply::Length(20));
    ensure_eq!(t, Reply::from_code(-11), Reply::Error(Response::BadParameter));
    ensure_eq!(t, Reply::from_code(-99), Reply::Unknown(-99));
    Ok(())
}

fn headers_are_little_endian_at_the_c_offsets(t: &mut Ctx<'_>) -> Outcome {
    let h = SamHeader::new(Command::ConnWrite, 5, FLAG_PUSH, 0x0102, 0x0304, 0x0A0B_0C0D);
    ensure_eq!(
        t,
        h.encode(),
        [0x3E, 5, 5, 2, 0x02, 0x01, 0x04, 0x03, 0x0D, 0x0C, 0x0B, 0x0A]
    );
    ensure_eq!(t, SamHeader::decode(&h.encode()), Ok(h));
    let e = EspHeader::new(WiFiState::Connected, -5);
    ensure_eq!(t, e.encode(), [0x3E, 4, 0, 0, 0, 0, 0, 0, 0xFB, 0xFF, 0xFF, 0xFF]);
    ensure_eq!(t, EspHeader::decode(&e.encode()), Ok(e));
    ensure_eq!(
        t,
        e.validate(),
        Ok((WiFiState::Connected, Reply::Error(Response::BadDataLength)))
    );
    Ok(())
}

fn validation_maps_to_response_codes(t: &mut Ctx<'_>) -> Outcome {
    let mut h = SamHeader::new(Command::ConnRead, 9, 0, 0, 100, 0);
    ensure_eq!(t, h.validate(), Ok(Command::ConnRead));
    ensure_eq!(
        t,
        h.socket().map_err(|e| e.response()),
        Err(Response::BadParameter)
    );
    h.data_length = 2049;
    ensure_eq!(
        t,
        h.validate().map_err(|e| e.response()),
        Err(Response::BadDataLength)
    );
    h.format_version = 0x3D;
    ensure_eq!(
        t,
        h.validate().map_err(|e| e.response()),
        Err(Response::BadRequestFormatVersion)
    );
    h = SamHeader::new(Command::ConnRead, 0, 0, 0, 0, 0);
    h.command = 200;
    ensure_eq!(
        t,
        h.validate().map_err(|e| e.response()),
        Err(Response::UnknownCommand)
    );
    ensure_eq!(
        t,
        SamHeader::decode(&[0x3E; 11]).map_err(|e| e.response()),
        Err(Response::BadDataLength)
    );
    Ok(())
}

fn structs_round_trip(t: &mut Ctx<'_>) -> Outcome {
    let s = ConnStatusResponse {
        state: ConnState::OtherEndClosed,
        socket_number: 7,
        protocol: 1,
        rssi: -60,
        local_port: 80,
        remote_port: 51000,
        remote_ip: ip_to_wire(core::net::Ipv4Addr::new(192, 168, 1, 20)),
        bytes_available: 2048,
        write_buffer_space: 1024,
        connected_sockets: 0b1010,
        other_end_closed_sockets: 0b1000_0000,
    };
    let b = s.encode();
    ensure_eq!(t, &b[8..12], &[192, 168, 1, 20]);
    ensure_eq!(t, ConnStatusResponse::decode(&b), Ok(s));
    let mut bad = b;
    bad[0] = 8;
    ensure_eq!(
        t,
        ConnStatusResponse::decode(&bad),
        Err(DecodeError::BadConnState(8))
    );

    let l = ListenOrConnectData {
        remote_ip: 0,
        protocol: Protocol::FtpData.value(),
        port: 1025,
        max_connections: 1,
    };
    ensure_eq!(t, l.encode(), [0, 0, 0, 0, 3, 0, 0x01, 0x04, 1, 0, 0, 0]);
    ensure_eq!(t, ListenOrConnectData::decode(&l.encode()), Ok(l));

    let mut w = WirelessConfigurationData {
        ip: 1,
        gateway: 2,
        netmask: 3,
        channel: 6,
        security: -1,
        ssid: [0; 32],
        password: [0; 64],
    };
    set_c_str(&mut w.ssid, b"printer-net");
    set_c_str(&mut w.password, &[b'x'; 100]);
    ensure_eq!(t, c_str(&w.password).len(), 63);
    ensure_eq!(t, WirelessConfigurationData::decode(&w.encode()), Ok(w));

    let mut n = NetworkStatusResponse {
        rssi: -42,
        sleep_mode: 1,
        phy_mode: 3,
        channel: 11,
        ht: 2,
        ap_mac: [1, 2, 3, 4, 5, 6],
        clock_reg: 0x2001,
        ..Default::default()
    };
    set_c_str(&mut n.host_name, b"duet");
    let b = n.encode();
    ensure_eq!(t, b[18], 0b1101);
    ensure_eq!(t, b[158], 0b10_1011);
    ensure_eq!(t, &b[160..166], &[1, 2, 3, 4, 5, 6]);
    ensure_eq!(t, NetworkStatusResponse::decode(&b), Ok(n));
    // An older 144-byte reply decodes; later fields read as zero.
    let old = NetworkStatusResponse::decode(&b[..144]);
    ensure!(t, old.is_ok());
    let old = old.unwrap_or_default();
    ensure_eq!(t, old.clock_reg, 0x2001);
    ensure_eq!(t, old.ap_mac, [0; 6]);
    ensure!(t, NetworkStatusResponse::decode(&b[..139]).is_err());
    Ok(())
}

fn pins_are_the_protocols(t: &mut Ctx<'_>) -> Outcome {
    let p = pins::ESP8266;
    ensure_eq!(t, (p.chip_select, p.request, p.ready), (15, 0, 4));
    let p = pins::ESP32C3;
    ensure_eq!(t, (p.chip_select, p.request, p.ready), (7, 9, 10));
    Ok(())
}
