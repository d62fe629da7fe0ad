//! A Duet Web Control-like load on the simulator, over kernel TCP on 127.0.0.1: the
//! incident's workload (a bridge that collapsed under a few browser tabs polling while
//! a file uploaded).
//!
//! - one 3 MiB upload with its CRC-32;
//! - seven pollers opening a connection per request (`rr_model`), half of them
//!   closing with RST (SO_LINGER 0), each poll retried up to 3 times as a browser does;
//! - one client that requests a 4 MiB download and never reads (small receive buffer).
//!
//! Asserted: the upload's CRC is accepted, every poll succeeds within its attempts, the
//! non-reader is reaped (stall grace 1.5 s here), and afterwards every slot is free
//! but the one serving `/rr_diag`. Every loop is bounded by count and time; nothing
//! asserts on durations. The summary is printed (`--nocapture` to see it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use esp8266_bridge::host::SimConfig;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

const UPLOAD: usize = 3 << 20;
const DOWNLOAD: usize = 4 << 20;
const POLLERS: usize = 7;
const POLLS_EACH: usize = 25;
const ATTEMPTS: usize = 3;

/// One poll as a browser makes it: a new connection, GET, read all, close (with RST
/// when `rst`).
fn poll_once(addr: SocketAddr, rst: bool) -> std::io::Result<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /rr_model?key=state&flags=d99fn HTTP/1.1\r\nHost: duet\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if rst {
        SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
    }
    drop(s);
    let r = parse(&buf)?;
    if r.status != 200 {
        return Err(std::io::Error::other(format!("status {}", r.status)));
    }
    serde_json::from_slice(&r.body).map_err(std::io::Error::other)
}

#[derive(Default)]
struct Tally {
    polls_ok: AtomicU64,
    polls_failed: AtomicU64,
    retries: AtomicU64,
}

#[test]
fn dwc_load_upload_pollers_and_a_non_reader() {
    let started = Instant::now();
    let big = pattern(DOWNLOAD, 3);
    let config = SimConfig {
        stall_grace: Duration::from_millis(1500),
        // Nine clients at once at the peak: the pool's 8 slots are the limit here.
        http_max_conns: 8,
        http_queue: 0,
        files: vec![("0:/gcodes/big.bin".into(), big)],
        ..SimConfig::default()
    };
    let sim = start(config);
    let addr = sim.addr();
    let tally = Arc::new(Tally::default());

    // The non-reader: asks for 4 MiB and never reads a byte.
    let non_reader = {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect_timeout(&addr.into(), Duration::from_secs(5)).unwrap();
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /rr_download?name=0:/gcodes/big.bin HTTP/1.1\r\n\r\n")
            .unwrap();
        s
    };

    // The upload.
    let upload = thread::spawn(move || {
        let body = pattern(UPLOAD, 11);
        let crc = crc32(&body);
        let head = format!(
            "POST /rr_upload?name=0:/gcodes/upload.gcode&crc32={crc:08x} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(40))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        for chunk in body.chunks(64 * 1024) {
            s.write_all(chunk).unwrap();
        }
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        (parse(&buf).unwrap().json(), crc)
    });

    // The upload and the non-reader hold their slots before the pollers start (a
    // browser tab starts polling after the page loaded, and a turned-away upload is
    // not retried by DWC): wait until the board has seen both, bounded.
    for _ in 0..1000 {
        if sim.board().stats.connections.load(Ordering::Relaxed) >= 2 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        sim.board().stats.connections.load(Ordering::Relaxed) >= 2,
        "upload or non-reader never accepted"
    );

    // The pollers.
    let pollers: Vec<_> = (0..POLLERS)
        .map(|p| {
            let tally = tally.clone();
            thread::spawn(move || {
                let rst = p % 2 == 0;
                for n in 0..POLLS_EACH {
                    let mut ok = false;
                    for attempt in 0..ATTEMPTS {
                        if attempt > 0 {
                            tally.retries.fetch_add(1, Ordering::Relaxed);
                            thread::sleep(Duration::from_millis(100 * attempt as u64));
                        }
                        if let Ok(v) = poll_once(addr, rst) {
                            assert_eq!(v["result"]["status"], "idle");
                            ok = true;
                            break;
                        }
                    }
                    let counter = if ok { &tally.polls_ok } else { &tally.polls_failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(60 + (p as u64 * 13 + n as u64 * 7) % 80));
                }
            })
        })
        .collect();

    let (reply, crc) = upload.join().expect("upload thread");
    for p in pollers {
        p.join().expect("poller thread");
    }

    // The non-reader must be reaped; /rr_diag says so (bounded wait).
    let mut diag = serde_json::Value::Null;
    for _ in 0..100 {
        diag = get(addr, "/rr_diag").json();
        let reaped = diag["counters"]["reaped"].as_u64().unwrap_or(0);
        if reaped >= 1 && diag["free_slots"] == 7 {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    drop(non_reader);

    let board = sim.board();
    let ok = tally.polls_ok.load(Ordering::Relaxed);
    let failed = tally.polls_failed.load(Ordering::Relaxed);
    println!(
        "load: upload {} KiB crc {crc:08x} -> {reply}; polls ok {ok} failed {failed} retries {}; \
         board: connections {} responses {} aborted-seen {} vanished {} link errors {}; \
         pool: {}; bridge: {}; SPI transactions {}; wall {:.1} s",
        UPLOAD >> 10,
        tally.retries.load(Ordering::Relaxed),
        board.stats.connections.load(Ordering::Relaxed),
        board.stats.responses.load(Ordering::Relaxed),
        board.stats.aborted_seen.load(Ordering::Relaxed),
        board.stats.vanished.load(Ordering::Relaxed),
        board.stats.link_errors.load(Ordering::Relaxed),
        diag["counters"],
        diag["bridge"],
        sim.transactions(),
        started.elapsed().as_secs_f64(),
    );

    assert_eq!(reply["err"], 0, "the upload's CRC was accepted");
    assert_eq!(board.stats.uploads_ok.load(Ordering::Relaxed), 1);
    let stored = board
        .files
        .lock()
        .unwrap()
        .get("0:/gcodes/upload.gcode")
        .map(|f| crc32(f));
    assert_eq!(stored, Some(crc), "the stored file is the uploaded one");
    assert_eq!(failed, 0, "every poll succeeded within {ATTEMPTS} attempts");
    assert_eq!(ok, (POLLERS * POLLS_EACH) as u64);
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
    assert_eq!(busy.len(), 1);
    assert_eq!(busy[0]["state"], "connected");
    sim.stop();
}
