//! The async driver on kernel TCP (127.0.0.1 only): edge-nal-std for accepting,
//! std-embedded-nal-async for connecting, async-io for the executor and the timer.
//! Deadlines are generous upper bounds so nothing hangs; no test asserts on how long
//! anything took.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration as StdDuration;

use edge_nal::TcpBind;
use futures_lite::future;
use netpool::asynch::{AcceptError, AsyncPool, Closer, Timer};
use netpool::{
    CloseReason, Config, ConnError, ConnState, ConnectError, Duration, ErrorClass, Instant, LinkState,
    ListenParams,
};

/// Wall-clock time since the start of the test, in netpool's terms.
struct HostTimer(std::time::Instant);

impl HostTimer {
    fn new() -> Self {
        HostTimer(std::time::Instant::now())
    }
    fn after(&self, ms: u64) -> Instant {
        self.now() + Duration::from_millis(ms)
    }
}

impl Timer for HostTimer {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
    async fn at(&self, deadline: Instant) {
        let now = self.now();
        if deadline > now {
            async_io::Timer::after(StdDuration::from_millis((deadline - now).as_millis())).await;
        }
    }
}

const LONG: u64 = 20_000;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connect to `port`, retrying while nothing listens yet (the test binds after
/// starting its clients): at most 2000 attempts 10 ms apart. `rcvbuf` shrinks the
/// receive buffer first.
fn connect_when_listening(port: u16, rcvbuf: Option<usize>) -> std::io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..2000 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        if let Some(n) = rcvbuf {
            s.set_recv_buffer_size(n)?;
        }
        match s.connect(&loopback(port).into()) {
            Ok(()) => return Ok(s.into()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(e);
                std::thread::sleep(StdDuration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no attempt")))
}

/// A client in a thread: connect, send `req`, read everything until EOF or reset.
fn client(port: u16, req: &'static [u8]) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut s = connect_when_listening(port, None)?;
        s.set_read_timeout(Some(StdDuration::from_secs(20)))?;
        s.write_all(req)?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    })
}

#[test]
fn accept_read_write_close_and_the_slot_is_free() {
    static POOL: AsyncPool<4> = AsyncPool::new(Config::new().with_close_linger(Duration::from_secs(5)));
    static CLOSER: Closer<edge_nal_std::TcpSocket, 2> = Closer::new();
    let timer = HostTimer::new();
    let port = free_port();
    let peer = client(port, b"ping");
    future::block_on(future::or(async { CLOSER.run(&POOL, &timer).await }, async {
        let stack = edge_nal_std::Stack::new();
        let acceptor = stack.bind(loopback(port)).await.unwrap();
        POOL.listen(port, ListenParams::new(4)).unwrap();
        let mut conn = POOL
            .accept(&acceptor, port, &timer, timer.after(LONG))
            .await
            .unwrap();
        assert_eq!(conn.state(), ConnState::Connected);
        let mut buf = [0u8; 16];
        let n = conn.read(&mut buf, &timer, timer.after(LONG)).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        conn.write_all(b"pong", &timer, timer.after(LONG)).await.unwrap();
        assert_eq!(POOL.free_slots(), 3);
        conn.close(&CLOSER, &timer).await;
        assert_eq!(POOL.free_slots(), 4);
        // The closer finishes the FIN in the background.
        while CLOSER.closing() > 0 {
            timer.at(timer.after(10)).await;
        }
    }));
    assert_eq!(POOL.closer_counters().finished, 1);
    assert_eq!(POOL.report(timer.now()).closer, POOL.closer_counters());
    assert_eq!(peer.join().unwrap().unwrap(), b"pong");
    assert_eq!(POOL.free_slots(), 4);
    let c = POOL.counters();
    assert_eq!((c.accepted, c.in_use), (1, 0));
}

#[test]
fn connections_beyond_the_port_cap_are_accepted_and_reset_at_once() {
    static POOL: AsyncPool<4> = AsyncPool::new(Config::new());
    let timer = HostTimer::new();
    let port = free_port();
    future::block_on(async {
        let stack = edge_nal_std::Stack::new();
        let acceptor = stack.bind(loopback(port)).await.unwrap();
        POOL.listen(port, ListenParams::new(1)).unwrap();
        let first = client(port, b"a");
        let held = POOL
            .accept(&acceptor, port, &timer, timer.after(LONG))
            .await
            .unwrap();
        // A second client while the cap (1) is reached: rejected inside accept, which
        // then waits for the next one until its deadline.
        let second = client(port, b"b");
        let r = POOL.accept(&acceptor, port, &timer, timer.after(1500)).await;
        assert!(matches!(r, Err(AcceptError::TimedOut)));
        let second = second.join().unwrap();
        assert!(
            second.as_ref().map_or(true, |got| got.is_empty()),
            "the rejected client was served: {second:?}"
        );
        drop(held);
        drop(first);
    });
    let c = POOL.counters();
    assert_eq!((c.accepted, c.rejected, c.rejected_port_cap), (1, 1, 1));
    assert_eq!(POOL.free_slots(), 4);
}

#[test]
fn a_blocked_reader_wakes_when_the_peer_closes() {
    static POOL: AsyncPool<2> = AsyncPool::new(Config::new());
    let timer = HostTimer::new();
    let port = free_port();
    let peer = std::thread::spawn(move || {
        let mut s = connect_when_listening(port, None).unwrap();
        s.write_all(b"last words").unwrap();
        std::thread::sleep(StdDuration::from_millis(200));
        // FIN
    });
    future::block_on(async {
        let stack = edge_nal_std::Stack::new();
        let acceptor = stack.bind(loopback(port)).await.unwrap();
        POOL.listen(port, ListenParams::new(2)).unwrap();
        let mut conn = POOL
            .accept(&acceptor, port, &timer, timer.after(LONG))
            .await
            .unwrap();
        let mut got = Vec::new();
        let end = loop {
            let mut buf = [0u8; 4];
            match conn.read(&mut buf, &timer, timer.after(LONG)).await {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(got, b"last words", "data before the FIN stays readable");
        assert_eq!(end, ConnError::PeerGone(ErrorClass::Closed));
        assert_eq!(conn.state(), ConnState::OtherEndClosed);
    });
    peer.join().unwrap();
    assert_eq!(POOL.free_slots(), 2);
    assert_eq!(POOL.counters().peer_closed, 1);
}

#[test]
fn the_reaper_wakes_a_reader_blocked_on_a_stalled_connection() {
    static POOL: AsyncPool<2> = AsyncPool::new(Config::new().with_stall_grace(Duration::from_millis(300)));
    let timer = HostTimer::new();
    let port = free_port();
    // A peer that connects, never reads and never sends.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let _s = connect_when_listening(port, Some(4096)).unwrap();
        let _ = rx.recv_timeout(StdDuration::from_secs(30));
    });
    future::block_on(async {
        let stack = edge_nal_std::Stack::new();
        let acceptor = stack.bind(loopback(port)).await.unwrap();
        POOL.listen(port, ListenParams::new(2)).unwrap();
        let mut conn = POOL
            .accept(&acceptor, port, &timer, timer.after(LONG))
            .await
            .unwrap();
        let (mut reader, mut writer) = conn.split();
        let read_task = async { reader.read(&mut [0u8; 16], &timer, timer.after(LONG)).await };
        let write_and_reap = async {
            let chunk = [7u8; 16 * 1024];
            // Fill the kernel's buffers: writes stop taking bytes.
            for _ in 0..10_000 {
                match writer.write(&chunk, false, &timer, timer.after(200)).await {
                    Ok(_) => {}
                    Err(ConnError::TimedOut) => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            // The reaper runs periodically; the stall is found after the grace.
            for _ in 0..100 {
                if POOL.reap(timer.now()) > 0 {
                    return;
                }
                async_io::Timer::after(StdDuration::from_millis(50)).await;
            }
            panic!("never reaped");
        };
        let (read, ()) = future::zip(read_task, write_and_reap).await;
        assert_eq!(read, Err(ConnError::Closed(CloseReason::Stalled)));
        drop(conn);
    });
    tx.send(()).ok();
    peer.join().unwrap();
    assert_eq!(POOL.counters().reaped, 1);
    assert_eq!(POOL.free_slots(), 2);
}

#[test]
fn connect_succeeds_fails_and_respects_the_link_gate_and_capacity() {
    static POOL: AsyncPool<1> = AsyncPool::new(Config::new());
    let timer = HostTimer::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let stack = std_embedded_nal_async::Stack::default();
    future::block_on(async {
        // The link is down: refused without a connection attempt.
        let r = POOL
            .connect(
                &stack,
                loopback(port),
                0,
                LinkState::Down,
                &timer,
                Duration::from_secs(5),
            )
            .await;
        assert!(matches!(r, Err(ConnectError::LinkDown)));
        assert_eq!(POOL.counters().connects, 0);

        let mut conn = POOL
            .connect(
                &stack,
                loopback(port),
                3,
                LinkState::Up,
                &timer,
                Duration::from_secs(5),
            )
            .await
            .expect("connect");
        let (mut peer, _) = server.accept().unwrap();
        // The only slot is taken.
        let r = POOL
            .connect(
                &stack,
                loopback(port),
                3,
                LinkState::Unknown,
                &timer,
                Duration::from_secs(5),
            )
            .await;
        assert!(matches!(r, Err(ConnectError::PoolFull)));
        conn.write_all(b"hello", &timer, timer.after(LONG)).await.unwrap();
        let mut buf = [0u8; 5];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        drop(conn);
        assert_eq!(POOL.free_slots(), 1);

        // Nothing listens: the failure is reported, the slot is free again.
        let closed = free_port();
        let r = POOL
            .connect(
                &stack,
                loopback(closed),
                0,
                LinkState::Up,
                &timer,
                Duration::from_secs(5),
            )
            .await;
        assert!(
            matches!(r, Err(ConnectError::Stack(ErrorClass::Refused))),
            "{:?}",
            r.err()
        );
    });
    let c = POOL.counters();
    assert_eq!((c.connects, c.connect_failed, c.exhausted), (2, 1, 1));
    assert_eq!(POOL.free_slots(), 1);
}

/// A connector whose connects never complete (a SYN into the void).
struct NeverConnects;

impl embedded_nal_async::TcpConnect for NeverConnects {
    type Error = std::io::Error;
    type Connection<'a> = edge_nal_std::TcpSocket;
    async fn connect<'a>(&'a self, _remote: SocketAddr) -> Result<Self::Connection<'a>, Self::Error> {
        future::pending().await
    }
}

#[test]
fn a_connect_that_times_out_or_is_cancelled_frees_its_slot() {
    static POOL: AsyncPool<1> = AsyncPool::new(Config::new());
    let timer = HostTimer::new();
    future::block_on(async {
        // Its own deadline passes.
        let r = POOL
            .connect(
                &NeverConnects,
                loopback(9),
                0,
                LinkState::Up,
                &timer,
                Duration::from_millis(50),
            )
            .await;
        assert!(
            matches!(r, Err(ConnectError::Stack(ErrorClass::ConnectionTimedOut))),
            "{:?}",
            r.err()
        );
        assert_eq!(POOL.free_slots(), 1);
        // The caller gives up first (the connect future is dropped mid-await).
        let connect = POOL.connect(
            &NeverConnects,
            loopback(9),
            0,
            LinkState::Up,
            &timer,
            Duration::from_secs(60),
        );
        let gave_up = future::or(async { Some(connect.await) }, async {
            async_io::Timer::after(StdDuration::from_millis(50)).await;
            None
        })
        .await;
        assert!(gave_up.is_none());
    });
    assert_eq!(POOL.free_slots(), 1, "a cancelled connect leaked its slot");
    assert_eq!(POOL.counters().connect_failed, 2);
    let report = POOL.report(Instant::ZERO);
    assert_eq!(
        report.slots[0].close_reason,
        Some(CloseReason::ConnectFailed(ErrorClass::Aborted))
    );
}
