//! The rules (README, "The rules, and the test that guards each"), written once and run against both drivers on kernel TCP
//! (127.0.0.1 only): the sync [`Pool`] over `StdStack`, driven in a loop, and the
//! [`AsyncPool`] over edge-nal-std, driven with `futures_lite::future::block_on` and
//! async-io.
//!
//! Each rule is a function generic over [`Driver`], the little the rules need from a
//! driver; `rule_tests!` instantiates every one of them in `mod sync_pool` and in
//! `mod async_pool`.
//!
//! Time: both drivers read one [`Clock`], real time plus a skew the test can move
//! forward. Timers (idle, stall, abandoned) are a minute or more, so real time never
//! reaches them during a test; a test reaches them by calling [`Driver::work`] (the
//! sync `poll`, the async `reap`) at chosen times. Real-time deadlines only bound how
//! long a test waits for the kernel; no test passes or fails on how long anything
//! took. Every loop is bounded in count and in time.

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration as StdDuration;

use edge_nal::TcpBind;
use futures_lite::future;
use netpool::asynch::{AcceptError, AsyncPool, Closer, Conn};
use netpool::stack::std_net::StdStack;
use netpool::{
    nb, CloseReason, Config, ConnError, ConnHandle, ConnState, Counters, Duration, ErrorClass, EventKind,
    Instant, LinkState, ListenMode, ListenParams, Pool, RejectPolicy, Report,
};

/// Connection slots and listener entries of every pool here.
const N: usize = 4;
const L: usize = 2;
/// Places in the async driver's background closer.
const K: usize = 4;

/// How long a test waits for the kernel, at most, per step (real time).
const WAIT_MS: u64 = 10_000;
/// Timers: far beyond the real time a test takes, reached only by `work(t)`.
const GRACE: Duration = Duration::from_secs(60);
const IDLE: Duration = Duration::from_secs(90);
const ABANDONED: Duration = Duration::from_secs(120);

// ------------------------------------------------------------------------- clock

/// Real time since the test started, plus a skew the test moves forward to reach
/// timers. Shared by the test and its driver (and, for the async driver, its
/// [`netpool::asynch::Timer`]).
struct Clock {
    start: std::time::Instant,
    skew_ms: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: std::time::Instant::now(),
            skew_ms: AtomicU64::new(1),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64 + self.skew_ms.load(Ordering::SeqCst))
    }

    /// `ms` of real time from now (a deadline that bounds a wait).
    fn after(&self, ms: u64) -> Instant {
        self.now() + Duration::from_millis(ms)
    }

    /// Move the clock forward so that it reads at least `t`.
    fn advance_to(&self, t: Instant) {
        let now = self.now();
        if t > now {
            self.skew_ms.fetch_add((t - now).as_millis(), Ordering::SeqCst);
        }
    }
}

impl netpool::asynch::Timer for Clock {
    fn now(&self) -> Instant {
        Clock::now(self)
    }

    async fn at(&self, deadline: Instant) {
        // In slices, so a skew moved forward meanwhile is noticed; bounded by the
        // deadline, which real time reaches.
        loop {
            let now = Clock::now(self);
            if now >= deadline {
                return;
            }
            let ms = (deadline - now).as_millis().min(20);
            async_io::Timer::after(StdDuration::from_millis(ms)).await;
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ------------------------------------------------------------------------ driver

/// What [`Driver::accept`] found.
enum Accepted<C> {
    Conn(C),
    /// The deadline passed with no connection served.
    TimedOut,
    /// No listener on the port (never opened, stopped, or a one-shot that took its
    /// connection).
    NotListening,
}

/// What the rule tests need from a driver. `deadline`s bound real waiting only.
trait Driver: Sized {
    /// A connection as the application holds it.
    type Conn;
    /// Whether the pool owns the sockets (sync) and so releases a connection it ends
    /// itself at once, or a task does (async) and the slot waits, `Aborted`, for the
    /// task to let go of its [`Conn`].
    const POOL_OWNS_SOCKETS: bool;

    fn new(config: Config) -> Self;
    fn clock(&self) -> &Clock;
    fn listen(&mut self, port: u16, params: ListenParams);
    fn accept(&mut self, port: u16, deadline: Instant) -> Accepted<Self::Conn>;
    /// Bytes read (at least one), the connection's error, or `TimedOut`.
    fn read(&mut self, c: &mut Self::Conn, buf: &mut [u8], deadline: Instant) -> Result<usize, ConnError>;
    /// Bytes taken (at least one, with push), the connection's error, or `TimedOut`
    /// when the stack took nothing by the deadline.
    fn write(&mut self, c: &mut Self::Conn, data: &[u8], deadline: Instant) -> Result<usize, ConnError>;
    fn close(&mut self, c: Self::Conn);
    /// The timer work at `now`: `Pool::poll` or `AsyncPool::reap`.
    fn work(&mut self, now: Instant);
    fn poll_at(&self) -> Option<Instant>;
    fn events(&mut self) -> Vec<(ConnHandle, EventKind, Option<CloseReason>)>;
    fn counters(&self) -> Counters;
    fn free_slots(&self) -> usize;
    fn report(&self, now: Instant) -> Report<N, L>;
    fn handle(c: &Self::Conn) -> ConnHandle;
    fn state(&self, c: &Self::Conn) -> ConnState;
    /// Sockets a background closer still holds (always 0 for the sync pool, whose
    /// stack finishes closes by itself).
    fn closing(&self) -> u32;
    /// Let background closes finish (bounded by `deadline`).
    fn settle(&mut self, deadline: Instant);
    /// Connect to `remote` within `timeout`, running the timer work every
    /// millisecond until the connect ends (at most `WAIT_MS` of real time); when
    /// `link_down_after_ms` is set, the link goes down that long after the start.
    fn connect(
        &mut self,
        remote: SocketAddr,
        timeout: Duration,
        link_down_after_ms: Option<u64>,
    ) -> Connected<Self::Conn>;
}

/// How [`Driver::connect`] ended.
enum Connected<C> {
    Conn(C),
    /// Failed: the sync pool hands out a handle at once, so the application holds an
    /// `Aborted` slot to close; the async connect returns an error and holds nothing.
    Failed(Option<C>),
}

// ------------------------------------------------------------------- sync driver

/// The sync pool on kernel sockets, driven in a loop: `poll` at the clock's time,
/// 1 ms of real sleep between tries.
struct SyncDriver {
    pool: Pool<StdStack, N, L>,
    clock: Clock,
}

impl SyncDriver {
    fn now(&self) -> Instant {
        self.clock.now()
    }
}

impl Driver for SyncDriver {
    type Conn = ConnHandle;
    const POOL_OWNS_SOCKETS: bool = true;

    fn new(config: Config) -> Self {
        SyncDriver {
            pool: Pool::new(StdStack::loopback(), config),
            clock: Clock::new(),
        }
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn listen(&mut self, port: u16, params: ListenParams) {
        self.pool.listen(port, params).expect("listen");
    }

    fn accept(&mut self, port: u16, deadline: Instant) -> Accepted<ConnHandle> {
        loop {
            let now = self.now();
            self.pool.poll(now);
            if let Some(a) = self.pool.accept_next() {
                assert_eq!(a.port, port, "accepted on another port");
                return Accepted::Conn(a.handle);
            }
            if self.pool.listener(port).is_none() {
                return Accepted::NotListening;
            }
            if now >= deadline {
                return Accepted::TimedOut;
            }
            thread::sleep(StdDuration::from_millis(1));
        }
    }

    fn read(&mut self, c: &mut ConnHandle, buf: &mut [u8], deadline: Instant) -> Result<usize, ConnError> {
        loop {
            let now = self.now();
            match self.pool.read(*c, buf, now) {
                Ok(n) => return Ok(n),
                Err(nb::Error::Other(e)) => return Err(e),
                Err(nb::Error::WouldBlock) if now >= deadline => return Err(ConnError::TimedOut),
                Err(nb::Error::WouldBlock) => thread::sleep(StdDuration::from_millis(1)),
            }
        }
    }

    fn write(&mut self, c: &mut ConnHandle, data: &[u8], deadline: Instant) -> Result<usize, ConnError> {
        loop {
            let now = self.now();
            match self.pool.write(*c, data, true, now) {
                Ok(n) => return Ok(n),
                Err(nb::Error::Other(e)) => return Err(e),
                Err(nb::Error::WouldBlock) if now >= deadline => return Err(ConnError::TimedOut),
                Err(nb::Error::WouldBlock) => thread::sleep(StdDuration::from_millis(1)),
            }
        }
    }

    fn close(&mut self, c: ConnHandle) {
        let now = self.now();
        self.pool.close(c, now).expect("close");
    }

    fn work(&mut self, now: Instant) {
        self.pool.poll(now);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.pool.poll_at()
    }

    fn events(&mut self) -> Vec<(ConnHandle, EventKind, Option<CloseReason>)> {
        std::iter::from_fn(|| self.pool.poll_event())
            .take(64)
            .map(|e| (e.handle, e.kind, e.reason))
            .collect()
    }

    fn counters(&self) -> Counters {
        self.pool.counters()
    }

    fn free_slots(&self) -> usize {
        self.pool.free_slots()
    }

    fn report(&self, now: Instant) -> Report<N, L> {
        self.pool.report(now)
    }

    fn handle(c: &ConnHandle) -> ConnHandle {
        *c
    }

    fn state(&self, c: &ConnHandle) -> ConnState {
        self.pool.state(*c).unwrap_or(ConnState::Free)
    }

    fn closing(&self) -> u32 {
        0
    }

    fn settle(&mut self, _deadline: Instant) {}

    fn connect(
        &mut self,
        remote: SocketAddr,
        timeout: Duration,
        link_down_after_ms: Option<u64>,
    ) -> Connected<ConnHandle> {
        let start = self.now();
        let h = self
            .pool
            .connect(remote, 0, timeout, start)
            .expect("connect starts");
        let deadline = self.clock.after(WAIT_MS);
        while self.now() < deadline {
            let now = self.now();
            if link_down_after_ms.is_some_and(|ms| now >= start + Duration::from_millis(ms)) {
                self.pool.stack_mut().set_link(LinkState::Down);
            }
            self.pool.poll(now);
            match self.pool.state(h) {
                Ok(ConnState::Connected) => return Connected::Conn(h),
                Ok(ConnState::Aborted) => return Connected::Failed(Some(h)),
                _ => thread::sleep(StdDuration::from_millis(1)),
            }
        }
        panic!("the connect neither finished nor failed in {WAIT_MS} ms");
    }
}

// ------------------------------------------------------------------ async driver

/// An edge-nal-std socket whose `abort` sends RST. edge-nal-std's own `abort` does
/// nothing (its socket's drop is a graceful close), which would hide whether the
/// driver aborts where the rules say so; a stack such as embassy-net aborts for real.
struct Socket(edge_nal_std::TcpSocket);

impl embedded_io_async::ErrorType for Socket {
    type Error = std::io::Error;
}

impl embedded_io_async::Read for Socket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        embedded_io_async::Read::read(&mut self.0, buf).await
    }
}

impl embedded_io_async::Write for Socket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        embedded_io_async::Write::write(&mut self.0, buf).await
    }

    async fn flush(&mut self) -> Result<(), std::io::Error> {
        embedded_io_async::Write::flush(&mut self.0).await
    }
}

impl edge_nal::TcpShutdown for Socket {
    async fn close(&mut self, what: edge_nal::Close) -> Result<(), std::io::Error> {
        edge_nal::TcpShutdown::close(&mut self.0, what).await
    }

    /// RST once the socket is dropped (right after: every caller drops it).
    async fn abort(&mut self) -> Result<(), std::io::Error> {
        socket2::SockRef::from(self.0.get_ref()).set_linger(Some(StdDuration::ZERO))
    }
}

impl edge_nal::Readable for Socket {
    async fn readable(&mut self) -> Result<(), std::io::Error> {
        edge_nal::Readable::readable(&mut self.0).await
    }
}

impl edge_nal::TcpSplit for Socket {
    type Read<'a>
        = <edge_nal_std::TcpSocket as edge_nal::TcpSplit>::Read<'a>
    where
        Self: 'a;
    type Write<'a>
        = <edge_nal_std::TcpSocket as edge_nal::TcpSplit>::Write<'a>
    where
        Self: 'a;

    fn split(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.0.split()
    }
}

/// edge-nal-std's acceptor, handing out [`Socket`]s.
struct Acceptor(edge_nal_std::TcpAcceptor);

impl edge_nal::TcpAccept for Acceptor {
    type Error = std::io::Error;
    type Socket<'a>
        = Socket
    where
        Self: 'a;

    async fn accept(&self) -> Result<(SocketAddr, Socket), std::io::Error> {
        let (remote, socket) = edge_nal::TcpAccept::accept(&self.0).await?;
        Ok((remote, Socket(socket)))
    }
}

/// edge-nal-std's connector, handing out [`Socket`]s.
struct Connector(edge_nal_std::Stack);

impl embedded_nal_async::TcpConnect for Connector {
    type Error = std::io::Error;
    type Connection<'a> = Socket;

    async fn connect(&self, remote: SocketAddr) -> Result<Socket, std::io::Error> {
        edge_nal::TcpConnect::connect(&self.0, remote).await.map(Socket)
    }
}

type AsyncConn = Conn<'static, Socket, N, L>;

/// The async pool on edge-nal-std, each operation run to completion with
/// `block_on`, beside the background closer's task (kept across operations, so a
/// close it has begun is never cancelled).
struct AsyncDriver {
    pool: &'static AsyncPool<N, L>,
    closer: &'static Closer<Socket, K>,
    clock: &'static Clock,
    acceptors: Vec<(u16, Acceptor)>,
    closer_task: Pin<Box<dyn Future<Output = ()>>>,
}

/// Run `f` to completion while the closer's task runs beside it.
fn block<T>(closer_task: &mut Pin<Box<dyn Future<Output = ()>>>, f: impl Future<Output = T>) -> T {
    future::block_on(future::or(async { Some(f.await) }, async {
        closer_task.as_mut().await;
        None
    }))
    .expect("the closer's task never ends")
}

impl Driver for AsyncDriver {
    type Conn = AsyncConn;
    const POOL_OWNS_SOCKETS: bool = false;

    fn new(config: Config) -> Self {
        // Leaked so that connections borrow them for 'static: one small pool per test.
        let config = config.with_close_linger(Duration::from_secs(5));
        let pool: &'static AsyncPool<N, L> = Box::leak(Box::new(AsyncPool::new(config)));
        let closer: &'static Closer<Socket, K> = Box::leak(Box::new(Closer::new()));
        let clock: &'static Clock = Box::leak(Box::new(Clock::new()));
        AsyncDriver {
            pool,
            closer,
            clock,
            acceptors: Vec::new(),
            closer_task: Box::pin(async move {
                closer.run(pool, clock).await;
            }),
        }
    }

    fn clock(&self) -> &Clock {
        self.clock
    }

    fn listen(&mut self, port: u16, params: ListenParams) {
        let stack = edge_nal_std::Stack::new();
        let acceptor = block(&mut self.closer_task, stack.bind(loopback(port))).expect("bind");
        self.pool.listen(port, params).expect("listen");
        self.acceptors.push((port, Acceptor(acceptor)));
    }

    fn accept(&mut self, port: u16, deadline: Instant) -> Accepted<AsyncConn> {
        let Some(at) = self.acceptors.iter().position(|(p, _)| *p == port) else {
            return Accepted::NotListening;
        };
        let (pool, clock) = (self.pool, self.clock);
        let acceptor = &self.acceptors[at].1;
        match block(
            &mut self.closer_task,
            pool.accept(acceptor, port, clock, deadline),
        ) {
            Ok(conn) => Accepted::Conn(conn),
            Err(AcceptError::TimedOut) => Accepted::TimedOut,
            Err(AcceptError::NotListening) => {
                // As the docs say: the caller drops its acceptor.
                self.acceptors.remove(at);
                Accepted::NotListening
            }
            Err(e) => panic!("accept failed: {e}"),
        }
    }

    fn read(&mut self, c: &mut AsyncConn, buf: &mut [u8], deadline: Instant) -> Result<usize, ConnError> {
        let clock = self.clock;
        block(&mut self.closer_task, c.read(buf, clock, deadline))
    }

    fn write(&mut self, c: &mut AsyncConn, data: &[u8], deadline: Instant) -> Result<usize, ConnError> {
        let clock = self.clock;
        block(&mut self.closer_task, c.write(data, true, clock, deadline))
    }

    fn close(&mut self, c: AsyncConn) {
        let (closer, clock) = (self.closer, self.clock);
        block(&mut self.closer_task, c.close(closer, clock));
    }

    fn work(&mut self, now: Instant) {
        self.pool.reap(now);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.pool.poll_at()
    }

    fn events(&mut self) -> Vec<(ConnHandle, EventKind, Option<CloseReason>)> {
        std::iter::from_fn(|| self.pool.poll_event())
            .take(64)
            .map(|e| (e.handle, e.kind, e.reason))
            .collect()
    }

    fn counters(&self) -> Counters {
        self.pool.counters()
    }

    fn free_slots(&self) -> usize {
        self.pool.free_slots()
    }

    fn report(&self, now: Instant) -> Report<N, L> {
        self.pool.report(now)
    }

    fn handle(c: &AsyncConn) -> ConnHandle {
        c.handle()
    }

    fn state(&self, c: &AsyncConn) -> ConnState {
        c.state()
    }

    fn closing(&self) -> u32 {
        self.closer.closing() as u32
    }

    fn settle(&mut self, deadline: Instant) {
        let (closer, clock) = (self.closer, self.clock);
        block(&mut self.closer_task, async {
            while closer.closing() > 0 && clock.now() < deadline {
                async_io::Timer::after(StdDuration::from_millis(2)).await;
            }
        });
        assert_eq!(self.closer.closing(), 0, "the closer did not finish");
    }

    fn connect(
        &mut self,
        remote: SocketAddr,
        timeout: Duration,
        link_down_after_ms: Option<u64>,
    ) -> Connected<AsyncConn> {
        let (pool, clock) = (self.pool, self.clock);
        let connector: &'static Connector = Box::leak(Box::new(Connector(edge_nal_std::Stack::new())));
        let start = clock.now();
        let deadline = clock.after(WAIT_MS);
        let attempt = async {
            let conn = pool
                .connect(connector, remote, 0, LinkState::Up, clock, timeout)
                .await;
            Some(conn)
        };
        // The reaper beside it, as a firmware runs it in a task of its own.
        let reaper = async {
            while clock.now() < deadline {
                let now = clock.now();
                if link_down_after_ms.is_some_and(|ms| now >= start + Duration::from_millis(ms)) {
                    pool.set_link(LinkState::Down);
                }
                pool.reap(now);
                async_io::Timer::after(StdDuration::from_millis(1)).await;
            }
            None
        };
        match block(&mut self.closer_task, future::or(attempt, reaper)) {
            Some(Ok(conn)) => Connected::Conn(conn),
            Some(Err(_)) => Connected::Failed(None),
            None => panic!("the connect neither finished nor failed in {WAIT_MS} ms"),
        }
    }
}

// ----------------------------------------------------------------------- helpers

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A client socket connected to `port`, with a small receive buffer if asked.
fn connect(port: u16, rcvbuf: Option<usize>) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n)?;
    }
    s.connect(&loopback(port).into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(StdDuration::from_millis(WAIT_MS)))?;
    s.set_write_timeout(Some(StdDuration::from_millis(WAIT_MS)))?;
    Ok(s)
}

/// How a client's read of everything ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// FIN after these bytes.
    Eof(Vec<u8>),
    /// Reset after these bytes.
    Reset(Vec<u8>),
}

/// Read until EOF or reset (at most `WAIT_MS` per read, 100 000 reads).
fn read_to_end(s: &mut TcpStream) -> End {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        match s.read(&mut buf) {
            Ok(0) => return End::Eof(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return End::Reset(got),
            Err(e) => panic!("client read: {e}"),
        }
    }
    panic!("the connection never ended");
}

/// Send RST: linger 0, then drop.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(StdDuration::ZERO))
        .expect("linger 0");
    drop(s);
}

fn join<T>(h: thread::JoinHandle<T>) -> T {
    h.join().expect("client thread panicked")
}

fn accept<D: Driver>(d: &mut D, port: u16) -> D::Conn {
    let deadline = d.clock().after(WAIT_MS);
    match d.accept(port, deadline) {
        Accepted::Conn(c) => c,
        Accepted::TimedOut => panic!("no connection accepted"),
        Accepted::NotListening => panic!("not listening on {port}"),
    }
}

/// Read until the connection reports an error; returns the bytes and the error.
fn read_until_error<D: Driver>(d: &mut D, c: &mut D::Conn) -> (Vec<u8>, ConnError) {
    let mut got = Vec::new();
    for _ in 0..10_000 {
        let mut buf = [0u8; 7];
        let deadline = d.clock().after(WAIT_MS);
        match d.read(c, &mut buf, deadline) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(ConnError::TimedOut) => panic!("read timed out after {got:?}"),
            Err(e) => return (got, e),
        }
    }
    panic!("the connection never ended");
}

/// Write everything (push), failing on any error.
fn write_all<D: Driver>(d: &mut D, c: &mut D::Conn, mut data: &[u8]) {
    for _ in 0..10_000 {
        if data.is_empty() {
            return;
        }
        let deadline = d.clock().after(WAIT_MS);
        let n = d.write(c, data, deadline).expect("write");
        data = &data[n..];
    }
    panic!("write never finished");
}

/// Write until the stack takes nothing for `refuse_ms` of real time; returns the
/// bytes written. The peer must not be reading.
fn fill<D: Driver>(d: &mut D, c: &mut D::Conn, refuse_ms: u64) -> usize {
    let chunk = [0x5au8; 16 * 1024];
    let mut written = 0;
    for _ in 0..10_000 {
        let deadline = d.clock().after(refuse_ms);
        match d.write(c, &chunk, deadline) {
            Ok(n) => written += n,
            Err(ConnError::TimedOut) => return written,
            Err(e) => panic!("write while filling: {e}"),
        }
    }
    panic!("the kernel kept taking data ({written} bytes)");
}

/// The timer work at `t` (the clock moved there first). Afterwards the next
/// deadline is never in the past: a firmware sleeping until `poll_at()` sleeps.
fn work_at<D: Driver>(d: &mut D, t: Instant) {
    d.clock().advance_to(t);
    d.work(t);
    if let Some(next) = d.poll_at() {
        assert!(next > t, "poll_at {next} is not after the work done at {t}");
    }
}

/// The pool's next deadline, checked to lie after `now`.
fn next_deadline<D: Driver>(d: &D, now: Instant) -> Instant {
    let next = d.poll_at().expect("a timer runs");
    assert!(next > now, "poll_at {next} is in the past (now {now})");
    next
}

/// The kinds of `events`, without `Accepted`: the sync pool's `accept_next` drains
/// that event as it hands the connection out, the async `accept` leaves it for
/// `poll_event` (until the slot is freed).
fn kinds(events: &[(ConnHandle, EventKind, Option<CloseReason>)]) -> Vec<EventKind> {
    events
        .iter()
        .map(|e| e.1)
        .filter(|k| *k != EventKind::Accepted)
        .collect()
}

// ------------------------------------------------------------------------- rules

/// Close is immediate: the slot is free when `close` returns, though the peer has
/// not read (so not acknowledged) what was written and the FIN cannot even be sent
/// yet. The async driver's background closer holds the socket at that moment. The
/// bytes written before the close still arrive, then FIN.
fn close_frees_the_slot_at_once<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new());
    d.listen(port, ListenParams::new(N as u8));
    let mut client = connect(port, Some(4096)).expect("connect");
    let mut c = accept(&mut d, port);
    let written = fill(&mut d, &mut c, 200);
    assert!(written > 0);
    assert_eq!(d.free_slots(), N - 1);

    d.close(c);
    assert_eq!(d.free_slots(), N, "the slot waited for the peer");
    assert_eq!(d.counters().in_use, 0);
    if !D::POOL_OWNS_SOCKETS {
        assert_eq!(
            d.closing(),
            1,
            "the closer holds the socket while the slot is free"
        );
    }

    let reader = thread::spawn(move || read_to_end(&mut client));
    d.settle(d.clock().after(WAIT_MS));
    match join(reader) {
        End::Eof(got) => assert_eq!(got.len(), written, "bytes lost at close"),
        End::Reset(got) => panic!("reset after {} of {written} bytes", got.len()),
    }
    let c = d.counters();
    assert_eq!((c.accepted, c.aborted, c.dropped_on_close), (1, 0, 0));
}

/// A connection beyond the port's cap is accepted from the stack and released at
/// once (the client sees its connection end without a byte), and counted; the held
/// connection is untouched, and the next one after it closes is served.
fn connections_beyond_the_port_cap_are_released_and_counted<D: Driver>() {
    let port = free_port();
    let (mut d, held, extra) = one_beyond_a_cap_of_one::<D>(port, Config::new());
    // Released with RST (`RejectPolicy::Abort`, the default), before any byte.
    assert_eq!(extra, End::Reset(Vec::new()));
    let c = d.counters();
    assert_eq!(
        (c.accepted, c.rejected, c.rejected_port_cap, c.rejected_pool_full),
        (1, 1, 1, 0)
    );
    assert_eq!(d.free_slots(), N - 1);
    assert_eq!(d.state(&held), ConnState::Connected);

    d.close(held);
    let _third = connect(port, None).expect("connect");
    let third = accept(&mut d, port);
    assert_eq!(d.state(&third), ConnState::Connected);
    d.close(third);
    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(d.counters().accepted, 2);
}

/// A listener with a cap of one on `port`, one connection held, and a second one
/// rejected inside accept (nothing served meanwhile): the driver, the held
/// connection and how the rejected client saw its connection end.
fn one_beyond_a_cap_of_one<D: Driver>(port: u16, config: Config) -> (D, D::Conn, End) {
    let mut d = D::new(config);
    d.listen(port, ListenParams::new(1));
    let _first = connect(port, None).expect("connect");
    let held = accept(&mut d, port);
    let extra = thread::spawn(move || {
        let mut s = connect(port, None).expect("the kernel accepts the extra connection");
        read_to_end(&mut s)
    });
    for _ in 0..50 {
        if d.counters().rejected > 0 {
            break;
        }
        let deadline = d.clock().after(200);
        if let Accepted::Conn(c) = d.accept(port, deadline) {
            panic!("served beyond the cap: slot {}", D::handle(&c).slot());
        }
    }
    let end = join(extra);
    (d, held, end)
}

/// A one-shot listener serves its first connection and stops: it is gone from the
/// report, accept says so, and a later client is refused by the kernel.
fn a_one_shot_listener_stops_after_its_first_connection<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new());
    d.listen(port, ListenParams::new(1).with_mode(ListenMode::OneShot));
    let _first = connect(port, None).expect("connect");
    let c = accept(&mut d, port);
    let now = d.clock().now();
    assert!(
        d.report(now).listeners.iter().flatten().all(|l| l.port != port),
        "the one-shot listener is still registered"
    );
    let deadline = d.clock().after(200);
    assert!(matches!(d.accept(port, deadline), Accepted::NotListening));
    match connect(port, None) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("a stopped one-shot listener still took a connection"),
    }
    // The connection it served is unaffected.
    assert_eq!(d.state(&c), ConnState::Connected);
    d.close(c);
    d.settle(d.clock().after(WAIT_MS));
    let c = d.counters();
    assert_eq!((c.accepted, c.rejected), (1, 0));
}

/// The peer's FIN makes the connection `OtherEndClosed`, and what it sent before the
/// FIN is read in full first.
fn a_peer_fin_keeps_received_data_readable<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new());
    d.listen(port, ListenParams::new(N as u8));
    let (go, wait) = mpsc::channel::<()>();
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        s.write_all(b"last words before FIN").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let _ = wait.recv_timeout(StdDuration::from_millis(WAIT_MS));
        read_to_end(&mut s)
    });
    let mut c = accept(&mut d, port);
    let (got, end) = read_until_error(&mut d, &mut c);
    assert_eq!(got, b"last words before FIN");
    assert_eq!(end, ConnError::PeerGone(ErrorClass::Closed));
    assert_eq!(d.state(&c), ConnState::OtherEndClosed);
    let now = d.clock().now();
    assert_eq!(
        d.report(now).slots[D::handle(&c).slot()].close_reason,
        Some(CloseReason::PeerGone(ErrorClass::Closed))
    );
    let events = d.events();
    assert_eq!(kinds(&events), [EventKind::PeerClosed]);
    assert_eq!(d.counters().peer_closed, 1);
    d.close(c);
    assert_eq!(d.free_slots(), N);
    go.send(()).ok();
    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(join(client), End::Eof(Vec::new()));
    let c = d.counters();
    assert_eq!((c.peer_closed, c.aborted), (1, 0));
}

/// After the peer's FIN the connection is half-closed: the application can still
/// answer (HTTP/1.0 clients that shut down their side after the request).
fn a_half_closed_connection_can_still_answer<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new());
    d.listen(port, ListenParams::new(N as u8));
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        s.write_all(b"GET /status\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_to_end(&mut s)
    });
    let mut c = accept(&mut d, port);
    let (got, end) = read_until_error(&mut d, &mut c);
    assert_eq!(
        (got.as_slice(), end),
        (&b"GET /status\n"[..], ConnError::PeerGone(ErrorClass::Closed))
    );
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(d.write(&mut c, b"200 ok\n", deadline), Ok(7));
    d.close(c);
    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(join(client), End::Eof(b"200 ok\n".to_vec()));
}

/// A peer that resets is gone — `OtherEndClosed` with class `Reset`, counted as a
/// peer close — not a fatal error (nothing counted as aborted).
fn a_reset_peer_is_peer_gone_not_fatal<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new());
    d.listen(port, ListenParams::new(N as u8));
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).unwrap();
        reset(s);
        hello
    });
    let mut c = accept(&mut d, port);
    write_all(&mut d, &mut c, b"hello");
    assert_eq!(&join(client), b"hello");
    let (got, end) = read_until_error(&mut d, &mut c);
    assert!(got.is_empty());
    assert_eq!(end, ConnError::PeerGone(ErrorClass::Reset));
    assert_eq!(d.state(&c), ConnState::OtherEndClosed);
    let now = d.clock().now();
    assert_eq!(
        d.report(now).slots[D::handle(&c).slot()].close_reason,
        Some(CloseReason::PeerGone(ErrorClass::Reset))
    );
    // Nothing more can be sent to a reset peer.
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(
        d.write(&mut c, b"x", deadline),
        Err(ConnError::PeerGone(ErrorClass::Reset))
    );
    assert_eq!(kinds(&d.events()), [EventKind::PeerClosed]);
    d.close(c);
    assert_eq!(d.free_slots(), N);
    let c = d.counters();
    assert_eq!((c.peer_closed, c.aborted, c.reaped), (1, 0, 0));
}

/// A peer that never reads: once the kernel takes nothing more, the connection is
/// reaped after the stall grace — not a millisecond before — and the application
/// learns why.
fn a_peer_that_never_reads_is_reaped_after_the_grace<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new().with_stall_grace(GRACE));
    d.listen(port, ListenParams::new(N as u8));
    let mut client = connect(port, Some(4096)).expect("connect");
    let mut c = accept(&mut d, port);
    fill(&mut d, &mut c, 200);
    // The first reading: the baseline. Progress, if any, is no later than now.
    let t0 = d.clock().now();
    work_at(&mut d, t0);
    work_at(&mut d, t0 + ms(GRACE.as_millis() - 1));
    assert_eq!(d.state(&c), ConnState::Connected, "reaped before the grace");
    assert_eq!(d.counters().reaped, 0);

    // Readings at their deadlines (as a loop sleeping until poll_at would do).
    let mut reaped_at = None;
    for _ in 0..64 {
        let t = next_deadline(&d, d.clock().now());
        work_at(&mut d, t);
        if d.counters().reaped > 0 {
            reaped_at = Some(t);
            break;
        }
    }
    let reaped_at = reaped_at.expect("never reaped");
    assert!(
        reaped_at >= t0 + GRACE,
        "reaped at {reaped_at}, grace ends at {}",
        t0 + GRACE
    );
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(
        d.write(&mut c, b"x", deadline),
        Err(ConnError::Closed(CloseReason::Stalled))
    );
    let events = d.events();
    assert_eq!(
        events.last().map(|e| (e.1, e.2)),
        Some((EventKind::Reaped, Some(CloseReason::Stalled)))
    );
    if D::POOL_OWNS_SOCKETS {
        assert_eq!(
            d.free_slots(),
            N,
            "the sync pool aborts a reaped connection itself"
        );
    } else {
        assert_eq!(d.state(&c), ConnState::Aborted, "kept until the task lets go");
    }
    d.close(c);
    assert_eq!(d.free_slots(), N);
    // The client's connection ends (RST from the sync pool's abort; FIN after the
    // queued bytes from the async closer).
    let reader = thread::spawn(move || read_to_end(&mut client));
    d.settle(d.clock().after(WAIT_MS));
    join(reader);
    let c = d.counters();
    assert_eq!((c.reaped, c.aborted, c.idle_closed), (1, 0, 0));
}

/// A reaped connection is aborted, not closed: its peer sees RST, and the bytes
/// still queued for a peer that stopped reading are dropped, not sent on.
fn a_reaped_connection_is_aborted<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new().with_stall_grace(GRACE));
    d.listen(port, ListenParams::new(N as u8));
    let mut client = connect(port, Some(4096)).expect("connect");
    let mut c = accept(&mut d, port);
    let written = fill(&mut d, &mut c, 200);
    let t0 = d.clock().now();
    work_at(&mut d, t0);
    // A blocked connection is read every eighth of the pressure grace (0.5 s): 120
    // readings to the 60 s grace.
    for _ in 0..256 {
        if d.counters().reaped > 0 {
            break;
        }
        let t = next_deadline(&d, d.clock().now());
        work_at(&mut d, t);
    }
    assert_eq!(d.counters().reaped, 1);
    // What the application does with any connection that ended: close it.
    d.close(c);
    let reader = thread::spawn(move || read_to_end(&mut client));
    d.settle(d.clock().after(WAIT_MS));
    match join(reader) {
        End::Reset(got) => assert!(got.len() < written),
        End::Eof(got) => panic!(
            "closed gracefully: all {} of {written} bytes sent on, then FIN",
            got.len()
        ),
    }
}

/// A slow reader that keeps draining is never reaped, however many grace periods
/// the transfer takes: the server's writes are cut short again and again (the stall
/// watch is armed), but between two readings the reader always drains something.
fn a_slow_reader_that_keeps_draining_is_not_reaped<D: Driver>() {
    // More than the kernel's largest send buffer (tcp_wmem: 4 MiB by default), so
    // the writer is held back by the reader, not by nothing.
    const TOTAL: usize = 8 << 20;
    const PER_ROUND: usize = 256 * 1024;
    let port = free_port();
    let mut d = D::new(Config::new().with_stall_grace(GRACE));
    d.listen(port, ListenParams::new(N as u8));
    let (token, tokens) = mpsc::channel::<()>();
    let (drained, drains) = mpsc::channel::<usize>();
    let client = thread::spawn(move || {
        let mut s = connect(port, Some(4096)).expect("connect");
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        // Up to PER_ROUND bytes per token, until the test stops sending them.
        while tokens.recv_timeout(StdDuration::from_millis(WAIT_MS)).is_ok() {
            let mut round = 0;
            while round < PER_ROUND && total + round < TOTAL {
                match s.read(&mut buf[..(PER_ROUND - round).min(64 * 1024)]) {
                    Ok(0) => break,
                    Ok(n) => round += n,
                    Err(e) => panic!("slow reader: {e}"),
                }
            }
            total += round;
            if drained.send(round).is_err() || round == 0 {
                break;
            }
        }
        total
    });
    let mut c = accept(&mut d, port);
    let data = vec![0xa5u8; TOTAL];
    let (mut written, mut received, mut held_back) = (0, 0, 0u32);
    let t0 = d.clock().now();
    let mut t = t0;
    for _ in 0..2 * TOTAL / PER_ROUND + 10 {
        if received >= TOTAL {
            break;
        }
        // A quarter of the grace passes between rounds (virtual time).
        t = t + ms(GRACE.as_millis() / 4);
        d.clock().advance_to(t);
        if written < TOTAL {
            let deadline = d.clock().after(300);
            match d.write(&mut c, &data[written..], deadline) {
                Ok(n) => written += n,
                Err(ConnError::TimedOut) => {}
                Err(e) => panic!("write to a slow reader: {e}"),
            }
            // Cut short: bytes are pending and the stall watch runs.
            if written < TOTAL && d.poll_at().is_some() {
                held_back += 1;
            }
        }
        t = d.clock().now();
        work_at(&mut d, t);
        assert_eq!(d.state(&c), ConnState::Connected, "a slow reader was reaped");
        token.send(()).expect("reader gone");
        received += drains
            .recv_timeout(StdDuration::from_millis(WAIT_MS))
            .expect("the reader stopped");
    }
    drop(token);
    assert_eq!((written, received), (TOTAL, TOTAL));
    assert_eq!(join(client), TOTAL);
    assert!(
        held_back >= 8,
        "the reader held the writer back only {held_back} times"
    );
    assert!(
        t.saturating_since(t0) >= Duration::from_millis(GRACE.as_millis() * 4),
        "the transfer spanned less than four grace periods"
    );
    assert_eq!(d.counters().reaped, 0);
    d.close(c);
    d.settle(d.clock().after(WAIT_MS));
}

/// The idle timeout ends a connection with no traffic at exactly `last activity +
/// idle_timeout` (what `poll_at` says), and the application learns why.
fn the_idle_timeout_ends_a_silent_connection<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new().with_idle_timeout(Some(IDLE)));
    d.listen(port, ListenParams::new(N as u8));
    let mut client = connect(port, None).expect("connect");
    let before = d.clock().now();
    let mut c = accept(&mut d, port);
    let after = d.clock().now();
    let due = next_deadline(&d, after);
    assert!(
        due >= before + IDLE && due <= after + IDLE,
        "idle deadline {due} not {IDLE} after the accept ({before}..{after})"
    );
    work_at(&mut d, due);
    assert_eq!(d.counters().idle_closed, 1);
    let mut buf = [0u8; 8];
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(
        d.read(&mut c, &mut buf, deadline),
        Err(ConnError::Closed(CloseReason::Idle))
    );
    assert_eq!(
        d.events().last().map(|e| (e.1, e.2)),
        Some((EventKind::Reaped, Some(CloseReason::Idle)))
    );
    if D::POOL_OWNS_SOCKETS {
        assert_eq!(d.free_slots(), N);
    } else {
        assert_eq!(d.state(&c), ConnState::Aborted, "kept until the task lets go");
    }
    d.close(c);
    assert_eq!(d.free_slots(), N);
    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(read_to_end(&mut client), End::Eof(Vec::new()));
}

/// Not a millisecond early: one millisecond before the idle deadline the
/// connection is still open; traffic moves the deadline.
fn the_idle_timeout_is_not_early_and_traffic_restarts_it<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new().with_idle_timeout(Some(IDLE)));
    d.listen(port, ListenParams::new(N as u8));
    let mut client = connect(port, None).expect("connect");
    let mut c = accept(&mut d, port);
    let due = next_deadline(&d, d.clock().now());
    let early = Instant::from_millis(due.as_millis() - 1);
    work_at(&mut d, early);
    assert_eq!(d.state(&c), ConnState::Connected, "idle-closed early");
    // Traffic at `early` restarts the timer.
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(d.read(&mut c, &mut buf, deadline), Ok(4));
    let now = d.clock().now();
    let moved = next_deadline(&d, now);
    assert!(
        moved >= early + IDLE,
        "deadline {moved} not restarted by traffic at {early}"
    );
    work_at(&mut d, due);
    assert_eq!(d.state(&c), ConnState::Connected);
    work_at(&mut d, moved);
    assert_eq!(d.counters().idle_closed, 1);
    d.close(c);
    d.settle(d.clock().after(WAIT_MS));
}

/// A connection left ended (`OtherEndClosed` after the peer's FIN) that the
/// application never closes is freed `abandoned_after` later, and its handle then
/// says why.
fn abandoned_after_frees_a_slot_left_ended<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new().with_abandoned_after(Some(ABANDONED)));
    d.listen(port, ListenParams::new(N as u8));
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        s.write_all(b"bye").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_to_end(&mut s)
    });
    let before = d.clock().now();
    let mut c = accept(&mut d, port);
    let (got, end) = read_until_error(&mut d, &mut c);
    let after = d.clock().now();
    assert_eq!(
        (got.as_slice(), end),
        (&b"bye"[..], ConnError::PeerGone(ErrorClass::Closed))
    );
    assert_eq!(d.state(&c), ConnState::OtherEndClosed);
    let due = next_deadline(&d, after);
    assert!(
        due >= before + ABANDONED && due <= after + ABANDONED,
        "abandoned deadline {due} not {ABANDONED} after the FIN ({before}..{after})"
    );
    work_at(&mut d, Instant::from_millis(due.as_millis() - 1));
    assert_eq!(d.state(&c), ConnState::OtherEndClosed, "freed early");
    work_at(&mut d, due);
    assert_eq!(d.free_slots(), N);
    assert_eq!(d.counters().abandoned, 1);
    let mut buf = [0u8; 4];
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(
        d.read(&mut c, &mut buf, deadline),
        Err(ConnError::Closed(CloseReason::Abandoned))
    );
    // Closing the forgotten handle now is harmless (idempotent) and frees nothing
    // twice.
    d.close(c);
    assert_eq!(d.free_slots(), N);
    d.settle(d.clock().after(WAIT_MS));
    join(client);
    let c = d.counters();
    assert_eq!((c.abandoned, c.peer_closed, c.in_use), (1, 1, 0));
}

/// One scenario with every kind of ending: served and closed, rejected by the cap,
/// peer FIN, peer reset, idle timeout, stall. Returns the counters and the event
/// kinds, to be compared between the drivers.
fn scenario<D: Driver>() -> (Counters, Vec<EventKind>) {
    let port = free_port();
    let config = Config::new()
        .with_idle_timeout(Some(IDLE))
        .with_stall_grace(GRACE);
    let mut d = D::new(config);
    d.listen(port, ListenParams::new(2));
    let mut events = Vec::new();

    // Served: request, response, close.
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        s.write_all(b"ping").unwrap();
        read_to_end(&mut s)
    });
    let mut c = accept(&mut d, port);
    let mut buf = [0u8; 4];
    let deadline = d.clock().after(WAIT_MS);
    assert_eq!(d.read(&mut c, &mut buf, deadline), Ok(4));
    write_all(&mut d, &mut c, b"pong");
    d.close(c);
    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(join(client), End::Eof(b"pong".to_vec()));
    events.extend(kinds(&d.events()));

    // Two held, a third rejected by the cap.
    let _a = connect(port, None).expect("connect");
    let a = accept(&mut d, port);
    let _b = connect(port, None).expect("connect");
    let b = accept(&mut d, port);
    let _extra = connect(port, None).expect("connect");
    for _ in 0..50 {
        if d.counters().rejected > 0 {
            break;
        }
        let deadline = d.clock().after(200);
        assert!(!matches!(d.accept(port, deadline), Accepted::Conn(_)));
    }
    d.close(a);
    d.close(b);
    events.extend(kinds(&d.events()));

    // Peer FIN, then the application closes.
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        s.shutdown(Shutdown::Write).unwrap();
        read_to_end(&mut s)
    });
    let mut c = accept(&mut d, port);
    let (_, end) = read_until_error(&mut d, &mut c);
    assert_eq!(end, ConnError::PeerGone(ErrorClass::Closed));
    d.close(c);
    d.settle(d.clock().after(WAIT_MS));
    join(client);
    events.extend(kinds(&d.events()));

    // Peer reset.
    let client = thread::spawn(move || {
        let mut s = connect(port, None).expect("connect");
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
        reset(s);
    });
    let mut c = accept(&mut d, port);
    write_all(&mut d, &mut c, b"!");
    join(client);
    let (_, end) = read_until_error(&mut d, &mut c);
    assert_eq!(end, ConnError::PeerGone(ErrorClass::Reset));
    d.close(c);
    events.extend(kinds(&d.events()));

    // Idle.
    let _idle = connect(port, None).expect("connect");
    let c = accept(&mut d, port);
    let due = next_deadline(&d, d.clock().now());
    work_at(&mut d, due);
    d.close(c);
    events.extend(kinds(&d.events()));

    // Stall.
    let _stalled = connect(port, Some(4096)).expect("connect");
    let mut c = accept(&mut d, port);
    fill(&mut d, &mut c, 200);
    let t0 = d.clock().now();
    work_at(&mut d, t0);
    // A blocked connection is read every eighth of the pressure grace (0.5 s): 120
    // readings to the 60 s grace.
    for _ in 0..256 {
        if d.counters().reaped > 0 {
            break;
        }
        let t = next_deadline(&d, d.clock().now());
        work_at(&mut d, t);
    }
    d.close(c);
    events.extend(kinds(&d.events()));

    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(d.free_slots(), N);
    assert_eq!(d.poll_at(), None, "a timer still runs with every slot free");
    (d.counters(), events)
}

/// The same scenario gives the same counters and the same events on both drivers.
#[test]
fn counters_and_events_agree_between_drivers() {
    let (sync_counters, sync_events) = scenario::<SyncDriver>();
    let (async_counters, async_events) = scenario::<AsyncDriver>();
    assert_eq!(sync_counters, async_counters);
    assert_eq!(sync_events, async_events);
    let c = sync_counters;
    assert_eq!(
        (
            c.accepted,
            c.rejected,
            c.rejected_port_cap,
            c.peer_closed,
            c.idle_closed,
            c.reaped,
            c.aborted,
            c.high_water,
            c.in_use
        ),
        (7, 1, 1, 2, 1, 1, 0, 2, 0)
    );
    use EventKind::*;
    assert_eq!(sync_events, [PeerClosed, PeerClosed, Reaped, Reaped]);
}

/// A listener that never completes a handshake: its accept queue (backlog 0) is
/// full, so the kernel drops further SYNs and a connect to it stays under way.
fn silent_server() -> (TcpListener, TcpStream, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&loopback(0).into()).unwrap();
    s.listen(0).unwrap();
    let listener: TcpListener = s.into();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).expect("the one queued connection");
    (listener, filler, addr)
}

/// The application's view of a failed connect, the same from both drivers: a
/// `ConnectFailed` event with `reason`, counted once; a sync handle to it is `Aborted`
/// and closing it frees the slot.
fn assert_connect_failed<D: Driver>(d: &mut D, outcome: Connected<D::Conn>, reason: CloseReason) {
    let failed = match outcome {
        Connected::Conn(_) => panic!("connected to a server that never answers"),
        Connected::Failed(c) => c,
    };
    let events = d.events();
    assert!(
        events
            .iter()
            .any(|e| (e.1, e.2) == (EventKind::ConnectFailed, Some(reason))),
        "{events:?}"
    );
    assert_eq!(d.counters().connect_failed, 1);
    match failed {
        Some(c) => {
            assert!(D::POOL_OWNS_SOCKETS);
            assert_eq!(d.state(&c), ConnState::Aborted, "the failure stays visible");
            d.close(c);
        }
        None => assert!(!D::POOL_OWNS_SOCKETS),
    }
    assert_eq!(d.free_slots(), N);
}

/// A connect past its deadline fails with `ConnectTimeout`.
fn a_connect_past_its_deadline_fails_with_connect_timeout<D: Driver>() {
    let (_listener, _filler, addr) = silent_server();
    let mut d = D::new(Config::new());
    let outcome = d.connect(addr, ms(200), None);
    assert_connect_failed(&mut d, outcome, CloseReason::ConnectTimeout);
}

/// The link going down fails a connect under way at the next timer work, long before
/// its deadline: `ConnectFailed(NoRoute)`.
fn a_link_drop_mid_connect_fails_the_connect<D: Driver>() {
    let (_listener, _filler, addr) = silent_server();
    let mut d = D::new(Config::new());
    let outcome = d.connect(addr, GRACE, Some(50));
    assert_connect_failed(&mut d, outcome, CloseReason::ConnectFailed(ErrorClass::NoRoute));
}

/// With `hold_ended`, a connection the idle timeout ended stays `Aborted` (reason
/// `Idle`, a `Reaped` event) until the application closes it — in both drivers — and
/// the peer then sees FIN, not RST.
fn the_idle_timeout_with_hold_ended_keeps_the_slot_until_closed<D: Driver>() {
    let port = free_port();
    let mut d = D::new(Config::new().with_idle_timeout(Some(IDLE)).with_hold_ended(true));
    d.listen(port, ListenParams::new(N as u8));
    let mut client = connect(port, None).expect("connect");
    let c = accept(&mut d, port);
    let due = next_deadline(&d, d.clock().now());
    work_at(&mut d, due);
    assert_eq!(d.counters().idle_closed, 1);
    assert_eq!(
        d.state(&c),
        ConnState::Aborted,
        "held until the application closes it"
    );
    assert_eq!(d.free_slots(), N - 1);
    let slot = D::handle(&c).slot();
    assert_eq!(
        d.report(d.clock().now()).slots[slot].close_reason,
        Some(CloseReason::Idle)
    );
    assert_eq!(
        d.events().last().map(|e| (e.1, e.2)),
        Some((EventKind::Reaped, Some(CloseReason::Idle)))
    );
    d.close(c);
    assert_eq!(d.free_slots(), N);
    d.settle(d.clock().after(WAIT_MS));
    assert_eq!(read_to_end(&mut client), End::Eof(Vec::new()));
}

/// Under `RejectPolicy::Close` a connection beyond the port's cap is released with
/// FIN (the client reads a clean end), counted.
fn connections_beyond_the_cap_are_closed_with_fin_under_reject_close<D: Driver>() {
    let port = free_port();
    let config = Config::new().with_reject(RejectPolicy::Close);
    let (mut d, held, extra) = one_beyond_a_cap_of_one::<D>(port, config);
    assert_eq!(extra, End::Eof(Vec::new()));
    assert_eq!(d.counters().rejected_port_cap, 1);
    d.close(held);
    d.settle(d.clock().after(WAIT_MS));
}

/// Instantiate every rule for both drivers. `#[async_pool(...)]` before a rule puts
/// an attribute on its async instantiation only (a known difference, stated there).
macro_rules! rule_tests {
    ($($(#[async_pool($($async_attr:tt)*)])? $rule:ident),* $(,)?) => {
        mod sync_pool {
            $(#[test] fn $rule() { super::$rule::<super::SyncDriver>() })*
        }
        mod async_pool {
            $($(#[$($async_attr)*])? #[test] fn $rule() { super::$rule::<super::AsyncDriver>() })*
        }
    };
}

rule_tests!(
    close_frees_the_slot_at_once,
    connections_beyond_the_port_cap_are_released_and_counted,
    a_one_shot_listener_stops_after_its_first_connection,
    a_peer_fin_keeps_received_data_readable,
    a_half_closed_connection_can_still_answer,
    a_reset_peer_is_peer_gone_not_fatal,
    a_peer_that_never_reads_is_reaped_after_the_grace,
    a_reaped_connection_is_aborted,
    a_slow_reader_that_keeps_draining_is_not_reaped,
    the_idle_timeout_ends_a_silent_connection,
    the_idle_timeout_is_not_early_and_traffic_restarts_it,
    abandoned_after_frees_a_slot_left_ended,
    a_connect_past_its_deadline_fails_with_connect_timeout,
    a_link_drop_mid_connect_fails_the_connect,
    the_idle_timeout_with_hold_ended_keeps_the_slot_until_closed,
    connections_beyond_the_cap_are_closed_with_fin_under_reject_close,
);
