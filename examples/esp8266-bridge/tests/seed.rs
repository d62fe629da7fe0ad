//! The incident's verification scenario on `bridge-sim` at its defaults, over kernel
//! TCP on 127.0.0.1: seven Duet Web Control clients polling and one uploading, all
//! starting together, with diagnostics requested during the upload.
//!
//! - 7 pollers: one new connection per `rr_model` poll, every 250 ms on a fixed
//!   schedule, the even ones closing with RST (`SO_LINGER 0`); a browser retries a
//!   failed poll, up to 3 attempts;
//! - 1 upload of 1 MiB (with its CRC-32), started with the first polls and paced like
//!   a browser's upload over WiFi so that it lasts through most of them: 8
//!   connections at once, every slot of the bridge's pool;
//! - poller 0 is also the client whose user asks for diagnostics: before each of its
//!   polls while the upload is on its way (the first as soon as the upload's head is
//!   sent) it requests `/rr_diag` (the board's `diagnostics` over SPI, RepRapFirmware's
//!   M122 path), one connection after the other, so there are never more than 8.
//!
//! Asserted: every poll and every diagnostics request is served (200, the right JSON)
//! at its first attempt — no refusal, no reset or close before a response, no 503
//! from the board's queue; no poll lost; the upload's CRC accepted and the file read
//! back equal to what was sent; a diagnostics report taken during the upload shows
//! the upload's connection. Every loop is bounded in count and time; nothing asserts
//! on durations. The summary is printed (`--nocapture` to see it).
//!
//! ```sh
//! cargo test -p esp8266-bridge --test seed -- --nocapture
//! ```

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use esp8266_bridge::host::SimConfig;
use socket2::SockRef;

const POLLERS: usize = 7;
const POLLS_EACH: usize = 16;
const INTERVAL: Duration = Duration::from_millis(250);
const ATTEMPTS: usize = 3;
const UPLOAD: usize = 1 << 20;
/// The upload is sent 16 KiB every 50 ms (≈ 320 KiB/s, a browser's upload over
/// WiFi), so that it spans most of the polls: unpaced, the simulator takes it in a
/// fraction of the first poll interval.
const UPLOAD_CHUNK: usize = 16 << 10;
const UPLOAD_PACE: Duration = Duration::from_millis(50);
const UPLOAD_NAME: &str = "0:/gcodes/seed.gcode";

/// How one request went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A whole 200 response.
    Served,
    /// The connect failed (refused, or timed out).
    Refused(ErrorKind),
    /// The connection was reset before a whole response.
    Reset,
    /// The server closed before a whole response.
    ClosedEarly,
    /// A whole response, not 200 (503: waited in the board's queue too long).
    Status(u16),
    /// A response that did not parse, or another error.
    Other(String),
}

/// One request as a browser makes it: a new connection, the request, read to the
/// server's close, close (with RST when `rst`). The body if served.
fn request(addr: SocketAddr, target: &str, rst: bool) -> (Outcome, Option<Vec<u8>>) {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return (Outcome::Refused(e.kind()), None),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(20)));
    let raw = format!("GET {target} HTTP/1.1\r\nHost: duet\r\n\r\n");
    if let Err(e) = s.write_all(raw.as_bytes()) {
        return (classify(e.kind()), None);
    }
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    if rst {
        let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    drop(s);
    match (read, parse(&buf)) {
        (_, Ok(r)) if r.status == 200 => (Outcome::Served, Some(r.body)),
        (_, Ok(r)) => (Outcome::Status(r.status), None),
        (Err(e), Err(_)) => (classify(e.kind()), None),
        (Ok(_), Err(_)) if buf.is_empty() => (Outcome::ClosedEarly, None),
        (Ok(_), Err(e)) => (Outcome::Other(format!("{e} after {} bytes", buf.len())), None),
    }
}

fn classify(kind: ErrorKind) -> Outcome {
    match kind {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => Outcome::Reset,
        k => Outcome::Other(format!("{k:?}")),
    }
}

/// What one poller saw.
#[derive(Default)]
struct PollerLog {
    /// Outcome of each poll's first attempt.
    first: Vec<Outcome>,
    /// Polls served within `ATTEMPTS`.
    served: usize,
    /// Time from connect to the whole response of each served first attempt.
    latency: Vec<Duration>,
    /// Outcome of each diagnostics request (first attempt) and its report.
    diags: Vec<(Outcome, Option<serde_json::Value>)>,
}

#[test]
fn seven_pollers_and_an_upload_are_all_served_at_the_first_attempt() {
    let started = Instant::now();
    // The defaults under test: what `bridge-sim` runs with no flags. For
    // measurements, `SEED_HTTP=MAX,QUEUE` runs the same load with other values (e.g.
    // `SEED_HTTP=4,2`, the defaults before the queue took every socket; it fails).
    let mut config = SimConfig::default();
    if let Ok(v) = std::env::var("SEED_HTTP") {
        let (m, q) = v.split_once(',').expect("SEED_HTTP=MAX,QUEUE");
        config.http_max_conns = m.trim().parse().expect("SEED_HTTP: MAX");
        config.http_queue = q.trim().parse().expect("SEED_HTTP: QUEUE");
    }
    // One setting that is not the default: the board gives up on an SPI transfer after
    // 2 s instead of 100 ms. On a busy machine the bridge thread can be descheduled
    // for longer than 100 ms; the board then loses a transfer (a read, a write, a
    // close) and the connection's exchange goes wrong. That is a wall-clock limit,
    // and not what this test is about (which connections are admitted, and kept).
    config.spi_timeout = Duration::from_secs(2);
    let (max_conns, queue) = (config.http_max_conns, config.http_queue);
    let sim = start(config);
    let addr = sim.addr();
    let go = Arc::new(Barrier::new(POLLERS + 1));
    let upload_sent = Arc::new(AtomicBool::new(false));
    let upload_done = Arc::new(AtomicBool::new(false));
    let upload_local = Arc::new(Mutex::new(None::<SocketAddr>));

    let body = pattern(UPLOAD, 29);
    let crc = crc32(&body);
    let upload = {
        let (go, sent, done, local) = (
            go.clone(),
            upload_sent.clone(),
            upload_done.clone(),
            upload_local.clone(),
        );
        let body = body.clone();
        thread::spawn(move || -> (Result<serde_json::Value, String>, Duration) {
            let head = format!(
                "POST /rr_upload?name={UPLOAD_NAME}&crc32={crc:08x} HTTP/1.1\r\nHost: duet\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            go.wait();
            let t0 = Instant::now();
            let result = (|| {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .map_err(|e| format!("connect: {e}"))?;
                *local.lock().unwrap() = s.local_addr().ok();
                s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(40))).unwrap();
                s.write_all(head.as_bytes()).map_err(|e| format!("head: {e}"))?;
                sent.store(true, Ordering::Relaxed);
                for chunk in body.chunks(UPLOAD_CHUNK) {
                    s.write_all(chunk).map_err(|e| format!("body: {e}"))?;
                    thread::sleep(UPLOAD_PACE);
                }
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).map_err(|e| format!("response: {e}"))?;
                let r = parse(&buf).map_err(|e| format!("response: {e}"))?;
                Ok(r.json())
            })();
            sent.store(true, Ordering::Relaxed);
            done.store(true, Ordering::Relaxed);
            (result, t0.elapsed())
        })
    };

    let pollers: Vec<_> = (0..POLLERS)
        .map(|p| {
            let go = go.clone();
            let (sent, done) = (upload_sent.clone(), upload_done.clone());
            thread::spawn(move || {
                let rst = p % 2 == 0;
                let mut log = PollerLog::default();
                go.wait();
                let t0 = Instant::now();
                for n in 0..POLLS_EACH {
                    // The diagnostics client: M122 while the upload is on its way
                    // (the first as soon as its head is sent), then its poll.
                    if p == 0 && !done.load(Ordering::Relaxed) {
                        for _ in 0..500 {
                            if sent.load(Ordering::Relaxed) {
                                break;
                            }
                            thread::sleep(Duration::from_millis(10));
                        }
                        let (outcome, body) = request(addr, "/rr_diag", rst);
                        let report = body.and_then(|b| serde_json::from_slice(&b).ok());
                        log.diags.push((outcome, report));
                    }
                    // A fixed schedule, as DWC's timer: poll n at n × 250 ms (or at
                    // once, if the previous one ran late).
                    let due = t0 + INTERVAL * n as u32;
                    thread::sleep(due.saturating_duration_since(Instant::now()));
                    for attempt in 0..ATTEMPTS {
                        let t = Instant::now();
                        let (outcome, body) = request(addr, "/rr_model?key=state&flags=d99fn", rst);
                        let outcome = match (outcome, body) {
                            (Outcome::Served, Some(b)) => {
                                match serde_json::from_slice::<serde_json::Value>(&b) {
                                    Ok(v) if v["result"]["status"] == "idle" => Outcome::Served,
                                    _ => {
                                        Outcome::Other(format!("wrong body {}", String::from_utf8_lossy(&b)))
                                    }
                                }
                            }
                            (o, _) => o,
                        };
                        if attempt == 0 {
                            if outcome == Outcome::Served {
                                log.latency.push(t.elapsed());
                            }
                            log.first.push(outcome.clone());
                        }
                        if outcome == Outcome::Served {
                            log.served += 1;
                            break;
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                }
                log
            })
        })
        .collect();

    let (upload, upload_took) = upload.join().expect("upload thread");
    let logs: Vec<PollerLog> = pollers
        .into_iter()
        .map(|p| p.join().expect("poller thread"))
        .collect();

    // Read the file back (bounded attempts: this is not part of the load).
    let mut stored = None;
    for _ in 0..3 {
        if let (Outcome::Served, Some(b)) = request(addr, &format!("/rr_download?name={UPLOAD_NAME}"), false)
        {
            stored = Some(b);
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let diag = get(addr, "/rr_diag").json();

    let first: Vec<&Outcome> = logs.iter().flat_map(|l| &l.first).collect();
    let first_served = first.iter().filter(|o| ***o == Outcome::Served).count();
    let failures: Vec<String> = logs
        .iter()
        .enumerate()
        .flat_map(|(p, l)| {
            l.first
                .iter()
                .enumerate()
                .filter(|(_, o)| **o != Outcome::Served)
                .map(move |(n, o)| format!("poller {p} poll {n}: {o:?}"))
        })
        .collect();
    let served: usize = logs.iter().map(|l| l.served).sum();
    let diags = &logs[0].diags;
    let mut latency: Vec<Duration> = logs.iter().flat_map(|l| l.latency.iter().copied()).collect();
    latency.sort();
    let pct = |q: usize| {
        latency
            .get((latency.len() * q / 100).min(latency.len().saturating_sub(1)))
            .copied()
    };
    let board = sim.board();
    println!(
        "seed: defaults HTTP {max_conns} served + {queue} waiting; polls {first_served}/{} served at the first \
         attempt, {served} within {ATTEMPTS}; poll latency median {:?} p95 {:?} max {:?}; diagnostics {} \
         ({} served); upload {} KiB in {upload_took:?} -> {:?}; board: connections {} responses {} busy(503) {} vanished {} \
         aborted-seen {} SPI link errors {}; \
         pool: {}; SPI transactions {}; wall {:.1} s",
        first.len(),
        pct(50),
        pct(95),
        latency.last(),
        diags.len(),
        diags.iter().filter(|(o, _)| *o == Outcome::Served).count(),
        UPLOAD >> 10,
        upload,
        board.stats.connections.load(Ordering::Relaxed),
        board.stats.responses.load(Ordering::Relaxed),
        board.stats.busy.load(Ordering::Relaxed),
        board.stats.vanished.load(Ordering::Relaxed),
        board.stats.aborted_seen.load(Ordering::Relaxed),
        board.stats.link_errors.load(Ordering::Relaxed),
        diag["counters"],
        sim.transactions(),
        started.elapsed().as_secs_f64(),
    );
    for f in &failures {
        println!("  {f}");
    }

    // The upload: accepted, and the file on the card is the one sent.
    let reply = upload.unwrap_or_else(|e| panic!("the upload failed: {e}"));
    assert_eq!(reply["err"], 0, "the upload's CRC was accepted: {reply}");
    let stored = stored.expect("the uploaded file reads back");
    assert!(
        stored == body,
        "the file read back ({} bytes) is the one uploaded",
        stored.len()
    );
    // Every poll served at its first attempt, none lost.
    assert_eq!(first.len(), POLLERS * POLLS_EACH, "every poll was made");
    assert!(
        failures.is_empty(),
        "polls not served at the first attempt: {failures:?}"
    );
    assert_eq!(served, POLLERS * POLLS_EACH, "no poll lost");
    // Diagnostics during the upload: served, and the report shows the upload held.
    assert!(!diags.is_empty(), "diagnostics were requested during the upload");
    for (i, (o, _)) in diags.iter().enumerate() {
        assert_eq!(*o, Outcome::Served, "diagnostics request {i}");
    }
    let upload_remote = upload_local.lock().unwrap().map(|a| a.to_string());
    assert!(upload_remote.is_some(), "the upload connected");
    let seen = diags.iter().filter_map(|(_, r)| r.as_ref()).any(|r| {
        r["slots"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["remote"].as_str() == upload_remote.as_deref()))
    });
    assert!(
        seen,
        "a diagnostics report taken during the upload shows its connection"
    );
    // The board turned nobody away, and the pool reset nobody.
    assert_eq!(
        board.stats.busy.load(Ordering::Relaxed),
        0,
        "no 503 from the board's queue"
    );
    assert_eq!(
        diag["counters"]["rejected"], 0,
        "the pool rejected nobody: {diag}"
    );
    sim.stop();
}
