//! `bridge-sim decode`: a captured SPI transaction, as JSON.
//!
//! A capture is what one wire carried during one chip-select period, in hex: the
//! SAM's side (MISO: its header, then the data it sent) or the bridge's side (MOSI:
//! its header, then the data it sent). The direction is detected from the bytes (the
//! bridge's header has zero padding and a state byte of at most 6; the SAM's has a
//! command byte and a data length that matches the capture) unless given.

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use serde_json::{json, Value};

use crate::protocol::{
    c_str, padded_len, Command, ConnStatusResponse, DecodeError, EspHeader, ListenOrConnectData,
    NetworkStatusResponse, Protocol, Reply, SamHeader, WiFiState, WirelessConfigurationData, FORMAT_VERSION,
};

/// Which wire a capture is from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The SAM's output (MISO): its header and request data.
    FromSam,
    /// The bridge's output (MOSI): its header and reply data.
    FromBridge,
}

/// Parse hex: whitespace, `:`, `-`, `_` and a leading `0x` are ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut digits = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ':' | '-' | '_' => {}
            c if c.is_ascii_hexdigit() => digits.push(c.to_digit(16).unwrap_or(0) as u8),
            c => return Err(format!("not a hex digit: {c:?} at position {i}")),
        }
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "odd number of hex digits ({}): bytes need two each",
            digits.len()
        ));
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Decode a capture given in hex. `command` says how to read a bridge reply's data
/// (otherwise guessed from its length).
pub fn decode_hex(
    text: &str,
    direction: Option<Direction>,
    command: Option<Command>,
) -> Result<Value, String> {
    decode(&parse_hex(text)?, direction, command)
}

/// Decode a capture.
pub fn decode(bytes: &[u8], direction: Option<Direction>, command: Option<Command>) -> Result<Value, String> {
    if bytes.len() < SamHeader::SIZE {
        return Err(format!(
            "too short: a transaction starts with a {}-byte header, got {} byte(s)",
            SamHeader::SIZE,
            bytes.len()
        ));
    }
    let direction = match direction {
        Some(d) => d,
        None => detect(bytes)?,
    };
    Ok(match direction {
        Direction::FromSam => from_sam(bytes),
        Direction::FromBridge => from_bridge(bytes, command),
    })
}

fn detect(bytes: &[u8]) -> Result<Direction, String> {
    if bytes[0] != FORMAT_VERSION {
        return Err(format!(
            "not a transaction of this protocol: byte 0 is {:#04x}, the format version is {FORMAT_VERSION:#04x} \
             (pass --from-sam or --from-bridge to decode it anyway)",
            bytes[0]
        ));
    }
    let rest = bytes.len() - SamHeader::SIZE;
    let mut sam = 0;
    if let Ok(h) = SamHeader::decode(bytes) {
        if let Ok(c) = h.validate() {
            sam += 2;
            if !c.takes_socket() || h.socket().is_ok() {
                sam += 1;
            }
        }
        if h.flags <= 3 {
            sam += 1;
        }
        if rest == padded_len(h.data_length as usize) {
            sam += 2;
        }
    }
    let mut esp = 0;
    if let Ok(h) = EspHeader::decode(bytes) {
        if bytes[2..8].iter().all(|&b| b == 0) {
            esp += 2;
        }
        if WiFiState::try_from(h.state).is_ok() {
            esp += 1;
        }
        if !matches!(Reply::from_code(h.response), Reply::Unknown(_)) {
            esp += 1;
        }
        let announced = if h.response > 0 { h.response as usize } else { 0 };
        if rest == padded_len(announced) {
            esp += 2;
        }
    }
    match sam.cmp(&esp) {
        core::cmp::Ordering::Greater => Ok(Direction::FromSam),
        core::cmp::Ordering::Less => Ok(Direction::FromBridge),
        core::cmp::Ordering::Equal => Err(format!(
            "ambiguous capture ({} bytes): it reads as well from the SAM as from the bridge; \
             pass --from-sam or --from-bridge",
            bytes.len()
        )),
    }
}

fn error_json(e: DecodeError) -> Value {
    let r = e.response();
    json!({"error": e.to_string(), "response": r.code(), "response_name": r.name()})
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(c_str(bytes)).into_owned()
}

fn ip(v: u32) -> String {
    let o = v.to_le_bytes();
    format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
}

fn raw_data(bytes: &[u8]) -> Value {
    let preview: String = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
    json!({"bytes": bytes.len(), "hex": hex(bytes), "text": preview})
}

fn from_sam(bytes: &[u8]) -> Value {
    // decode() checked the length.
    let h = SamHeader::decode(bytes).unwrap_or_default();
    let command = Command::try_from(h.command);
    let mut header = json!({
        "format_version": format!("{:#04x}", h.format_version),
        "command": {"value": h.command, "name": command.map_or("unknown", Command::name)},
        "socket": h.socket_number,
        "flags": {"raw": h.flags, "close_after_write": h.close_after_write(), "push": h.push()},
        "data_length": h.data_length,
        "data_buffer_available": h.data_buffer_available,
        "param32": h.param32,
    });
    let validation = match h.validate().and_then(|c| {
        if c.takes_socket() {
            h.socket().map(|_| c)
        } else {
            Ok(c)
        }
    }) {
        Ok(_) => json!("ok"),
        Err(e) => error_json(e),
    };
    header["validation"] = validation;
    let rest = &bytes[SamHeader::SIZE..];
    let declared = h.data_length as usize;
    let data = &rest[..declared.min(rest.len())];
    let data_json = match command {
        _ if declared == 0 => Value::Null,
        Ok(Command::NetworkListen | Command::ConnCreate) => match ListenOrConnectData::decode(data) {
            Ok(l) => json!({
                "remote_ip": ip(l.remote_ip), "protocol": l.protocol,
                "protocol_name": Protocol::try_from(l.protocol).map_or("unknown", Protocol::name),
                "port": l.port, "max_connections": l.max_connections,
            }),
            Err(e) => error_json(e),
        },
        Ok(Command::NetworkSetHostName) => json!({"host_name": text(data)}),
        Ok(Command::NetworkStartClient | Command::NetworkDeleteSsid) => json!({"ssid": text(data)}),
        Ok(Command::NetworkAddSsid | Command::NetworkConfigureAccessPoint) => {
            match WirelessConfigurationData::decode(data) {
                Ok(w) => json!({
                    "ip": ip(w.ip), "gateway": ip(w.gateway), "netmask": ip(w.netmask),
                    "channel": w.channel, "security": w.security, "ssid": text(&w.ssid),
                    "password_length": c_str(&w.password).len(),
                }),
                Err(e) => error_json(e),
            }
        }
        _ => raw_data(data),
    };
    json!({
        "direction": "sam-to-bridge",
        "header": header,
        "data": data_json,
        "data_truncated": rest.len() < declared,
        "extra_bytes": rest.len().saturating_sub(declared),
    })
}

fn from_bridge(bytes: &[u8], command: Option<Command>) -> Value {
    let h = EspHeader::decode(bytes).unwrap_or(EspHeader::new(WiFiState::Disabled, 0));
    let reply = Reply::from_code(h.response);
    let meaning = match reply {
        Reply::Length(0) => json!("empty"),
        Reply::Length(n) => json!(format!("{n} data bytes follow")),
        Reply::Error(r) => json!(r.name()),
        Reply::Unknown(c) => json!(format!("unknown code {c}")),
    };
    let mut header = json!({
        "format_version": format!("{:#04x}", h.format_version),
        "state": {"value": h.state, "name": WiFiState::try_from(h.state).map_or("unknown", WiFiState::name)},
        "padding": hex(&bytes[2..8]),
        "response": {"code": h.response, "meaning": meaning},
    });
    header["validation"] = match h.validate() {
        Ok(_) => json!("ok"),
        Err(e) => error_json(e),
    };
    let rest = &bytes[EspHeader::SIZE..];
    let announced = if h.response > 0 { h.response as usize } else { 0 };
    let data = &rest[..announced.min(rest.len())];
    let as_status = command == Some(Command::ConnGetStatus)
        || (command.is_none() && announced == ConnStatusResponse::SIZE);
    let as_network = command == Some(Command::NetworkGetStatus)
        || (command.is_none()
            && (NetworkStatusResponse::MIN_LEN..=NetworkStatusResponse::SIZE).contains(&announced));
    let data_json = if announced == 0 {
        Value::Null
    } else if as_status {
        match ConnStatusResponse::decode(data) {
            Ok(s) => json!({
                "interpreted_as": "ConnStatusResponse",
                "state": s.state.name(), "socket": s.socket_number, "protocol": s.protocol, "rssi": s.rssi,
                "local_port": s.local_port, "remote_port": s.remote_port, "remote_ip": ip(s.remote_ip),
                "bytes_available": s.bytes_available, "write_buffer_space": s.write_buffer_space,
                "connected_sockets": format!("{:08b}", s.connected_sockets),
                "other_end_closed_sockets": format!("{:08b}", s.other_end_closed_sockets),
            }),
            Err(e) => error_json(e),
        }
    } else if as_network {
        match NetworkStatusResponse::decode(data) {
            Ok(n) => json!({
                "interpreted_as": "NetworkStatusResponse",
                "ip_address": ip(n.ip_address), "free_heap": n.free_heap, "reset_reason": n.reset_reason,
                "flash_size": n.flash_size, "rssi": n.rssi, "num_clients": n.num_clients,
                "sleep_mode": n.sleep_mode, "phy_mode": n.phy_mode, "vcc": n.vcc,
                "mac_address": hex(&n.mac_address), "version": text(&n.version_text), "ssid": text(&n.ssid),
                "host_name": text(&n.host_name), "clock_reg": format!("{:#x}", n.clock_reg),
                "netmask": ip(n.netmask), "gateway": ip(n.gateway), "num_reconnects": n.num_reconnects,
                "using_dhcpc": n.using_dhcpc, "auth": n.auth, "channel": n.channel, "ht": n.ht,
                "ap_mac": hex(&n.ap_mac),
            }),
            Err(e) => error_json(e),
        }
    } else if command == Some(Command::NetworkGetLastError) {
        json!({"message": text(data)})
    } else {
        raw_data(data)
    };
    json!({
        "direction": "bridge-to-sam",
        "header": header,
        "data": data_json,
        "data_truncated": rest.len() < announced,
        "extra_bytes": rest.len().saturating_sub(announced),
    })
}
