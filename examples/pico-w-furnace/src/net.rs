//! The web server (feature `net`): the Pico W firmware's, and the same code in both
//! host binaries — `furnace-sim` (edge-nal-std sockets on the host's TCP) and
//! `furnace-net-host` (embassy-net on a TAP device).
//!
//! [`WEB_TASKS`] tasks take connections through one netpool [`AsyncPool`] ([`POOL`])
//! from an accept [`Backlog`] ([`WebBacklog`], its own task: [`backlog_task`]) that
//! keeps [`BACKLOG`] accepts armed on the stack's edge-nal `TcpAccept`, so a burst larger
//! than the web tasks waits (at most [`BACKLOG_WAIT`]) instead of being refused by
//! the stack; they read one request within [`REQUEST_TIMEOUT`], render
//! it with [`crate::web`] from copies of the shared state, hand the response to the
//! stack within [`WRITE_TIMEOUT`] and close with [`Conn::close`](netpool::asynch::Conn::close): the slot and the task
//! are free at once, and the socket goes to a background [`Closer`] ([`WebCloser`],
//! [`CLOSING`] places, its own task: [`closer_task`]) that delivers the rest of the
//! response and the FIN within [`CLOSE_TIMEOUT`], else resets. A link task
//! ([`link_and_reaper`]) publishes the link state read from the [`Interface`] and runs the
//! pool's reaper every [`TICK`].
//!
//! Everything here is generic over the network: an edge-nal acceptor and its sockets
//! (`TcpAccept`, whose sockets netpool's `Conn`, `Backlog` and `Closer` take), and an
//! [`Interface`] the link is read from. [`embassy`] (feature `embassy-net`) is the
//! board's: embassy-net's `Stack`, netpool's leased acceptor over embassy-net sockets
//! (`netpool::asynch::embassy::LeasedTcp`, which keeps the handshake lease), the
//! socket buffers ([`TcpBuffers`](embassy::TcpBuffers),
//! [`Resources`](embassy::Resources)).
//!
//! What the caller provides is the board: the interface and its acceptor (CYW43 and
//! embassy-net on the Pico W; a TAP device and embassy-net, or the host's TCP, on the
//! host), the acceptor, the backlog and the closer in `StaticCell`s (see [`WebCloser`]
//! for why not `static`s), the executor and its tasks (embassy tasks cannot be
//! generic, so each binary declares its own and calls [`web_server`],
//! [`backlog_task`], [`closer_task`] and [`link_and_reaper`] from them):
//!
//! ```ignore
//! use pico_w_furnace::net::embassy::{Acceptor, Socket};
//!
//! #[embassy_executor::task(pool_size = WEB_TASKS)]
//! async fn web_task(
//!     id: usize,
//!     stack: Stack<'static>,
//!     backlog: &'static WebBacklog<Socket<'static>>,
//!     closer: &'static WebCloser<Socket<'static>>,
//! ) -> ! {
//!     pico_w_furnace::net::web_server(id, stack, backlog, closer, &SHARED).await
//! }
//!
//! #[embassy_executor::task]
//! async fn backlog_task(backlog: &'static WebBacklog<Socket<'static>>, acceptor: &'static Acceptor) -> ! {
//!     pico_w_furnace::net::embassy::backlog_task(backlog, acceptor).await
//! }
//!
//! #[embassy_executor::task]
//! async fn closer_task(closer: &'static WebCloser<Socket<'static>>) -> ! {
//!     pico_w_furnace::net::closer_task(closer).await
//! }
//! ```
//!
//! Nothing here is awaited by the control loop: the web tasks render from copies
//! (`Shared::snapshot`, `Shared::copy_history`) and post commands to the mailbox.
//! What the tasks did is counted in [`stats`] and [`tasks`] (a critical section each),
//! next to the pool's own [`AsyncPool::report`] and [`AsyncPool::backlog_counters`]
//! and the closer's counters ([`closer_stats`]).
//!
//! netpool's async API is used in five places only: the accept in [`web_server`],
//! the connection I/O and the close in `serve`, the backlog in [`backlog_task`], the
//! closer in [`closer_task`], the reaper in [`link_and_reaper`].

use core::net::Ipv4Addr;

use edge_nal::{TcpAccept, TcpShutdown};
use embedded_io_async::{Read, Write};
use netpool::asynch::{AcceptError, AsyncPool, Backlog, Closer, Timer};
use netpool::{ConnError, Duration, Instant, LinkState, ListenParams};

use crate::history::History;
use crate::shared::Shared;
use crate::web::{self, Handled, Incomplete, Response, View, REQUEST_BUF, RESPONSE_BUF};

#[cfg(feature = "embassy-net")]
pub mod embassy;
mod record;

pub use record::{closer_stats, stats, tasks, Phase, TaskStatus, WebStats};
use record::{count_response, record, set_phase};

/// Logging through defmt (feature `defmt`, on bare metal: the firmware), `log`
/// (feature `log`: the host) or nowhere. defmt needs the global logger only firmware
/// links, so on a hosted target (a `--all-features` build) `defmt` does not log.
/// Format strings use only `{}`, which both understand; arguments implement both
/// `Display` and `defmt::Format`.
macro_rules! net_log {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(all(feature = "defmt", target_os = "none"))]
        defmt::$level!($($arg)*);
        #[cfg(all(feature = "log", not(all(feature = "defmt", target_os = "none"))))]
        log::$level!($($arg)*);
        #[cfg(not(any(all(feature = "defmt", target_os = "none"), feature = "log")))]
        {
            let _ = format_args!($($arg)*);
        }
    }};
}

/// HTTP port.
pub const HTTP_PORT: u16 = 80;
/// Web tasks, netpool slots and TCP sockets (one per concurrent connection).
pub const WEB_TASKS: usize = 4;
/// Sockets the [`WebCloser`] finishes at once (`K` of netpool's [`Closer`]): closed
/// connections whose FIN (and the tail of their response) is still under way, each
/// keeping its TCP buffers ([`TCP_TX`] + [`TCP_RX`] = 3 KiB) and its embassy-net socket
/// until it is done. One per web task: four slow browsers can be finishing while the
/// four tasks serve the next ones. A close that finds all four busy waits for a place
/// (netpool's policy, [`Conn::close`](netpool::asynch::Conn::close)), and resets only if
/// none frees within [`CLOSE_TIMEOUT`] + the release deadline (counted in the pool's
/// [`CloserCounters`](netpool::CloserCounters): `waited`, `overflow`).
pub const CLOSING: usize = WEB_TASKS;
/// Connections accepted ahead of the web tasks (`K` of netpool's [`Backlog`]): accepts
/// kept armed, each holding an embassy-net socket and its TCP buffers ([`TCP_TX`] +
/// [`TCP_RX`] = 3 KiB) while it listens or while its connection waits for a web task.
/// smoltcp has no SYN queue: a listening socket absorbs one SYN and a SYN that finds
/// none is refused (RST). Eight absorb a browser's burst of six parallel connections
/// plus a poller's, while the four web tasks serve earlier ones.
pub const BACKLOG: usize = 8;
/// A connection waits at most this long in the [`WebBacklog`] for a web task, then it
/// is reset (counted in `BacklogCounters::expired`). A task serves a request within
/// [`REQUEST_TIMEOUT`] + [`WRITE_TIMEOUT`] at worst, within milliseconds usually.
pub const BACKLOG_WAIT: Duration = Duration::from_secs(5);
/// Per-socket TCP transmit buffer (embassy-net; the host's TCP has its own).
pub const TCP_TX: usize = 2048;
/// Per-socket TCP receive buffer (embassy-net; the host's TCP has its own).
pub const TCP_RX: usize = 1024;
/// A socket beyond the backlog's accepts for half-open handshakes (netpool's
/// handshake lease keeps them apart from the room: a free socket listens in their
/// place; with none left, the overdue one seen longest ago gives way).
pub const LEASE_SPARE: usize = 1;
/// Every TCP socket of the web server: one per web task, per backlog place, per
/// closing socket, and the lease's spare ([`LEASE_SPARE`]).
pub const SOCKETS: usize = WEB_TASKS + BACKLOG + CLOSING + LEASE_SPARE;

/// A request must arrive completely within this time of its accept (else 408).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole response must be handed to the stack within this time (else RST).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The [`WebCloser`]'s linger: the rest of the response, FIN, the peer's ACK of it all
/// and the peer's own FIN within this time of the close, else RST.
///
/// Sized from smoltcp's retransmission schedule, not from a browser's speed (which
/// finishes in milliseconds): smoltcp retransmits after an RTO of at least 1 s that
/// doubles each time (the tail sent again at +1, +3, +7 s), or that starts at 2 s when
/// an earlier retransmission (a SYN-ACK's) backed it off. At 2 s, one lost
/// retransmission of a response's tail or of the FIN was enough for the closer to
/// reset a connection that was still delivering: with 5 % loss each way on the TAP
/// test about 1 close in 100 reset the browser before it had its whole response
/// (`tap_net`, `loss`). 8 s lets the tail and the FIN be sent four times (three after
/// a backed-off RTO). The cost: a peer that is gone holds its closer place (one of
/// [`CLOSING`]) up to 8 s instead of 2 before its RST.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(8);
/// An accept gives up and starts again after this long (re-checking the link).
pub const ACCEPT_WINDOW: Duration = Duration::from_secs(30);
/// A response whose bytes the stack refuses for this long is given up by the reaper.
/// Shorter than [`WRITE_TIMEOUT`]: a peer that reads nothing is dropped after the
/// grace, one that reads slowly but keeps reading is bounded by the write deadline.
/// Longer than two of smoltcp's retransmissions (1 + 2 s, or 2 + 4 s after a
/// backed-off RTO): at 4 s, a response whose segment was lost twice on a lossy link
/// (the page is larger than [`TCP_TX`], so its task waits for the peer's ACKs) was
/// reaped, and its browser reset, while the peer was still there (`tap_net`, `loss`).
pub const STALL_GRACE: Duration = Duration::from_secs(8);
/// A connection with no I/O at all for this long is reaped (a backstop: every phase
/// of a request has a shorter deadline).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the link state is read and the reaper runs.
pub const TICK: embassy_time::Duration = embassy_time::Duration::from_millis(500);
/// A failed accept is retried after this long.
const ACCEPT_BACKOFF: embassy_time::Duration = embassy_time::Duration::from_millis(500);

/// The connection pool: slot bookkeeping for the web tasks.
pub static POOL: AsyncPool<WEB_TASKS> = AsyncPool::new(
    netpool::Config::new()
        .with_idle_timeout(Some(IDLE_TIMEOUT))
        .with_stall_grace(STALL_GRACE)
        .with_close_linger(CLOSE_TIMEOUT),
);

/// The background closer of the web server's sockets ([`CLOSING`] at once, each given
/// [`CLOSE_TIMEOUT`], the [`POOL`]'s `close_linger`); create it with [`closer`] and run
/// it with [`closer_task`].
///
/// `S` is the stack's socket. On the board it lives in a `StaticCell`, not a
/// `static`: the board's socket (netpool's `LeasedSocket`) holds an embassy-net
/// socket and a `RefMut` of it, so it is not `Send`, the `Closer` holding them is not `Sync`, and a
/// `static` must be. That is no loss here: the sockets
/// (and the embassy-net stack they point into) belong to one thread-mode executor
/// anyway, and embassy-executor 0.10's `Spawner::spawn` takes tasks whose arguments
/// are not `Send` (only `SendSpawner` asks for `Send`), so a `&'static WebCloser`
/// is passed to the web tasks and the closer task like the `Stack`. Being `!Sync`
/// keeps the reference on that executor: other threads (the host binary's report)
/// read its counters from the pool ([`closer_stats`]). The sockets it
/// takes must be `'static` too, so the acceptor they borrow lives in a `StaticCell`.
pub type WebCloser<S> = Closer<S, CLOSING>;

/// The accept backlog of the web server ([`BACKLOG`] places on [`HTTP_PORT`], each
/// connection waiting at most [`BACKLOG_WAIT`]); create it with [`backlog`] and run it
/// with [`backlog_task`]. On the board in a `StaticCell`, for the reason given at
/// [`WebCloser`].
pub type WebBacklog<S> = Backlog<S, BACKLOG>;

/// An empty [`WebBacklog`].
pub const fn backlog<S>() -> WebBacklog<S> {
    Backlog::new(HTTP_PORT, BACKLOG_WAIT)
}

/// An idle [`WebCloser`] (its linger is the [`POOL`]'s `close_linger`,
/// [`CLOSE_TIMEOUT`]).
pub const fn closer<S>() -> WebCloser<S> {
    Closer::new()
}

/// netpool's clock: embassy-time, in milliseconds.
#[derive(Copy, Clone, Debug, Default)]
pub struct EmbassyTimer;

impl Timer for EmbassyTimer {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    async fn at(&self, deadline: Instant) {
        let ms = deadline.as_millis();
        let at = if ms >= embassy_time::Instant::MAX.as_millis() {
            embassy_time::Instant::MAX
        } else {
            embassy_time::Instant::from_millis(ms)
        };
        embassy_time::Timer::at(at).await
    }
}

/// The network interface the web tasks read the link from: the driver's link and
/// the interface's configuration (its address). embassy-net's `Stack` is one
/// ([`embassy`]); `furnace-sim` has its own over the host's TCP.
#[allow(async_fn_in_trait)]
pub trait Interface {
    /// Whether the driver reports the link up (WiFi joined).
    fn is_link_up(&self) -> bool;
    /// Whether the interface has its configuration (an address, e.g. from DHCP).
    fn is_config_up(&self) -> bool;
    /// Until [`is_config_up`](Self::is_config_up).
    async fn wait_config_up(&self);
    /// The interface's IPv4 address, while configured.
    fn address(&self) -> Option<Ipv4Addr>;
    /// The port the acceptor listens on, for the log: [`HTTP_PORT`] on the board.
    fn port(&self) -> u16 {
        HTTP_PORT
    }
}

/// A reference to an interface is one (the host binaries pass `&'static` ones; the
/// board passes embassy-net's `Stack`, a `Copy` handle, by value).
impl<T: Interface + ?Sized> Interface for &T {
    fn is_link_up(&self) -> bool {
        T::is_link_up(self)
    }
    fn is_config_up(&self) -> bool {
        T::is_config_up(self)
    }
    async fn wait_config_up(&self) {
        T::wait_config_up(self).await
    }
    fn address(&self) -> Option<Ipv4Addr> {
        T::address(self)
    }
    fn port(&self) -> u16 {
        T::port(self)
    }
}

// ------------------------------------------------------------------- the tasks' bodies

/// Every [`TICK`]: read the link state (the driver's link and the netif's
/// configuration, two memory reads), publish it, and run the pool's reaper.
pub async fn link_and_reaper<I: Interface, const H: usize>(iface: I, shared: &Shared<H>) -> ! {
    let timer = EmbassyTimer;
    let mut last = LinkState::Unknown;
    loop {
        let link = if iface.is_link_up() && iface.is_config_up() {
            LinkState::Up
        } else {
            LinkState::Down
        };
        shared.set_link(link);
        if link != last {
            last = link;
            match iface.address() {
                Some(address) if link == LinkState::Up => {
                    net_log!(info, "network up: http://{}:{}/", address, iface.port())
                }
                _ => net_log!(
                    warn,
                    "network down (link {}, config {})",
                    iface.is_link_up(),
                    iface.is_config_up()
                ),
            }
        }
        let reaped = POOL.reap(timer.now());
        if reaped > 0 {
            net_log!(info, "reaper: gave up on {} connection(s)", reaped);
        }
        embassy_time::Timer::after(TICK).await;
    }
}

/// The closer's task body: close the sockets the web tasks hand to `closer` (FIN
/// within [`CLOSE_TIMEOUT`], else RST), counting in the [`POOL`]'s
/// [`closer_stats`]; forever.
pub async fn closer_task<S: TcpShutdown>(closer: &WebCloser<S>) -> ! {
    closer.run(&POOL, &EmbassyTimer).await
}

/// The listener of [`HTTP_PORT`]: a connection per web task.
fn listen_params() -> ListenParams {
    ListenParams::new(WEB_TASKS as u8)
}

/// The backlog's task body: keep [`BACKLOG`] accepts armed on `acceptor` for the web
/// tasks ([`Backlog::run`]); forever.
pub async fn backlog_task<'a, A: TcpAccept>(backlog: &WebBacklog<A::Socket<'a>>, acceptor: &'a A) -> ! {
    let _ = POOL.listen(HTTP_PORT, listen_params());
    backlog.run(&POOL, acceptor, &EmbassyTimer).await
}

/// Web task number `id` (of [`WEB_TASKS`]): take a connection from `backlog` through
/// the pool, serve one request, close through `closer`; forever. Its buffers live in
/// the caller's task storage.
pub async fn web_server<S: Socket, I: Interface, const H: usize>(
    id: usize,
    iface: I,
    backlog: &WebBacklog<S>,
    closer: &WebCloser<S>,
    shared: &Shared<H>,
) -> ! {
    let timer = EmbassyTimer;
    // Every task registers the same listener: the first starts it, the rest update it.
    let params = listen_params();
    let _ = POOL.listen(HTTP_PORT, params);
    let mut buffers = Buffers {
        request: [0u8; REQUEST_BUF],
        response: [0u8; RESPONSE_BUF],
        history: History::<H>::new(1),
    };
    loop {
        if !iface.is_config_up() {
            set_phase(id, Phase::WaitingForNetwork, timer.now());
            iface.wait_config_up().await;
        }
        set_phase(id, Phase::Accepting, timer.now());
        let deadline = timer.now() + ACCEPT_WINDOW;
        match POOL.accept_from(backlog, &timer, deadline).await {
            Ok(conn) => {
                net_log!(debug, "web[{}]: connection {}", id, conn.handle());
                serve(id, conn, closer, &timer, &mut buffers, shared).await;
                record(|r| r.tasks[id % WEB_TASKS].connections += 1);
            }
            Err(AcceptError::TimedOut) => {}
            Err(AcceptError::NotListening) => {
                let _ = POOL.listen(HTTP_PORT, params);
            }
            // `AcceptError::Stack`, and any error a later netpool adds: back off.
            Err(e) => {
                record(|r| r.stats.accept_failed += 1);
                net_log!(warn, "web[{}]: accept failed: {}", id, e.class());
                embassy_time::Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

struct Buffers<const H: usize> {
    request: [u8; REQUEST_BUF],
    response: [u8; RESPONSE_BUF],
    history: History<H>,
}

/// What a web task needs of a socket: netpool's `Conn` reads, writes and closes it.
pub trait Socket: Read + Write + TcpShutdown {}

impl<S: Read + Write + TcpShutdown> Socket for S {}

type Conn<S> = netpool::asynch::Conn<'static, S, WEB_TASKS>;

/// Read one request (until complete, full, ended or timed out), answer, close.
async fn serve<S: Socket, const H: usize>(
    id: usize,
    mut conn: Conn<S>,
    closer: &WebCloser<S>,
    timer: &EmbassyTimer,
    buf: &mut Buffers<H>,
    shared: &Shared<H>,
) {
    set_phase(id, Phase::Reading, timer.now());
    let deadline = timer.now() + REQUEST_TIMEOUT;
    let mut len = 0;
    let (response, incomplete) = loop {
        if len > 0 {
            // Copies: nothing the control loop uses is held while rendering.
            let snapshot = shared.snapshot();
            shared.copy_history(&mut buf.history);
            let view = View {
                snapshot: &snapshot,
                history: &buf.history,
            };
            if let Handled::Respond(r) = web::handle(&buf.request[..len], &view, &mut buf.response) {
                break (r, None);
            }
        }
        let why = if len == buf.request.len() {
            Incomplete::TooLarge
        } else {
            match conn.read(&mut buf.request[len..], timer, deadline).await {
                Ok(n) => {
                    len += n;
                    continue;
                }
                Err(ConnError::TimedOut) => Incomplete::TimedOut,
                Err(ConnError::PeerGone(_)) if len > 0 => Incomplete::Truncated,
                Err(e) => {
                    net_log!(debug, "web[{}]: read: {}", id, e);
                    record(|r| r.stats.read_failed += 1);
                    set_phase(id, Phase::Closing, timer.now());
                    conn.abort(timer).await;
                    return;
                }
            }
        };
        break (web::respond_incomplete(why, &mut buf.response), Some(why));
    };
    count_response(&response, incomplete);
    log_request(id, &buf.request[..len], &response);
    if let Some(command) = response.command {
        shared.post(command);
    }
    set_phase(id, Phase::Closing, timer.now());
    if response.len == 0 {
        record(|r| r.stats.empty_response += 1);
        conn.abort(timer).await;
        return;
    }
    set_phase(id, Phase::Writing, timer.now());
    let write_deadline = timer.now() + WRITE_TIMEOUT;
    let written = hand_over(&mut conn, &buf.response[..response.len], timer, write_deadline).await;
    set_phase(id, Phase::Closing, timer.now());
    match written {
        Ok(()) => {
            record(|r| r.stats.written += 1);
            // The slot is free at once; the closer sends what the stack still holds
            // and the FIN, or resets at CLOSE_TIMEOUT. A full closer is waited for
            // (netpool's bounded policy), so this task is free when it returns.
            conn.close(closer, timer).await;
            // One close per turn: the closer's task runs before this task closes
            // again. A stack whose reads and writes complete at once (the host's
            // TCP) would otherwise let one task serve, and hand over, connection
            // after connection without yielding.
            embassy_futures::yield_now().await;
        }
        Err(e) => {
            record(|r| {
                r.stats.write_failed += 1;
                if e == ConnError::TimedOut {
                    r.stats.write_timed_out += 1;
                }
            });
            net_log!(info, "web[{}]: response not written: {}", id, e);
            conn.abort(timer).await;
        }
    }
}

/// Give all of `data` to the stack by `deadline`, without waiting for the peer to
/// acknowledge it: no push, since embassy-net's flush waits for the peer's ACK and the
/// close that follows flushes anyway (in the closer, not in this task). A response
/// longer than the send buffer still waits here for the peer to take all but the last
/// buffer's worth.
async fn hand_over<S: Socket>(
    conn: &mut Conn<S>,
    mut data: &[u8],
    timer: &EmbassyTimer,
    deadline: Instant,
) -> Result<(), ConnError> {
    while !data.is_empty() {
        let n = conn.write(data, false, timer, deadline).await?;
        data = &data[n..];
    }
    Ok(())
}

/// `web[id]: GET /api/state HTTP/1.1 -> 200 (1234 B)` at debug level: the request
/// line ([`web::request_line`]), escaped: it is the peer's bytes.
fn log_request(id: usize, request: &[u8], response: &Response) {
    let line = Escaped(web::request_line(request));
    net_log!(
        debug,
        "web[{}]: {} -> {} ({} B)",
        id,
        line,
        response.status,
        response.len
    );
    let _ = (id, line, response);
}

/// Bytes printed with every byte that is not printable ASCII escaped (`\x1b`), so a
/// request line with terminal escape sequences reaches a log harmlessly.
#[derive(Copy, Clone)]
struct Escaped<'a>(&'a [u8]);

impl core::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Escaped<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        // A byte string: the host side prints it escaped.
        defmt::write!(f, "{=[u8]:a}", self.0)
    }
}
