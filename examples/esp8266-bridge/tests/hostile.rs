//! Hostile and sloppy clients against the simulator (the bridge on OS sockets and
//! the simulated board behind it), over kernel TCP on 127.0.0.1.
//!
//! One test per case: idle and trickling connections (4 and 20) against a client
//! that wants a 200, request-head and body deadlines, bare LF, framing (conflicting
//! `Content-Length`, missing length, a body cut short, too large, 405 with `Allow`,
//! `HEAD`), file names outside the card, a full card, eight parallel connections
//! (and a ninth reset), and flag validation. Every loop is bounded in count and
//! time; the only time limits asserted are the configured deadlines plus a generous
//! margin, which is the behaviour under test.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use common::{start, Json, Response};
use esp8266_bridge::host::sam::LINGER;
use esp8266_bridge::host::{SimConfig, Simulator};
use netpool_testkit::http;

/// Margin on top of a configured deadline: scheduling on a busy 2-core machine, the
/// board's polling, the client's retry interval.
const MARGIN: Duration = Duration::from_secs(5);

/// Short deadlines, so the cases that wait for one stay short.
fn quick() -> SimConfig {
    SimConfig {
        request_deadline: Duration::from_secs(1),
        body_stall: Duration::from_secs(1),
        ..SimConfig::default()
    }
}

/// Read one response (bounded: head, then its `Content-Length` body unless
/// `head_only`). `None` if the connection ended (reset, EOF) or the time ran out
/// before a whole response; a malformed response fails the test.
fn read_response(s: &mut TcpStream, timeout: Duration, head_only: bool) -> Option<Response> {
    http::read_response_or_end(s, timeout, head_only).unwrap_or_else(|e| panic!("{e}"))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Send `raw` and read the response (bounded).
fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<Response> {
    let mut s = connect(addr);
    let _ = s.write_all(raw);
    read_response(&mut s, Duration::from_secs(20), false)
}

fn status(addr: SocketAddr, raw: &[u8]) -> Option<u16> {
    exchange(addr, raw).map(|r| r.status)
}

/// A normal client: GET until a 200 (new connection each try, 100 ms apart), at
/// most until `limit`. How long it took, or `None`.
fn normal_client(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = s.write_all(b"GET /rr_model?key=state HTTP/1.1\r\nHost: duet\r\n\r\n");
            let left = limit.saturating_sub(t0.elapsed());
            if read_response(&mut s, left, false).is_some_and(|r| r.status == 200) {
                return Some(t0.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `n` attackers: idle connections, or ones trickling a request head 1 byte every
/// 200 ms (for up to 60 s; they stop when the server closes on them). Then a normal
/// client must get a 200 within the request deadline (+ the linger after a 408 and
/// the margin), counted from when the attack started.
fn attack(n: usize, trickle: bool) {
    let config = SimConfig::default();
    let deadline = config.request_deadline;
    let sim = start(config);
    let addr = sim.addr();
    assert_eq!(common::get(addr, "/rr_connect?password=").status, 200);
    let t0 = Instant::now();
    let attackers: Vec<_> = (0..n)
        .map(|_| {
            thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
                    return;
                };
                if !trickle {
                    // Idle: hold the connection until the server lets go (bounded).
                    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                    let _ = s.read(&mut [0u8; 512]);
                    return;
                }
                let line = b"GET /rr_model?key=state HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                for &b in line.iter().take(300) {
                    if s.write_all(&[b]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    // The attackers are in before the client starts.
    thread::sleep(Duration::from_millis(500));
    let limit = deadline + LINGER + MARGIN;
    let took = normal_client(addr, limit.saturating_sub(t0.elapsed()));
    assert!(
        took.is_some(),
        "{n} {} connections kept a client from a 200 for over {limit:?}",
        if trickle { "trickling" } else { "idle" }
    );
    let timed_out = sim.board().stats.timed_out.load(Ordering::Relaxed);
    assert!(timed_out >= 1, "no connection was answered 408");
    drop(sim);
    for a in attackers {
        let _ = a.join();
    }
}

#[test]
fn four_idle_connections_lock_nobody_out() {
    attack(4, false);
}

#[test]
fn twenty_idle_connections_lock_nobody_out() {
    attack(20, false);
}

#[test]
fn four_trickling_connections_lock_nobody_out() {
    attack(4, true);
}

#[test]
fn twenty_trickling_connections_lock_nobody_out() {
    attack(20, true);
}

/// Send `raw`, then nothing: the answer must come within the request deadline + margin.
fn answered_by_the_deadline(sim: &Simulator, raw: &[u8], want: &[u16]) {
    let mut s = connect(sim.addr());
    s.write_all(raw).unwrap();
    let r = read_response(&mut s, Duration::from_secs(1) + LINGER + MARGIN, false);
    let got = r.as_ref().map(|r| r.status);
    assert!(
        got.is_some_and(|g| want.contains(&g)),
        "{:?}: got {got:?}, want one of {want:?}",
        raw.escape_ascii().to_string()
    );
}

#[test]
fn incomplete_heads_get_408_by_the_deadline() {
    let sim = start(quick());
    answered_by_the_deadline(&sim, b"", &[408]);
    answered_by_the_deadline(&sim, b"GET /rr_mod", &[408]);
    answered_by_the_deadline(&sim, b"GET /rr_model HTTP/1.1\r\nHost: du", &[408]);
    // Garbage without a line end, and an HTTP/0.9-style line: never a valid head.
    answered_by_the_deadline(&sim, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &[400, 408]);
    answered_by_the_deadline(&sim, b"GET /\r\n", &[400, 408]);
    assert!(sim.board().stats.timed_out.load(Ordering::Relaxed) >= 3);
}

#[test]
fn bare_lf_requests_are_answered() {
    let sim = start(quick());
    let r = exchange(sim.addr(), b"GET /rr_connect?password= HTTP/1.1\nHost: duet\n\n").expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["err"], 0);
    // Mixed endings too.
    let r = exchange(
        sim.addr(),
        b"GET /rr_model?key=state HTTP/1.1\r\nHost: duet\n\r\n",
    )
    .expect("a response");
    assert_eq!(r.status, 200);
}

#[test]
fn a_stalled_upload_body_gets_408() {
    let sim = start(quick());
    let mut s = connect(sim.addr());
    s.write_all(b"POST /rr_upload?name=0:/gcodes/stall.g HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    s.write_all(&[b'G'; 100]).unwrap();
    let r = read_response(&mut s, Duration::from_secs(1) + LINGER + MARGIN, false).expect("a response");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (408, Some("request body stalled"))
    );
    assert!(!sim
        .board()
        .files
        .lock()
        .unwrap()
        .contains_key("0:/gcodes/stall.g"));
}

#[test]
fn a_trickled_upload_body_gets_408() {
    // Never stalled, but far below the minimum rate: 1 byte every 100 ms.
    let sim = start(quick());
    let mut s = connect(sim.addr());
    s.write_all(b"POST /rr_upload?name=0:/gcodes/slow.g HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        for _ in 0..200 {
            if w.write_all(b"G").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let r = read_response(&mut s, Duration::from_secs(1) + LINGER + MARGIN, false).expect("a response");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (408, Some("request body too slow"))
    );
    drop(s);
    let _ = writer.join();
}

#[test]
fn conflicting_content_lengths_get_400() {
    let sim = start(quick());
    let r = exchange(
        sim.addr(),
        b"POST /rr_upload?name=0:/a.g HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(!sim.board().files.lock().unwrap().contains_key("0:/a.g"));
    // The same length twice is one length.
    let r = exchange(
        sim.addr(),
        b"POST /rr_upload?name=0:/b.g HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    )
    .unwrap();
    assert_eq!((r.status, r.json()["err"].as_i64()), (200, Some(0)));
}

#[test]
fn an_upload_without_content_length_gets_411() {
    let sim = start(quick());
    assert_eq!(
        status(
            sim.addr(),
            b"POST /rr_upload?name=0:/gcodes/x.g HTTP/1.1\r\nHost: duet\r\n\r\nG28\n"
        ),
        Some(411)
    );
    assert_eq!(
        status(
            sim.addr(),
            b"POST /rr_upload?name=0:/gcodes/x.g HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nG28\n\r\n0\r\n\r\n"
        ),
        Some(411)
    );
    // Other transfer codings, as the pico-w-furnace example answers them: one the
    // board does not implement before the final chunked 501; chunked not last 400.
    for (coding, want) in [("gzip, chunked", 501), ("gzip", 400)] {
        let raw = format!(
            "POST /rr_upload?name=0:/gcodes/x.g HTTP/1.1\r\nTransfer-Encoding: {coding}\r\n\r\nG28\n"
        );
        assert_eq!(status(sim.addr(), raw.as_bytes()), Some(want), "{coding}");
    }
    assert!(!sim.board().files.lock().unwrap().contains_key("0:/gcodes/x.g"));
}

#[test]
fn a_body_cut_short_by_fin_is_answered() {
    let sim = start(quick());
    let mut s = connect(sim.addr());
    s.write_all(b"POST /rr_upload?name=0:/gcodes/cut.g HTTP/1.1\r\nContent-Length: 100\r\n\r\nG28\n")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let r = read_response(&mut s, Duration::from_secs(20), false).expect("a response, not silence");
    assert_eq!(r.status, 400);
    assert!(!sim.board().files.lock().unwrap().contains_key("0:/gcodes/cut.g"));
}

#[test]
fn an_oversized_body_gets_413_before_it_is_sent() {
    let sim = start(SimConfig {
        card_capacity: 1 << 20,
        ..quick()
    });
    let mut s = connect(sim.addr());
    // Only the head: the answer must not wait for 2 MiB of body.
    s.write_all(b"POST /rr_upload?name=0:/gcodes/big.g HTTP/1.1\r\nContent-Length: 2097152\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, Duration::from_secs(20), false).expect("a response");
    assert_eq!(r.status, 413);
}

#[test]
fn wrong_methods_get_405_with_allow_and_head_is_served() {
    let sim = start(quick());
    let addr = sim.addr();
    let r = exchange(addr, b"POST /rr_model HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = exchange(addr, b"GET /rr_upload?name=0:/x HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = exchange(addr, b"DELETE /rr_download?name=0:/sys/config.g HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    // HEAD: the GET's status and length, no body.
    let get = exchange(addr, b"GET /rr_download?name=0:/sys/config.g HTTP/1.1\r\n\r\n").unwrap();
    let mut s = connect(addr);
    s.write_all(b"HEAD /rr_download?name=0:/sys/config.g HTTP/1.1\r\n\r\n")
        .unwrap();
    // Everything up to the server's close: the head and nothing after it.
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.read_to_end(&mut buf);
    let head = http::parse_head(&buf).unwrap().expect("a whole head");
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length, Some(get.body.len()));
    assert_eq!(buf.len(), head.head_len, "a HEAD response has no body");
}

#[test]
fn names_outside_the_card_are_refused() {
    let sim = start(quick());
    let addr = sim.addr();
    for name in [
        "0:/../../tmp/pwn",
        "0:/gcodes/../../x",
        "",
        "0:/",
        "1:/x",
        "0:/a%5Cb",
    ] {
        let raw = format!("POST /rr_upload?name={name} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        let r = exchange(addr, raw.as_bytes()).unwrap();
        assert_eq!((r.status, r.json()["err"].as_i64()), (400, Some(1)), "{name:?}");
        let raw = format!("GET /rr_download?name={name} HTTP/1.1\r\n\r\n");
        assert_eq!(status(addr, raw.as_bytes()), Some(400), "{name:?}");
    }
    let files = sim.board().files.lock().unwrap().clone();
    assert!(
        files.keys().all(|k| k.starts_with("0:/") && !k.contains("..")),
        "{:?}",
        files.keys()
    );
    // Listing the root shows nothing outside it.
    let list = common::get(addr, "/rr_filelist?dir=0:/..");
    assert_eq!(list.status, 400);
    // A name with `..` inside the volume is the normalised name.
    let r = exchange(
        addr,
        b"POST /rr_upload?name=0:/gcodes/../macros/m.g HTTP/1.1\r\nContent-Length: 3\r\n\r\nM84",
    )
    .unwrap();
    assert_eq!(r.json()["err"], 0);
    assert!(sim.board().files.lock().unwrap().contains_key("0:/macros/m.g"));
}

#[test]
fn a_full_card_refuses_uploads_with_507() {
    let sim = start(SimConfig {
        card_capacity: 1 << 20,
        files: Vec::new(),
        ..quick()
    });
    let addr = sim.addr();
    let upload = |name: &str, len: usize| {
        let mut raw =
            format!("POST /rr_upload?name={name} HTTP/1.1\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        raw.resize(raw.len() + len, b'G');
        exchange(addr, &raw).unwrap()
    };
    let r = upload("0:/gcodes/a.g", 600 << 10);
    assert_eq!((r.status, r.json()["err"].as_i64()), (200, Some(0)));
    let r = upload("0:/gcodes/b.g", 600 << 10);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (507, Some("SD card full"))
    );
    // Replacing a file counts the new size only.
    let r = upload("0:/gcodes/a.g", 700 << 10);
    assert_eq!(r.status, 200);
    assert_eq!(sim.board().stats.card_full.load(Ordering::Relaxed), 1);
    let used: usize = sim.board().files.lock().unwrap().values().map(Vec::len).sum();
    assert!(used <= 1 << 20, "{used}");
}

#[test]
fn eight_parallel_connections_are_all_served() {
    // The board serves 4 at once and holds 4 waiting: eight at once (every socket of
    // the module: a browser's six, or seven pollers and an upload) all get their
    // 200; none is reset.
    let sim = start(SimConfig::default());
    let addr = sim.addr();
    assert_eq!(common::get(addr, "/rr_connect?password=").status, 200);
    let mut conns: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    // Each request is on its way before any is answered.
    for s in &mut conns {
        s.write_all(b"GET /rr_model?key=state HTTP/1.1\r\nHost: duet\r\n\r\n")
            .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let r = read_response(s, Duration::from_secs(20), false);
        assert_eq!(r.map(|r| r.status), Some(200), "connection {i}");
    }
    assert_eq!(sim.board().stats.busy.load(Ordering::Relaxed), 0, "no 503");
}

#[test]
fn connections_beyond_cap_and_queue_are_reset_at_once() {
    // Cap 4 + queue 4 = 8 held, every slot of the pool; the 9th is reset at once,
    // not left hanging.
    let sim = start(SimConfig::default());
    let addr = sim.addr();
    assert_eq!(common::get(addr, "/rr_connect?password=").status, 200);
    let _held: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    thread::sleep(Duration::from_millis(300));
    let r = exchange(addr, b"GET /rr_model?key=state HTTP/1.1\r\n\r\n");
    assert!(r.is_none(), "a ninth connection was served while eight were held");
}

/// Run `bridge-sim` with `args`; it must exit (bounded) with a failure naming `flag`.
fn refused(args: &[&str], flag: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bridge-sim");
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = status.unwrap_or_else(|| panic!("bridge-sim {args:?} was accepted and kept running"));
    assert!(!status.success(), "{args:?}: {status:?}");
    assert!(err.contains(flag), "{args:?}: {err}");
}

#[test]
fn bad_flags_are_refused_with_a_clear_error() {
    refused(&["--stall-grace-ms", "0"], "--stall-grace-ms must be within");
    refused(
        &["--http-max-conns", "0"],
        "--http-max-conns must be within 1 ..= 8",
    );
    refused(
        &["--http-max-conns", "9"],
        "--http-max-conns must be within 1 ..= 8",
    );
    refused(&["--http-max-conns", "65536"], "--http-max-conns 65536");
    refused(
        &["--http-max-conns", "6", "--http-queue", "3"],
        "--http-queue plus",
    );
    refused(
        &["--request-deadline-ms", "0"],
        "--request-deadline-ms must be within",
    );
    refused(&["--body-stall-ms", "0"], "--body-stall-ms must be within");
    refused(&["--min-body-rate", "0"], "--min-body-rate must be at least 1");
    refused(&["--card-mib", "0"], "--card-mib must be within");
    // And through the library: an error, not a simulator that fails every request.
    let e = Simulator::start(SimConfig {
        stall_grace: Duration::ZERO,
        ..SimConfig::default()
    })
    .err()
    .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
