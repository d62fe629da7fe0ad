//! The simulator's HTTP API over kernel TCP on 127.0.0.1, and the decode tool.

mod common;

use common::*;
use esp8266_bridge::host::decode::{decode_hex, Direction};
use esp8266_bridge::host::SimConfig;
use esp8266_bridge::protocol::Command;
use std::sync::atomic::Ordering;

#[test]
fn the_duet_api_subset_is_served() {
    let sim = start(SimConfig::default());
    let addr = sim.addr();

    let r = get(addr, "/rr_connect?password=reprap");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["err"], 0);

    let r = get(addr, "/rr_model?key=state&flags=d99fn");
    let v = r.json();
    assert_eq!(
        (v["key"].as_str(), v["flags"].as_str()),
        (Some("state"), Some("d99fn"))
    );
    assert_eq!(v["result"]["status"], "idle");
    assert!(v["result"]["upTime"].is_u64());
    let v = get(addr, "/rr_model?flags=d99fn").json();
    assert!(v["result"]["heat"]["heaters"][1]["current"].as_f64().unwrap() > 200.0);
    assert!(get(addr, "/rr_model?key=no.such.key").json()["result"].is_null());

    // Upload with a matching CRC, then with a wrong one.
    let body = pattern(100_000, 7);
    let crc = crc32(&body);
    let head = format!(
        "POST /rr_upload?name=0%3A%2Fgcodes%2Fpart%20one.gcode&crc32={crc:08x} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let r = raw(addr, &[head.as_bytes(), &body].concat()).unwrap();
    assert_eq!((r.status, r.json()["err"].as_i64()), (200, Some(0)));
    let head = format!(
        "POST /rr_upload?name=0:/gcodes/bad.gcode&crc32={:08x} HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        crc ^ 1
    );
    let r = raw(addr, format!("{head}hello").as_bytes()).unwrap();
    assert_eq!(r.json()["err"], 1);

    // Download what was uploaded; a missing file is a 404.
    let r = get(addr, "/rr_download?name=0:/gcodes/part%20one.gcode");
    assert_eq!(r.status, 200);
    assert_eq!(crc32(&r.body), crc);
    assert_eq!(get(addr, "/rr_download?name=0:/gcodes/none.g").status, 404);

    let v = get(addr, "/rr_filelist?dir=0:/gcodes").json();
    assert_eq!(v["dir"], "0:/gcodes");
    let files = v["files"].as_array().unwrap();
    let part = files
        .iter()
        .find(|f| f["name"] == "part one.gcode")
        .expect("uploaded file listed");
    assert_eq!(
        (part["type"].as_str(), part["size"].as_u64()),
        (Some("f"), Some(100_000))
    );
    assert!(files.iter().all(|f| f["name"] != "bad.gcode"));
    let v = get(addr, "/rr_filelist?dir=0:/").json();
    assert!(v["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["type"] == "d" && f["name"] == "sys"));

    let v = get(addr, "/rr_diag").json();
    assert_eq!(v["free_slots"], 7, "only the diag request's own connection: {v}");
    assert!(v["counters"]["accepted"].as_u64().unwrap() >= 10);
    for key in ["accepted", "rejected", "reaped", "peer_closed", "aborted"] {
        assert!(v["counters"][key].is_u64(), "{key}");
    }
    assert_eq!(v["slots"].as_array().unwrap().len(), 8);
    assert!(sim.board().stats.responses.load(Ordering::Relaxed) >= 10);
    sim.stop();
}

#[test]
fn bad_http_gets_400_and_the_server_keeps_serving() {
    let sim = start(SimConfig::default());
    let addr = sim.addr();
    for bad in [
        &b"GARBAGE\x00\x01 x\r\n\r\n"[..],
        b"GET /rr_download?name=%zz HTTP/1.1\r\n\r\n",
        b"POST /rr_upload?name=x HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
        b"POST /rr_upload?name=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /rr_upload HTTP/1.1\r\n\r\n",
        b"POST /rr_upload?crc32=0 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /rr_upload?name=x&crc32=xyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"GET /rr_filelist HTTP/1.1\r\n\r\n",
    ] {
        let r = raw(addr, bad).unwrap();
        assert!(
            matches!(r.status, 400 | 405 | 411),
            "{:?} -> {}",
            String::from_utf8_lossy(bad),
            r.status
        );
    }
    // A head that never ends is cut off at 16 KiB with a 431.
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 20_000));
    assert_eq!(raw(addr, &long).unwrap().status, 431);
    assert_eq!(get(addr, "/nothing/here").status, 404);
    // A client that connects and leaves without a request costs nothing lasting.
    drop(std::net::TcpStream::connect(addr).unwrap());
    assert_eq!(get(addr, "/rr_connect?password=").status, 200);
    assert!(sim.board().stats.bad_requests.load(Ordering::Relaxed) >= 7);
    sim.stop();
}

#[test]
fn the_listen_failure_is_reported() {
    // The port is taken by someone else: the bridge's listen fails, the board says so.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = SimConfig {
        listen: taken.local_addr().unwrap(),
        ..SimConfig::default()
    };
    let err = esp8266_bridge::host::Simulator::start(config)
        .err()
        .expect("cannot listen on a taken port");
    assert!(err.to_string().contains("Listen failed"), "{err}");
}

#[test]
fn decode_reads_both_directions_and_rejects_garbage() {
    let v = decode_hex("3e 06 03 00 0000 1400 00000000", None, None).unwrap();
    assert_eq!(v["direction"], "sam-to-bridge");
    assert_eq!(v["header"]["command"]["name"], "connGetStatus");
    assert_eq!(v["header"]["socket"], 3);
    assert_eq!(v["header"]["validation"], "ok");

    let status = "3e0400000000000014000000 020100ce 5000 b0c3 7f000001 1200 0008 0300 0000";
    let v = decode_hex(status, None, None).unwrap();
    assert_eq!(v["direction"], "bridge-to-sam");
    assert_eq!(v["data"]["interpreted_as"], "ConnStatusResponse");
    assert_eq!(v["data"]["state"], "connected");
    assert_eq!(v["data"]["remote_ip"], "127.0.0.1");

    let v = decode_hex("3e07000c0c00000000000000 00000000 00 00 5000 0400", None, None).unwrap();
    assert_eq!(v["header"]["command"]["name"], "networkListen");
    assert_eq!(v["header"]["flags"]["close_after_write"], false);

    // A data length over 2048 is reported with its response code.
    let v = decode_hex("3e05000101080000 00000000", Some(Direction::FromSam), None).unwrap();
    assert_eq!(v["header"]["validation"]["response"], -5);
    let v = decode_hex("3e01000000000000f5ffffff", Some(Direction::FromBridge), None).unwrap();
    assert_eq!(v["header"]["response"]["meaning"], "badParameter");
    let v = decode_hex(
        "3e01000000000000 0e000000 4c697374656e206661696c656400 0000",
        None,
        Some(Command::NetworkGetLastError),
    )
    .unwrap();
    assert_eq!(v["data"]["message"], "Listen failed");

    assert!(decode_hex("3e0", None, None).unwrap_err().contains("odd number"));
    assert!(decode_hex("3g", None, None)
        .unwrap_err()
        .contains("not a hex digit"));
    assert!(decode_hex("3e06", None, None).unwrap_err().contains("too short"));
    assert!(decode_hex("ff0600000000140000000000", None, None)
        .unwrap_err()
        .contains("format version"));
    assert!(decode_hex("3e0100000000000000000000", None, None)
        .unwrap_err()
        .contains("ambiguous"));
}
