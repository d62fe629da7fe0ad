//! Arbitrary bytes never panic the decoders or the command dispatcher (the fuzz
//! targets' properties, run by proptest on every test run), plus the fuzz targets'
//! committed corpus (`fuzz/corpus/`) and the regression inputs found by fuzzing
//! (`fuzz/regressions/`).

use esp8266_bridge::mock::exercise;
use esp8266_bridge::protocol::*;
use proptest::prelude::*;

fn decode_everything(bytes: &[u8]) {
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
    for &b in bytes.iter().take(4) {
        let _ = Command::try_from(b);
        let _ = WiFiState::try_from(b);
        let _ = Protocol::try_from(b);
        let _ = ConnState::try_from(b);
    }
    if bytes.len() >= 4 {
        let code = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let _ = Response::try_from(code);
        let _ = Reply::from_code(code);
    }
    #[cfg(feature = "host")]
    for dir in [
        None,
        Some(esp8266_bridge::host::decode::Direction::FromSam),
        Some(esp8266_bridge::host::decode::Direction::FromBridge),
    ] {
        let _ = esp8266_bridge::host::decode::decode(bytes, dir, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_everything(&bytes);
    }

    #[test]
    fn headers_with_version_decode_to_their_fields(
        cmd in 0u8..40, sock in any::<u8>(), flags in any::<u8>(), len in any::<u16>(), room in any::<u16>(), p in any::<u32>()
    ) {
        let mut bytes = [0u8; 12];
        bytes[0] = FORMAT_VERSION;
        bytes[1] = cmd;
        bytes[2] = sock;
        bytes[3] = flags;
        bytes[4..6].copy_from_slice(&len.to_le_bytes());
        bytes[6..8].copy_from_slice(&room.to_le_bytes());
        bytes[8..12].copy_from_slice(&p.to_le_bytes());
        let h = SamHeader::decode(&bytes).unwrap();
        prop_assert_eq!((h.command, h.socket_number, h.data_length, h.param32), (cmd, sock, len, p));
        match h.validate() {
            Ok(c) => prop_assert!(cmd <= 26 && len <= 2048 && c.value() == cmd),
            Err(e) if len > 2048 => prop_assert_eq!(e.response(), Response::BadDataLength),
            Err(e) => prop_assert_eq!(e.response(), Response::UnknownCommand),
        }
    }

    #[test]
    fn dispatcher_never_panics_and_keeps_its_invariants(script in proptest::collection::vec(any::<u8>(), 0..1500)) {
        exercise(&script);
    }
}

/// Every input of the fuzz targets' committed corpus (`fuzz/corpus/decode/`,
/// `fuzz/corpus/dispatch/`), through the same checks as the targets.
#[test]
fn fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in [
        ("decode", decode_everything as fn(&[u8])),
        ("dispatch", |b: &[u8]| {
            exercise(b);
        }),
    ] {
        let dir = root.join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/<target> exists") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            check(&bytes);
            n += 1;
        }
        assert!(n > 0, "no corpus inputs in {}", dir.display());
    }
}

/// Inputs kept from fuzzing runs (and hand-made corner cases) in `fuzz/regressions/`.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("decode-") {
            decode_everything(&bytes);
        } else if name.starts_with("dispatch-") {
            exercise(&bytes);
        } else {
            continue;
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn a_long_realistic_script_serves_transfers() {
    // listen on 80, a peer connects and sends, the SAM polls and reads.
    let mut script = vec![8, 0, 0, 4, 5, 0, 7, 9, 6, 1, 20, 65];
    for _ in 0..10 {
        script.extend_from_slice(&[0, 0, 6, 0, 0, 0, 0, 20, 0]); // connGetStatus socket 0
        script.extend_from_slice(&[1, 0, 4, 0, 0, 0, 0, 0, 1]); // connRead 256
    }
    let out = exercise(&script);
    assert!(out.transfers >= 21, "{out:?}");
    assert_eq!(out.incoming, 1);
}
