//! `embassy_http` over TAP: `embassy-http-tap` in a network namespace of its own (root,
//! iproute2, /dev/net/tun; missing, the test FAILS saying so), ordinary clients in it.
//!
//! - a burst as large as the backlog (its accepts are the sockets armed) is served;
//! - clients that connect and say nothing hold the workers until the 2 s request
//!   deadline (408); a client behind them waits in the backlog and is served;
//! - a request that is not GET is 405, one that is not HTTP is 400.
//!
//! `sudo -E cargo test -p netpool-examples --features tap --test embassy_http_tap -- --ignored`
#![cfg(feature = "tap")]

#[path = "../../pico-w-furnace/tests/netns/mod.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use netns::host::{num, Host};
use netns::Netns;
use netpool_examples::embassy_http::{BACKLOG, WORKERS};

const HOST_IP: &str = "10.79.0.1";
const DEVICE: &str = "10.79.0.2:80";

/// One request on a new connection; the status of the response (the server closes).
fn status(request: &'static [u8]) -> String {
    let addr: SocketAddr = DEVICE.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    String::from_utf8_lossy(response.get(9..12).unwrap_or(b"---")).into_owned()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: device\r\n\r\n";

#[test]
#[ignore = "needs root, iproute2, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn embassy_http_serves_a_burst_silent_clients_and_bad_requests_over_tap() {
    let _serial = netns::serial();
    let ns = Netns::create("ex-emb", HOST_IP);
    let mut command = ns.command(env!("CARGO_BIN_EXE_embassy-http-tap"));
    command.args(["--tap", &ns.tap, "--address", "10.79.0.2/24"]);
    let mut host = Host::start("embassy-http-tap", command, "serving on");
    ns.enter();

    let burst: Vec<_> = (0..BACKLOG).map(|_| thread::spawn(|| status(GET))).collect();
    for (i, b) in burst.into_iter().enumerate() {
        assert_eq!(b.join().unwrap(), "200", "burst client {i}");
    }

    let silent: Vec<_> = (0..WORKERS).map(|_| thread::spawn(|| status(b""))).collect();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(status(GET), "200", "the client behind the silent ones");
    for (i, s) in silent.into_iter().enumerate() {
        assert_eq!(s.join().unwrap(), "408", "silent client {i}");
    }

    assert_eq!(status(b"BREW /pot HTTP/1.1\r\n\r\n"), "405");
    assert_eq!(status(b"\x16\x03\x01\x02\x00\r\n\r\n"), "400");
    let report = host.report();
    assert_eq!(num(&report, "rejected"), 0, "nobody refused: {report:?}");
    host.assert_alive();
}
