//! Every decoder of the protocol on arbitrary bytes: no panic, and what decodes
//! re-encodes to the same value.
#![no_main]

use esp8266_bridge::protocol::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(h) = SamHeader::decode(bytes) {
        let _ = h.validate();
        let _ = h.socket();
        assert_eq!(SamHeader::decode(&h.encode()), Ok(h));
    }
    let _ = SamHeader::decode_prefix(bytes);
    if let Ok(h) = EspHeader::decode(bytes) {
        let _ = h.validate();
    }
    if let Ok(s) = ConnStatusResponse::decode(bytes) {
        assert_eq!(ConnStatusResponse::decode(&s.encode()), Ok(s));
    }
    if let Ok(l) = ListenOrConnectData::decode(bytes) {
        assert_eq!(ListenOrConnectData::decode(&l.encode()), Ok(l));
    }
    if let Ok(w) = WirelessConfigurationData::decode(bytes) {
        assert_eq!(WirelessConfigurationData::decode(&w.encode()), Ok(w));
    }
    if let Ok(n) = NetworkStatusResponse::decode(bytes) {
        let _ = n.encode();
    }
    if bytes.len() >= 4 {
        let code = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let _ = Reply::from_code(code);
        let _ = Response::try_from(code);
    }
});
