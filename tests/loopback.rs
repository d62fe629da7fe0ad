//! The pool on OS sockets against real kernel TCP clients, on 127.0.0.1 only.
//!
//! The pool runs on a virtual clock (`Instant`s the test chooses), the kernel on
//! real time. Nothing here asserts on wall-clock durations; every loop is bounded
//! in iterations and in real time.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration as StdDuration;

use netpool::stack::std_net::StdStack;
use netpool::{
    nb, CloseReason, Config, ConnError, ConnHandle, ConnState, Duration, ErrorClass, Instant, ListenParams,
    Pool,
};

/// A port that was free a moment ago (bind :0, read, release).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Poll until `pred` holds, advancing the virtual clock by 1 ms per step; at most
/// `steps` steps of ≥1 ms real time each. Returns the final virtual time.
fn poll_until<S: netpool::stack::Stack, const N: usize, const L: usize>(
    pool: &mut Pool<S, N, L>,
    mut now: Instant,
    steps: u32,
    mut pred: impl FnMut(&mut Pool<S, N, L>, Instant) -> bool,
) -> (Instant, bool) {
    for _ in 0..steps {
        pool.poll(now);
        if pred(pool, now) {
            return (now, true);
        }
        thread::sleep(StdDuration::from_millis(1));
        now = now + Duration::from_millis(1);
    }
    (now, false)
}

fn accept_one<const N: usize, const L: usize>(pool: &mut Pool<StdStack, N, L>, now: Instant) -> ConnHandle {
    let mut got = None;
    let (_, ok) = poll_until(pool, now, 5_000, |p, _| {
        got = p.accept_next().map(|a| a.handle);
        got.is_some()
    });
    assert!(ok, "no connection accepted");
    got.expect("accepted")
}

fn read_request<const N: usize, const L: usize>(
    pool: &mut Pool<StdStack, N, L>,
    h: ConnHandle,
    now: Instant,
    want: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..5_000 {
        let mut buf = [0u8; 256];
        match pool.read(h, &mut buf, now) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(nb::Error::WouldBlock) => thread::sleep(StdDuration::from_millis(1)),
            Err(nb::Error::Other(e)) => panic!("read failed: {e}"),
        }
        if got.len() >= want {
            break;
        }
    }
    got
}

/// A browser-style poll: request, response, then an abortive close (RST). The slot
/// becomes `OtherEndClosed` with class `Reset`, and is free once the server closes it.
#[test]
fn rst_right_after_the_response_frees_the_slot() {
    let port = free_port();
    let mut pool: Pool<StdStack, 4, 1> = Pool::new(StdStack::loopback(), Config::new());
    pool.listen(port, ListenParams::new(4)).expect("listen");

    let client = thread::spawn(move || {
        let mut s = TcpStream::connect(addr(port)).expect("connect");
        s.set_read_timeout(Some(StdDuration::from_secs(10))).unwrap();
        s.write_all(b"GET /rr_model\n").unwrap();
        let mut resp = [0u8; 5];
        s.read_exact(&mut resp).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(StdDuration::ZERO))
            .unwrap();
        drop(s); // RST
        resp
    });

    let now = Instant::from_millis(1);
    let h = accept_one(&mut pool, now);
    assert_eq!(read_request(&mut pool, h, now, 14), b"GET /rr_model\n");
    assert_eq!(pool.write(h, b"{ok}\n", true, now), Ok(5));
    assert_eq!(&client.join().unwrap(), b"{ok}\n");

    let (now, gone) = poll_until(&mut pool, now, 5_000, |p, _| {
        p.state(h) == Ok(ConnState::OtherEndClosed)
    });
    assert!(gone, "reset not noticed by poll");
    let mut buf = [0u8; 8];
    match pool.read(h, &mut buf, now) {
        Err(nb::Error::Other(ConnError::PeerGone(class))) => assert!(class.is_peer_gone(), "{class}"),
        other => panic!("expected peer gone, got {other:?}"),
    }
    assert_eq!(
        pool.report(now).slots[h.slot()].close_reason,
        Some(CloseReason::PeerGone(ErrorClass::Reset))
    );
    pool.close(h, now).unwrap();
    assert_eq!(pool.free_slots(), 4);
    assert_eq!(pool.counters().peer_closed, 1);
    assert_eq!(pool.counters().accepted, 1);
}

/// A client that connects, asks for a large download and never reads: the kernel's
/// buffers fill, the send queue stops draining, and the reaper aborts the connection
/// after the stall grace — not before.
#[test]
fn peer_that_never_reads_is_reaped_after_the_grace() {
    let port = free_port();
    let grace = Duration::from_secs(10);
    let config = Config::new().with_stall_grace(grace);
    let mut pool: Pool<StdStack, 4, 1> = Pool::new(StdStack::loopback(), config);
    pool.listen(port, ListenParams::new(4)).expect("listen");

    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap(); // fill quickly
    sock.connect(&addr(port).into()).unwrap();
    let mut client: TcpStream = sock.into();

    let t0 = Instant::from_millis(1);
    let h = accept_one(&mut pool, t0);
    // Write until the kernel takes nothing more (bounded).
    let chunk = [0x5au8; 16 * 1024];
    let mut written = 0usize;
    let mut blocked_in_a_row = 0;
    for _ in 0..20_000 {
        match pool.write(h, &chunk, true, t0) {
            Ok(n) => {
                written += n;
                blocked_in_a_row = 0;
            }
            Err(nb::Error::WouldBlock) => {
                blocked_in_a_row += 1;
                if blocked_in_a_row > 50 {
                    break;
                }
                thread::sleep(StdDuration::from_millis(1));
            }
            Err(nb::Error::Other(e)) => panic!("write failed: {e}"),
        }
    }
    assert!(
        blocked_in_a_row > 50,
        "the kernel kept taking data ({written} bytes)"
    );

    // Just short of the grace: still alive.
    pool.poll(t0);
    pool.poll(t0 + Duration::from_millis(grace.as_millis() - 1));
    assert_eq!(pool.state(h), Ok(ConnState::Connected));
    // Past grace + one reading interval (grace / 8): reaped, aborted, freed.
    let late = t0 + grace + Duration::from_millis(grace.as_millis() / 8 + 1);
    pool.poll(late);
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(
        pool.write(h, b"x", true, late),
        Err(nb::Error::Other(ConnError::Closed(CloseReason::Stalled)))
    );
    assert_eq!(pool.counters().reaped, 1);
    assert_eq!(pool.free_slots(), 4);

    // The client sees the abort: RST, after whatever was already in its buffer.
    client.set_read_timeout(Some(StdDuration::from_secs(10))).unwrap();
    let mut sink = vec![0u8; 64 * 1024];
    let mut reset = false;
    for _ in 0..10_000 {
        match client.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                reset = true;
                break;
            }
            Err(e) => panic!("client read: {e}"),
        }
    }
    assert!(reset, "client did not see a reset");
}

/// A slow client that keeps reading is never reaped, however long it takes.
#[test]
fn slow_reader_that_keeps_draining_is_not_reaped() {
    let port = free_port();
    let grace = Duration::from_secs(2);
    let mut pool: Pool<StdStack, 4, 1> =
        Pool::new(StdStack::loopback(), Config::new().with_stall_grace(grace));
    pool.listen(port, ListenParams::new(4)).expect("listen");

    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr(port).into()).unwrap();
    let mut client: TcpStream = sock.into();
    client.set_nonblocking(true).unwrap();

    let mut now = Instant::from_millis(1);
    let h = accept_one(&mut pool, now);
    let chunk = [0x33u8; 8 * 1024];
    let mut received = 0usize;
    let mut sent = 0usize;
    // 60 steps of one virtual second each: 30 graces. Each step the server writes
    // what the kernel takes and the client reads what has arrived.
    for _ in 0..60 {
        for _ in 0..64 {
            match pool.write(h, &chunk, true, now) {
                Ok(n) => sent += n,
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => panic!("write failed: {e}"),
            }
        }
        thread::sleep(StdDuration::from_millis(5));
        let mut buf = [0u8; 64 * 1024];
        loop {
            match client.read(&mut buf) {
                Ok(0) => panic!("server closed the slow reader"),
                Ok(n) => received += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
        thread::sleep(StdDuration::from_millis(5)); // let the ACKs land
        now = now + Duration::from_secs(1);
        pool.poll(now);
        assert_eq!(
            pool.state(h),
            Ok(ConnState::Connected),
            "slow reader reaped at {now}"
        );
    }
    assert!(received > 0 && sent >= received);
    assert_eq!(pool.counters().reaped, 0);
}

/// 40 clients at once against a pool of 4: four are served, 36 are accepted and
/// reset at once (counted), nothing is left in the backlog, and the pool serves
/// again afterwards.
#[test]
fn accept_storm_of_ten_times_capacity_is_rejected_cleanly() {
    const CLIENTS: usize = 40;
    let port = free_port();
    let mut pool: Pool<StdStack, 4, 1> = Pool::new(StdStack::loopback(), Config::new());
    pool.listen(port, ListenParams::new(4)).expect("listen");

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr(port), StdDuration::from_secs(20)).ok()?;
                s.set_read_timeout(Some(StdDuration::from_secs(20))).unwrap();
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got); // EOF after service, or a reset
                Some(got)
            })
        })
        .collect();

    let mut served = Vec::new();
    let mut now = Instant::from_millis(1);
    // Bounded: at most 30 000 passes of ≥1 ms.
    for _ in 0..30_000 {
        pool.poll(now);
        while let Some(a) = pool.accept_next() {
            assert_eq!(pool.write(a.handle, b"hi\n", true, now), Ok(3));
            served.push(a.handle);
        }
        if pool.counters().accepted + pool.counters().rejected == CLIENTS as u32 {
            break;
        }
        thread::sleep(StdDuration::from_millis(1));
        now = now + Duration::from_millis(1);
    }
    let c = pool.counters();
    assert_eq!(c.accepted, 4, "{c}");
    assert_eq!(c.rejected, (CLIENTS - 4) as u32, "{c}");
    assert_eq!(c.rejected_port_cap, (CLIENTS - 4) as u32);
    assert_eq!(c.high_water, 4);
    for h in served {
        pool.close(h, now).unwrap();
    }
    assert_eq!(pool.free_slots(), 4);

    let results: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let greeted = results
        .iter()
        .filter(|r| r.as_deref() == Some(&b"hi\n"[..]))
        .count();
    assert_eq!(greeted, 4, "{results:?}");

    // The pool recovers: a new client is served.
    let mut s = TcpStream::connect(addr(port)).unwrap();
    let h = accept_one(&mut pool, now);
    pool.write(h, b"ok", true, now).unwrap();
    pool.close(h, now).unwrap();
    let mut got = Vec::new();
    s.set_read_timeout(Some(StdDuration::from_secs(10))).unwrap();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ok");
    assert_eq!(pool.free_slots(), 4);
}

/// A connect to a port nobody listens on fails: `Aborted` with the reason, never
/// `Connected`, and the stack socket is released at once.
#[test]
fn connect_to_a_closed_port_reports_failure() {
    let port = free_port();
    let mut pool: Pool<StdStack, 2, 1> = Pool::new(StdStack::loopback(), Config::new());
    let now = Instant::from_millis(1);
    match pool.connect(addr(port), 0, Duration::from_secs(5), now) {
        Err(e) => assert_eq!(e, netpool::ConnectError::Stack(ErrorClass::Refused)),
        Ok(h) => {
            let (now, done) = poll_until(&mut pool, now, 5_000, |p, _| {
                p.state(h) != Ok(ConnState::Connecting)
            });
            assert!(done);
            assert_eq!(pool.state(h), Ok(ConnState::Aborted));
            assert_eq!(
                pool.report(now).slots[h.slot()].close_reason,
                Some(CloseReason::ConnectFailed(ErrorClass::Refused))
            );
            pool.close(h, now).unwrap();
        }
    }
    assert_eq!(pool.free_slots(), 2);
    assert_eq!(pool.counters().connect_failed, 1);
}

/// A connect to a listening port completes through `poll`, and data flows.
#[test]
fn connect_completes_through_poll() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut pool: Pool<StdStack, 2, 1> = Pool::new(StdStack::loopback(), Config::new());
    let now = Instant::from_millis(1);
    let h = pool
        .connect(addr(port), 7, Duration::from_secs(5), now)
        .expect("connect");
    let (now, up) = poll_until(&mut pool, now, 5_000, |p, _| {
        p.state(h) == Ok(ConnState::Connected)
    });
    assert!(up);
    let (mut peer, _) = server.accept().unwrap();
    assert_eq!(pool.write(h, b"ping", true, now), Ok(4));
    let mut buf = [0u8; 4];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    pool.close(h, now).unwrap();
    assert_eq!(peer.read(&mut buf).unwrap(), 0, "FIN after close");
}
