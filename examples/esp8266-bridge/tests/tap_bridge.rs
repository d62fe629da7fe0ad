//! The ESP32-C3 bridge's network path on its real stack, on the host:
//! `bridge-tap-host` (smoltcp + netpool's `SmoltcpStack` + a `Pool` of 8 under the
//! bridge service loop, configured as the C3 image: 14 sockets of 2048 bytes, the
//! backend's defaults — closing sockets reclaimed on demand, listeners armed to the
//! pool's room — stall grace 10 s, the board's default HTTP cap and queue) on a TAP
//! device in a network namespace this test creates, with the simulated RepRapFirmware
//! board behind it. The clients run inside the namespace over the kernel's TCP.
//!
//! Phase 1 is the incident's verification scenario: one 3 MiB upload with its CRC-32
//! and seven pollers opening a connection per `rr_model` request every 250 ms, half
//! of them closing with RST (SO_LINGER 0), all eight starting at the same instant;
//! during the upload one poller asks for `M122` (`rr_gcode`) and reads its reply
//! (`rr_reply`). Every connection must be served at its first attempt: no
//! ConnectionRefused, no reset before a response, no retry — a refusal is a failure.
//!
//! Phase 2 adds hostile clients: one that asks for a 4 MiB download and never reads
//! (reaped by the stall grace) and one that connects and never sends (408 at the
//! board's request deadline), with five pollers beside them (eight connections, what
//! the module has), still every one served.
//!
//! Afterwards every slot but the one serving `/rr_diag` is free and the service loop
//! kept running (SPI transactions, no bad frames, no lost transfer but the reaped one).
//!
//! Needs root, iproute2 and /dev/net/tun, so it is `#[ignore]`d unless asked for with
//! `--ignored` (CI's "TAP tests" section does); asked for, it fails, saying what is
//! missing, when they are not there — never a silent pass:
//!
//! ```text
//! sudo -E cargo test -p esp8266-bridge --features tap-host --test tap_bridge -- --ignored --nocapture
//! ```
//!
//! `TAP_BRIDGE_EXTRA` adds arguments to `bridge-tap-host` for measurements.
//!
//! Three more tests, one fault phase each, each on a host of its own in a namespace of
//! its own (issue 23; run one alone by naming it: `-- --ignored halfopen`, `vanish`,
//! `loss`). Every request in them is one attempt, counted as served, refused, reset,
//! timed out or other:
//!
//! - `halfopen` (~40 s): half-open handshakes, raw SYNs from addresses of the TAP subnet
//!   that answer no ARP (`netns::halfopen`): 24 at once (3 × the 8 sockets the pool
//!   arms), then 20 per second for 10 s, while an ordinary client polls every 250 ms;
//!   at least 99.5 % of its polls are served at the first attempt in each window
//!   (before, burst, sustained, after).
//! - `vanish` (~45 s): 4 downloads of the 4 MiB file read 8 KiB and vanish (nft drops
//!   every packet of theirs both ways: no FIN, no RST) while the 7 pollers (half
//!   closing with RST) poll every 250 ms for 40 s: at least 99.5 % served at the first
//!   attempt.
//! - `loss` (~30 s): 5 % of the packets dropped each way on the TAP device (nft netdev
//!   ingress and egress hooks, `numgen random`: lost as on the air, see `netns::nft`),
//!   under the furnace test's burst load: 20 bursts of 6 parallel connections beside
//!   a poller every 250 ms; nothing refused, nothing reset, every
//!   request served (long client timeouts, so only a refusal or a reset can fail).
//!
//! `vanish` and `loss` need nftables (`nft`); missing, they FAIL saying so.
//! `TAP_CAPTURE=DIR` makes each fault phase write a packet capture `DIR/<phase>.pcap`
//! (tcpdump in the namespace). The tests of this file run one at a time
//! (`netns::serial`).
//!
//! ```text
//! sudo -E cargo test -p esp8266-bridge --features tap-host --test tap_bridge -- --ignored --nocapture halfopen
//! ```
//!
//! Every loop is bounded by count and time; nothing asserts on durations.

#[path = "../../pico-w-furnace/tests/netns/mod.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use netns::capture::Capture;
use netns::host::{num, Host};
use netns::poll::{self, Outcome, Pollers, Timeouts};
use netns::{halfopen, nft, Netns};
use netpool_testkit::http::parse_closed;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

const HOST_IP: &str = "10.78.0.1";
const DEVICE_IP: &str = "10.78.0.2";
const UPLOAD: usize = 3 << 20;
const DOWNLOAD: usize = 4 << 20;
const POLLERS: usize = 7;
const POLLS_EACH: usize = 40;
const HOSTILE_PHASE_POLLERS: usize = 5;
const POLL_PERIOD: Duration = Duration::from_millis(250);
const UPLOAD_NAME: &str = "0:/gcodes/upload.gcode";

/// `bridge-tap-host` in the namespace, once the simulated board listens.
fn start_host(ns: &Netns) -> Host {
    let mut command = ns.command(env!("CARGO_BIN_EXE_bridge-tap-host"));
    command
        .args(["--tap", &ns.tap, "--address", &format!("{DEVICE_IP}/24")])
        .args(["--file", &format!("0:/gcodes/big.bin={DOWNLOAD}:3")])
        .args(["--report-file", UPLOAD_NAME])
        .args(
            std::env::var("TAP_BRIDGE_EXTRA")
                .ok()
                .as_deref()
                .map(|a| a.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
    Host::start("bridge-tap-host", command, "the board is listening")
}

fn addr() -> SocketAddr {
    format!("{DEVICE_IP}:80").parse().unwrap()
}

/// Deterministic bytes (xorshift32; the binary's `--file` makes the same).
fn pattern(len: usize, seed: u32) -> Vec<u8> {
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

fn crc32(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data)
}

/// A connection at the first attempt: a refusal fails the test.
fn connect() -> TcpStream {
    TcpStream::connect_timeout(&addr(), Duration::from_secs(5)).expect("connected at the first attempt")
}

/// A GET on a [`connect`]ion.
fn get_json(target: &str) -> serde_json::Value {
    let mut s = connect();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: duet\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("response");
    let (status, body) = parse_closed(&buf)
        .map(|r| (r.status, r.body))
        .expect("HTTP response");
    assert_eq!(status, 200, "{target}");
    serde_json::from_slice(&body).expect("JSON")
}

/// One request as a browser makes it: a new connection, GET `target`, read all,
/// close (with RST when `rst`). Any failure — refused, reset, cut short, timed out,
/// not 200, not JSON — comes back as an error naming it.
fn request(target: &str, rst: bool) -> Result<serde_json::Value, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{target}: {what}: {e}");
    let mut s =
        TcpStream::connect_timeout(&addr(), Duration::from_secs(5)).map_err(|e| fail("connect", &e))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| fail("socket", &e))?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: duet\r\n\r\n").map_err(|e| fail("send", &e))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| fail(&format!("read after {} bytes", buf.len()), &e))?;
    if rst {
        SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| fail("linger", &e))?;
    }
    drop(s);
    let response = parse_closed(&buf).map_err(|e| fail("response", &e))?;
    if response.status != 200 {
        return Err(fail("status", &response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| fail("JSON", &e))
}

#[derive(Default)]
struct Tally {
    served: AtomicU64,
    /// Requests not served at their first attempt, with why.
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, r: Result<serde_json::Value, String>) -> Option<serde_json::Value> {
        match r {
            Ok(v) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            Err(e) => {
                self.failures.lock().unwrap().push(e);
                None
            }
        }
    }
}

const POLL_TARGET: &str = "/rr_model?key=state&flags=d99fn";

/// `count` pollers every `POLL_PERIOD` for `polls` rounds, half closing with RST,
/// released together by `start`. Poller 0 sends `M122` at its fifth round and reads
/// the reply with `rr_reply` in its later rounds, until it has it; returns that reply.
fn pollers(
    tally: &Arc<Tally>,
    count: usize,
    polls: usize,
    start: &Arc<Barrier>,
) -> Vec<thread::JoinHandle<String>> {
    (0..count)
        .map(|p| {
            let (tally, start) = (tally.clone(), start.clone());
            thread::spawn(move || {
                let rst = p % 2 == 0;
                let mut m122 = String::new();
                start.wait();
                let t0 = Instant::now();
                for n in 0..polls {
                    let target = match (p, n) {
                        (0, 4) => "/rr_gcode?gcode=M122",
                        (0, n) if n > 4 && m122.is_empty() => "/rr_reply",
                        _ => POLL_TARGET,
                    };
                    let reply = if target == "/rr_reply" {
                        // rr_reply answers plain text: read it as a string.
                        tally.record(reply_text(rst).map(serde_json::Value::String))
                    } else {
                        tally.record(request(target, rst))
                    };
                    match (target, reply) {
                        (POLL_TARGET, Some(v)) => assert_eq!(v["result"]["status"], "idle"),
                        ("/rr_reply", Some(serde_json::Value::String(text))) => m122 = text,
                        _ => {}
                    }
                    let next = t0 + POLL_PERIOD * (n as u32 + 1);
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                m122
            })
        })
        .collect()
}

/// `GET /rr_reply` on a new connection: the replies waiting, as text.
fn reply_text(rst: bool) -> Result<String, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("/rr_reply: {what}: {e}");
    let mut s =
        TcpStream::connect_timeout(&addr(), Duration::from_secs(5)).map_err(|e| fail("connect", &e))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| fail("socket", &e))?;
    s.write_all(b"GET /rr_reply HTTP/1.1\r\nHost: duet\r\n\r\n")
        .map_err(|e| fail("send", &e))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| fail(&format!("read after {} bytes", buf.len()), &e))?;
    if rst {
        SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| fail("linger", &e))?;
    }
    let response = parse_closed(&buf).map_err(|e| fail("response", &e))?;
    if response.status != 200 {
        return Err(fail("status", &response.status));
    }
    Ok(String::from_utf8_lossy(&response.body).into_owned())
}

#[test]
#[ignore = "needs root, iproute2, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn bridge_on_smoltcp_over_tap_serves_the_incident_load_at_the_first_attempt() {
    let _serial = netns::serial();
    let started = Instant::now();
    let ns = Netns::create("bridge", HOST_IP);
    let mut host = start_host(&ns);
    // From here on this thread, and every thread it starts, is inside the namespace.
    ns.enter();
    let start = host.report();
    let tally = Arc::new(Tally::default());

    // ---- Phase 1: the upload and seven pollers, released together.
    let go = Arc::new(Barrier::new(POLLERS + 1));
    let body = pattern(UPLOAD, 11);
    let crc = crc32(&body);
    let upload = {
        let go = go.clone();
        thread::spawn(move || {
            let head = format!(
                "POST /rr_upload?name={UPLOAD_NAME}&crc32={crc:08x} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            go.wait();
            let mut s = connect();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            for chunk in body.chunks(64 * 1024) {
                s.write_all(chunk).unwrap();
            }
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            let (status, reply) = parse_closed(&buf)
                .map(|r| (r.status, r.body))
                .expect("upload response");
            assert_eq!(status, 200);
            serde_json::from_slice::<serde_json::Value>(&reply).expect("upload reply JSON")
        })
    };
    let phase1 = pollers(&tally, POLLERS, POLLS_EACH, &go);
    let reply = upload.join().expect("upload thread");
    let m122 = phase1
        .into_iter()
        .map(|p| p.join().expect("poller thread"))
        .collect::<String>();
    let after_phase1 = host.report();

    // ---- Phase 2: hostile clients, with polls beside them.
    // The non-reader: asks for 4 MiB and never reads a byte.
    let non_reader = {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect_timeout(&addr().into(), Duration::from_secs(5))
            .expect("non-reader connected at the first attempt");
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /rr_download?name=0:/gcodes/big.bin HTTP/1.1\r\n\r\n")
            .unwrap();
        s
    };
    // A client that connects and never sends: the board's request deadline answers it.
    let mute = thread::spawn(|| {
        let mut s = connect();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("the board answers and closes");
        parse_closed(&buf).map(|r| r.status)
    });
    // The two hostile clients hold two of the 8 slots: 5 pollers beside them fill
    // the rest (a 9th connection would be one more than the module has).
    let go = Arc::new(Barrier::new(HOSTILE_PHASE_POLLERS));
    for p in pollers(&tally, HOSTILE_PHASE_POLLERS, POLLS_EACH / 2, &go) {
        p.join().expect("poller thread");
    }
    let mute_status = mute.join().expect("mute client thread");

    // The non-reader must be reaped (stall grace 10 s); /rr_diag says so (bounded wait).
    let mut diag = serde_json::Value::Null;
    for _ in 0..120 {
        diag = get_json("/rr_diag");
        let reaped = diag["counters"]["reaped"].as_u64().unwrap_or(0);
        if reaped >= 1 && diag["free_slots"] == 7 {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    drop(non_reader);
    let end = host.report();

    let served = tally.served.load(Ordering::Relaxed);
    let failures = tally.failures.lock().unwrap().clone();
    let requests = (POLLERS * POLLS_EACH + HOSTILE_PHASE_POLLERS * (POLLS_EACH / 2)) as u64;
    println!(
        "tap load: upload {} KiB crc {crc:08x} -> {reply}; requests served at the first attempt {served} of {requests} \
         (failed: {failures:?}); M122 reply {} bytes; board {end:?}; pool {}; bridge {}; wall {:.1} s",
        UPLOAD >> 10,
        m122.len(),
        diag["counters"],
        diag["bridge"],
        started.elapsed().as_secs_f64(),
    );
    println!(
        "stack: passes with a listener short of sockets and none listening {} of {}; reclaimed {} \
         (time-wait {}, last-ack {}, closing {}, fin-wait {}); most sockets closing at once {} of 14",
        num(&end, "unarmed_passes"),
        num(&end, "passes"),
        num(&end, "reclaimed"),
        num(&end, "reclaimed_time_wait"),
        num(&end, "reclaimed_last_ack"),
        num(&end, "reclaimed_closing"),
        num(&end, "reclaimed_fin_wait"),
        num(&end, "max_sockets_closing"),
    );

    // A refusal is a failure: every request served at its first attempt.
    assert!(
        failures.is_empty(),
        "not served at the first attempt: {failures:?}"
    );
    assert_eq!(served, requests);
    assert_eq!(reply["err"], 0, "the upload's CRC was accepted: {reply}");
    assert!(
        num(&after_phase1, "uploads_ok") == 1,
        "the upload finished in phase 1: {after_phase1:?}"
    );
    assert!(
        m122.contains("=== Diagnostics ===") && m122.contains("=== WiFi module ==="),
        "M122 during the upload came back whole: {m122:?}"
    );
    assert_eq!(
        mute_status.expect("an HTTP response"),
        408,
        "a client that never sends gets 408 at the board's request deadline"
    );
    assert_eq!(num(&end, "uploads_ok"), 1, "{end:?}");
    assert_eq!(num(&end, "uploads_bad_crc"), 0, "{end:?}");
    assert_eq!(
        end["file_crc32"],
        format!("{crc:08x}"),
        "the stored file is the uploaded one"
    );
    assert!(
        diag["counters"]["reaped"].as_u64().unwrap() >= 1,
        "the non-reader was reaped: {diag}"
    );
    assert_eq!(
        diag["free_slots"], 7,
        "every slot free but /rr_diag's own: {diag}"
    );
    let busy: Vec<_> = diag["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] != "free")
        .collect();
    assert_eq!(busy.len(), 1, "{diag}");
    assert_eq!(busy[0]["state"], "connected");
    // The service loop kept going, with no bad frames on the SPI link.
    assert!(num(&end, "transactions") > num(&start, "transactions"));
    assert!(num(&end, "passes") > num(&start, "passes"));
    assert_eq!(num(&end, "bad_format_version"), 0, "{end:?}");
    // Connections that ended behind the board's back (the pool's counters): the
    // reaped one only, none closed idle.
    assert_eq!(diag["counters"]["idle_closed"], 0, "{diag}");
    println!(
        "service loop: {} passes, longest gap between two {} ms",
        num(&end, "passes"),
        num(&end, "max_pass_gap_ms")
    );
}

// ------------------------------------------------------------------ fault phases

/// The sockets the bridge's listener keeps armed: the pool's room (a Pool of 8).
const ARMED: usize = 8;
/// The pollers' request.
const POLL_REQUEST: &str = "GET /rr_model?key=state&flags=d99fn HTTP/1.1\r\nHost: duet\r\n\r\n";

fn poll_once(rst: bool, timeouts: Timeouts) -> Outcome {
    poll::get(addr(), POLL_REQUEST, timeouts, rst)
}

fn device_v4() -> std::net::SocketAddrV4 {
    format!("{DEVICE_IP}:80").parse().unwrap()
}

/// The pool's counters (`/rr_diag`), or why not.
fn diag_counters() -> String {
    match std::panic::catch_unwind(|| get_json("/rr_diag")) {
        Ok(d) => format!("free_slots {} counters {}", d["free_slots"], d["counters"]),
        Err(_) => "(no /rr_diag)".into(),
    }
}

#[test]
#[ignore = "needs root, iproute2, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn bridge_tap_halfopen_handshakes_lock_no_client_out() {
    let _serial = netns::serial();
    let ns = Netns::create("br-ho", HOST_IP);
    let mut host = start_host(&ns);
    ns.enter();
    let _capture = Capture::start(&ns, "bridge-halfopen");
    let started = Instant::now();
    let result = halfopen::run(&ns, device_v4(), ARMED, || poll_once(false, Timeouts::ORDINARY));
    let end = host.report();
    println!(
        "bridge-tap-host (smoltcp, SmoltcpStack, Pool of {ARMED}): {result}\n  pool after: {}\n  \
         stack: unarmed passes {} of {}; phase {:.0} s",
        diag_counters(),
        num(&end, "unarmed_passes"),
        num(&end, "passes"),
        started.elapsed().as_secs_f64()
    );
    host.assert_alive();
    result.assert_served("bridge-tap-host");
}

/// Downloads that vanish at once.
const VANISHING: usize = 4;
/// Bytes each reads before it vanishes.
const VANISH_AFTER: usize = 8 << 10;
/// Rounds of the 7 pollers in the vanish phase: 40 s at 250 ms.
const VANISH_POLLS: usize = 160;

#[test]
#[ignore = "needs root, iproute2, nftables, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn bridge_tap_vanishing_downloads_lock_no_poller_out() {
    let _serial = netns::serial();
    let ns = Netns::create("br-van", HOST_IP);
    nft::require(&ns);
    let mut host = start_host(&ns);
    ns.enter();
    let _capture = Capture::start(&ns, "bridge-vanish");
    nft::start_vanish(&ns);
    let started = Instant::now();
    let tally = Arc::new(poll::Tally::default());
    let pollers = Pollers::start(POLLERS, POLL_PERIOD, VANISH_POLLS, &tally, |p| {
        poll_once(p % 2 == 0, Timeouts::ORDINARY)
    });
    // Between two rounds of the pollers (they start together).
    thread::sleep(POLL_PERIOD * 2 + POLL_PERIOD / 2);
    let mut vanished = Vec::new();
    let mut download_attempts = 0;
    while vanished.len() < VANISHING && download_attempts < 5 * VANISHING {
        // Setting up a download is not what is measured: a refused one is tried again
        // (bounded), after the pollers' next round.
        download_attempts += 1;
        let mut s = match TcpStream::connect_timeout(&addr(), Duration::from_secs(5)) {
            Ok(s) => s,
            Err(e) => {
                println!("download {}: connect: {e}; again", vanished.len());
                thread::sleep(POLL_PERIOD);
                continue;
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /rr_download?name=0:/gcodes/big.bin HTTP/1.1\r\nHost: duet\r\n\r\n")
            .unwrap();
        let mut head = vec![0; VANISH_AFTER];
        if let Err(e) = s.read_exact(&mut head) {
            println!("download {}: read: {e}; again", vanished.len());
            continue;
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "the download's response");
        let port = s.local_addr().unwrap().port();
        nft::vanish(&ns, DEVICE_IP.parse().unwrap(), port);
        vanished.push(s);
    }
    assert_eq!(vanished.len(), VANISHING, "the downloads started");
    let vanished_at = started.elapsed();
    let made = pollers.join();
    let polls = tally.take();
    let end = host.report();
    println!(
        "bridge-tap-host: {VANISHING} downloads read {} KiB and vanished at {:.1} s; {POLLERS} pollers, \
         {made} polls: {polls}\n  failures (examples): {:?}\n  pool after: {}\n  stack: unarmed passes {} of {}; \
         waited out the accept queue {}; phase {:.0} s",
        VANISH_AFTER >> 10,
        vanished_at.as_secs_f64(),
        polls.failures,
        diag_counters(),
        num(&end, "unarmed_passes"),
        num(&end, "passes"),
        num(&end, "accept_queue_expired"),
        started.elapsed().as_secs_f64()
    );
    drop(vanished);
    host.assert_alive();
    assert!(
        polls.at_least(995),
        "with {VANISHING} downloads vanished mid-response, fewer than 99.5 % of the pollers' \
         requests served at the first attempt: {polls}"
    );
}

/// Packets dropped each way on the TAP device in the loss phase, in percent.
const LOSS_PERCENT: u32 = 5;
/// Bursts of the loss phase, and connections in each (a browser's six per host).
const LOSS_BURSTS: usize = 20;
const LOSS_BURST: usize = 6;

#[test]
#[ignore = "needs root, iproute2, nftables, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn bridge_tap_loss_resets_nothing() {
    let _serial = netns::serial();
    let ns = Netns::create("br-loss", HOST_IP);
    nft::require(&ns);
    let mut host = start_host(&ns);
    ns.enter();
    let _capture = Capture::start(&ns, "bridge-loss");
    let started = Instant::now();
    nft::start_loss(&ns, LOSS_PERCENT);
    let (bursts, polls) = poll::bursts_with_a_poller(
        LOSS_BURSTS,
        LOSS_BURST,
        POLL_PERIOD,
        400,
        |_, _| poll_once(false, Timeouts::LOSSY),
        || poll_once(false, Timeouts::LOSSY),
    );
    let (dropped_in, dropped_out) = nft::loss_counters(&ns);
    nft::stop_loss(&ns);
    let end = host.report();
    let mut all = bursts.clone();
    all.merge(&polls);
    println!(
        "bridge-tap-host under {LOSS_PERCENT} % loss each way ({dropped_in} frames lost from the device, \
         {dropped_out} to it): {LOSS_BURSTS} bursts of {LOSS_BURST}: {bursts}; poller: {polls}\n  \
         failures: {:?}\n  pool after: {}\n  stack: reclaimed {}; phase {:.0} s",
        all.failures,
        diag_counters(),
        num(&end, "reclaimed"),
        started.elapsed().as_secs_f64()
    );
    host.assert_alive();
    assert!(dropped_in > 0 && dropped_out > 0, "the loss rules took frames");
    assert_eq!(all.refused, 0, "refused under loss: {all}");
    assert_eq!(all.reset, 0, "reset under loss: {:?}", all.failures);
    assert_eq!(
        all.answered(),
        all.total(),
        "every request served under loss (a SYN retransmission allowed): {:?}",
        all.failures
    );
}
