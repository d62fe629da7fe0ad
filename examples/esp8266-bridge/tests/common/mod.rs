//! Helpers for the tests that run the simulator over kernel TCP on 127.0.0.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use esp8266_bridge::host::{SimConfig, Simulator};

/// Start a simulator on a free port of 127.0.0.1 (a few tries: another process
/// could take the port between the probe and the bind).
pub fn start(mut config: SimConfig) -> Simulator {
    let mut last = None;
    for _ in 0..5 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe");
        config.listen = probe.local_addr().unwrap();
        drop(probe);
        match Simulator::start(config.clone()) {
            Ok(sim) => return sim,
            Err(e) => last = Some(e),
        }
    }
    panic!("simulator did not start: {last:?}");
}

pub use netpool_testkit::http::Response;

/// A response body as JSON (fails the test if it is not).
pub trait Json {
    fn json(&self) -> serde_json::Value;
}

impl Json for Response {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Send raw bytes, read the whole response (the server closes after it).
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse(&buf)
}

/// A whole response as the simulator sends it: the body framed by `Content-Length`
/// (required; it never relies on the close alone).
pub fn parse(buf: &[u8]) -> std::io::Result<Response> {
    let response = netpool_testkit::http::parse_closed(buf)?;
    if response.content_length.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no Content-Length",
        ));
    }
    Ok(response)
}

pub fn get(addr: SocketAddr, target: &str) -> Response {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: duet\r\n\r\n").as_bytes(),
    )
    .expect("GET")
}

pub fn crc32(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data)
}

/// Deterministic bytes.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
