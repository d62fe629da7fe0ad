//! The web server over embassy-net (feature `embassy-net`): the Pico W firmware's and
//! the `furnace-net-host` binary's, the same code.
//!
//! [`WEB_TASKS`] tasks take connections through one netpool [`AsyncPool`] ([`POOL`])
//! from an accept [`Backlog`] ([`WebBacklog`], its own task: [`backlog_task`]) that
//! keeps [`BACKLOG`] accepts armed on edge-nal-embassy's `TcpAccept`, so a burst larger
//! than the web tasks waits (at most [`BACKLOG_WAIT`]) instead of being refused by
//! the stack; they read one request within [`REQUEST_TIMEOUT`], render
//! it with [`crate::web`] from copies of the shared state, hand the response to the
//! stack within [`WRITE_TIMEOUT`] and close with [`Conn::close`](netpool::asynch::Conn::close): the slot and the task
//! are free at once, and the socket goes to a background [`Closer`] ([`WebCloser`],
//! [`CLOSING`] places, its own task: [`closer_task`]) that delivers the rest of the
//! response and the FIN within [`CLOSE_TIMEOUT`], else resets. A link task
//! ([`link_and_reaper`]) publishes the link state read from the stack and runs the
//! pool's reaper every [`TICK`].
//!
//! What the caller provides is the board: the embassy-net [`Stack`] over its driver
//! (CYW43 on the Pico W, a TAP device on the host), the socket buffers ([`TcpBuffers`],
//! [`Resources`]: room for the web tasks', the backlog's and the closer's sockets), the
//! acceptor, the backlog and the closer in `StaticCell`s (see [`WebCloser`] for why
//! not `static`s), the executor and its tasks (embassy tasks cannot be generic, so each
//! binary declares its own and calls [`web_server`], [`backlog_task`], [`closer_task`]
//! and [`link_and_reaper`] from them):
//!
//! ```ignore
//! #[embassy_executor::task(pool_size = WEB_TASKS)]
//! async fn web_task(
//!     id: usize,
//!     stack: Stack<'static>,
//!     backlog: &'static WebBacklog<'static>,
//!     closer: &'static WebCloser<'static>,
//! ) -> ! {
//!     pico_w_furnace::net::web_server(id, stack, backlog, closer, &SHARED).await
//! }
//!
//! #[embassy_executor::task]
//! async fn backlog_task(
//!     backlog: &'static WebBacklog<'static>,
//!     acceptor: &'static TcpAccept<'static>,
//! ) -> ! {
//!     pico_w_furnace::net::backlog_task(backlog, acceptor).await
//! }
//!
//! #[embassy_executor::task]
//! async fn closer_task(closer: &'static WebCloser<'static>) -> ! {
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

use core::cell::Cell;

use critical_section::Mutex;
use edge_nal::TcpBind;
use edge_nal_embassy::{Tcp, TcpAccept, TcpError, TcpSocket};
use embassy_net::Stack;
use netpool::asynch::{AcceptError, AsyncPool, Backlog, Closer, CloserStats, Timer};
use netpool::{ConnError, Duration, Instant, LinkState, ListenParams};

use crate::history::History;
use crate::shared::Shared;
use crate::web::{self, Handled, Incomplete, Response, View, REQUEST_BUF, RESPONSE_BUF};

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
/// four tasks serve the next ones; a fifth close while all four are busy is reset at
/// once (counted in [`CloserStats::overflow`]).
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
/// Per-socket TCP transmit buffer.
pub const TCP_TX: usize = 2048;
/// Per-socket TCP receive buffer.
pub const TCP_RX: usize = 1024;
/// Every TCP socket of the web server: one per web task, per backlog place and per
/// closing socket.
pub const SOCKETS: usize = WEB_TASKS + BACKLOG + CLOSING;
/// The TCP socket buffers: one set per socket ([`SOCKETS`]).
pub type TcpBuffers = edge_nal_embassy::TcpBuffers<SOCKETS, TCP_TX, TCP_RX>;
/// embassy-net's socket storage: the web server's sockets, DHCP and one spare.
pub type Resources = embassy_net::StackResources<{ SOCKETS + 2 }>;

/// A request must arrive completely within this time of its accept (else 408).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole response must be handed to the stack within this time (else RST).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The [`WebCloser`]'s linger: the rest of the response, FIN, the peer's ACK of it all
/// and the peer's own FIN within this time of the close, else RST.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// An accept gives up and starts again after this long (re-checking the link).
pub const ACCEPT_WINDOW: Duration = Duration::from_secs(30);
/// A response whose bytes the stack refuses for this long is given up by the reaper.
/// Shorter than [`WRITE_TIMEOUT`]: a peer that reads nothing is dropped after the
/// grace, one that reads slowly but keeps reading is bounded by the write deadline.
pub const STALL_GRACE: Duration = Duration::from_secs(4);
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
        .with_stall_grace(STALL_GRACE),
);

/// The background closer of the web server's sockets ([`CLOSING`] at once, each given
/// [`CLOSE_TIMEOUT`]); create it with [`closer`] and run it with [`closer_task`].
///
/// It lives in a `StaticCell`, not a `static`: edge-nal-embassy's `TcpSocket` holds
/// raw pointers and a `&RefCell` stack, so it is not `Send`, the `Closer` holding
/// them is not `Sync`, and a `static` must be. That is no loss here: the sockets
/// (and the embassy-net stack they point into) belong to one thread-mode executor
/// anyway, and embassy-executor 0.10's `Spawner::spawn` takes tasks whose arguments
/// are not `Send` (only `SendSpawner` asks for `Send`), so a `&'static WebCloser`
/// is passed to the web tasks and the closer task like the `Stack`. Being `!Sync`
/// keeps the reference on that executor: other threads (the host binary's report)
/// read the counters [`closer_task`] publishes ([`closer_stats`]). The sockets it
/// takes must be `'static` too, so the acceptor they borrow lives in a `StaticCell`.
pub type WebCloser<'d> = Closer<TcpSocket<'d>, CLOSING>;

/// The accept backlog of the web server ([`BACKLOG`] places on [`HTTP_PORT`], each
/// connection waiting at most [`BACKLOG_WAIT`]); create it with [`backlog`] and run it
/// with [`backlog_task`]. In a `StaticCell`, for the reason given at [`WebCloser`].
pub type WebBacklog<'d> = Backlog<TcpSocket<'d>, BACKLOG>;

/// An empty [`WebBacklog`].
pub const fn backlog<'d>() -> WebBacklog<'d> {
    Backlog::new(HTTP_PORT, BACKLOG_WAIT)
}

/// An idle [`WebCloser`] with the [`CLOSE_TIMEOUT`] linger.
pub const fn closer<'d>() -> WebCloser<'d> {
    Closer::new(CLOSE_TIMEOUT)
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

// ------------------------------------------------------------------- what the tasks did

/// What a web task is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// Not started yet.
    Starting,
    /// Waiting for the network configuration (link up, address).
    WaitingForNetwork,
    /// In `accept`.
    Accepting,
    /// Reading a request.
    Reading,
    /// Writing a response.
    Writing,
    /// Handing a connection to the closer (FIN), or aborting it (RST).
    Closing,
}

impl Phase {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::WaitingForNetwork => "waiting-for-network",
            Phase::Accepting => "accepting",
            Phase::Reading => "reading",
            Phase::Writing => "writing",
            Phase::Closing => "closing",
        }
    }
}

/// One web task, as last recorded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    /// What it is doing.
    pub phase: Phase,
    /// Since when.
    pub since: Instant,
    /// Connections it has finished (served, refused or dropped).
    pub connections: u32,
}

/// What the web tasks did with their connections. Every accepted connection ends in
/// exactly one of `responded_*`, `read_failed`, `empty_response`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WebStats {
    /// Responses with a 2xx/3xx status.
    pub responded_ok: u32,
    /// Responses with a 4xx status, of which the next three are counted again:
    pub responded_client_error: u32,
    /// 408: the request was not complete by [`REQUEST_TIMEOUT`].
    pub request_timed_out: u32,
    /// 413: the request did not fit in the buffer.
    pub request_too_large: u32,
    /// 400: the peer ended its side mid-request.
    pub request_truncated: u32,
    /// Responses with a 5xx status.
    pub responded_server_error: u32,
    /// Connections that ended before a request byte (reset, closed, reaped): aborted.
    pub read_failed: u32,
    /// Requests the handlers answered with nothing (aborted).
    pub empty_response: u32,
    /// Responses handed to the stack completely, then closed through the closer.
    pub written: u32,
    /// Responses not written completely (the peer reset, the reaper gave up, or
    /// [`WRITE_TIMEOUT`]): aborted.
    pub write_failed: u32,
    /// Of `write_failed`: the write deadline passed.
    pub write_timed_out: u32,
    /// Accepts that failed (the stack's error).
    pub accept_failed: u32,
    /// Of `written`: closes that found the closer full ([`CLOSING`] sockets closing),
    /// so the task waited for the peer to acknowledge the response itself (within
    /// [`WRITE_TIMEOUT`]) before the close, which resets it unless room came up.
    pub closer_full: u32,
}

#[derive(Copy, Clone)]
struct Record {
    stats: WebStats,
    tasks: [TaskStatus; WEB_TASKS],
    /// The closer's counters as last published (`None`: never yet).
    closer: Option<CloserStats>,
}

static RECORD: Mutex<Cell<Record>> = Mutex::new(Cell::new(Record {
    stats: WebStats {
        responded_ok: 0,
        responded_client_error: 0,
        request_timed_out: 0,
        request_too_large: 0,
        request_truncated: 0,
        responded_server_error: 0,
        read_failed: 0,
        empty_response: 0,
        written: 0,
        write_failed: 0,
        write_timed_out: 0,
        accept_failed: 0,
        closer_full: 0,
    },
    tasks: [TaskStatus {
        phase: Phase::Starting,
        since: Instant::ZERO,
        connections: 0,
    }; WEB_TASKS],
    closer: None,
}));

fn record(f: impl FnOnce(&mut Record)) {
    critical_section::with(|cs| {
        let cell = RECORD.borrow(cs);
        let mut r = cell.get();
        f(&mut r);
        cell.set(r);
    })
}

fn set_phase(id: usize, phase: Phase, now: Instant) {
    record(|r| {
        if let Some(t) = r.tasks.get_mut(id) {
            t.phase = phase;
            t.since = now;
        }
    })
}

/// What the web tasks did so far.
pub fn stats() -> WebStats {
    critical_section::with(|cs| RECORD.borrow(cs).get().stats)
}

/// Every web task's phase.
pub fn tasks() -> [TaskStatus; WEB_TASKS] {
    critical_section::with(|cs| RECORD.borrow(cs).get().tasks)
}

/// The [`WebCloser`]'s counters as last published: by a web task right after each
/// close, and by [`closer_task`] every [`TICK`] (so a close that finished or was
/// reset shows within a tick). Readable from any thread, unlike the closer.
pub fn closer_stats() -> CloserStats {
    critical_section::with(|cs| RECORD.borrow(cs).get().closer).unwrap_or_default()
}

fn publish_closer_stats(closer: &WebCloser<'_>) {
    let stats = closer.stats();
    record(|r| r.closer = Some(stats));
}

// ------------------------------------------------------------------- the tasks' bodies

/// The acceptor the [`WebBacklog`] arms its accepts on: [`HTTP_PORT`] on every address
/// of `tcp`'s stack.
pub async fn listen<'d>(tcp: &'d Tcp<'d>) -> Result<TcpAccept<'d>, TcpError> {
    tcp.bind(core::net::SocketAddr::new(
        core::net::Ipv4Addr::UNSPECIFIED.into(),
        HTTP_PORT,
    ))
    .await
}

/// Every [`TICK`]: read the link state (the driver's link and the netif's
/// configuration, two memory reads), publish it, and run the pool's reaper.
pub async fn link_and_reaper<const H: usize>(stack: Stack<'_>, shared: &Shared<H>) -> ! {
    let timer = EmbassyTimer;
    let mut last = LinkState::Unknown;
    loop {
        let link = if stack.is_link_up() && stack.is_config_up() {
            LinkState::Up
        } else {
            LinkState::Down
        };
        shared.set_link(link);
        if link != last {
            last = link;
            match stack.config_v4() {
                Some(cfg) if link == LinkState::Up => {
                    net_log!(info, "network up: http://{}/", cfg.address.address())
                }
                _ => net_log!(
                    warn,
                    "network down (link {}, config {})",
                    stack.is_link_up(),
                    stack.is_config_up()
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
/// within [`CLOSE_TIMEOUT`], else RST), and publish its counters every [`TICK`] for
/// [`closer_stats`]; forever.
pub async fn closer_task(closer: &WebCloser<'_>) -> ! {
    let timer = EmbassyTimer;
    let publish = async {
        loop {
            publish_closer_stats(closer);
            embassy_time::Timer::after(TICK).await;
        }
    };
    let (never, _) = embassy_futures::join::join(closer.run(&timer), publish).await;
    never
}

/// The listener of [`HTTP_PORT`]: a connection per web task.
fn listen_params() -> ListenParams {
    ListenParams::new(WEB_TASKS as u8)
}

/// The backlog's task body: keep [`BACKLOG`] accepts armed on `acceptor` for the web
/// tasks ([`Backlog::run`]); forever.
pub async fn backlog_task<'a>(backlog: &WebBacklog<'a>, acceptor: &'a TcpAccept<'_>) -> ! {
    let _ = POOL.listen(HTTP_PORT, listen_params());
    backlog.run(&POOL, acceptor, &EmbassyTimer).await
}

/// Web task number `id` (of [`WEB_TASKS`]): take a connection from `backlog` through
/// the pool, serve one request, close through `closer`; forever. Its buffers live in
/// the caller's task storage.
pub async fn web_server<'a, const H: usize>(
    id: usize,
    stack: Stack<'_>,
    backlog: &WebBacklog<'a>,
    closer: &WebCloser<'a>,
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
        if !stack.is_config_up() {
            set_phase(id, Phase::WaitingForNetwork, timer.now());
            stack.wait_config_up().await;
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

type Conn<'a> = netpool::asynch::Conn<'static, TcpSocket<'a>, WEB_TASKS>;

/// Read one request (until complete, full, ended or timed out), answer, close.
async fn serve<'a, const H: usize>(
    id: usize,
    mut conn: Conn<'a>,
    closer: &WebCloser<'a>,
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
            if closer.stats().closing as usize >= CLOSING {
                // No room: `close` would reset at once and the stack would drop what it
                // still holds of the response. Wait for the peer's ACK of it here
                // (bounded by the write deadline), so at worst the FIN is lost.
                record(|r| r.stats.closer_full += 1);
                let _ = conn.write(&[], true, timer, write_deadline).await;
            }
            // The slot and this task are free when this returns; the closer sends what
            // the stack still holds and the FIN, or resets at CLOSE_TIMEOUT.
            conn.close(closer, timer).await;
            publish_closer_stats(closer);
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
async fn hand_over(
    conn: &mut Conn<'_>,
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

fn count_response(response: &Response, incomplete: Option<Incomplete>) {
    record(|r| {
        let s = &mut r.stats;
        match response.status {
            0..=399 => s.responded_ok += 1,
            400..=499 => s.responded_client_error += 1,
            _ => s.responded_server_error += 1,
        }
        match incomplete {
            Some(Incomplete::TimedOut) => s.request_timed_out += 1,
            Some(Incomplete::TooLarge) => s.request_too_large += 1,
            Some(Incomplete::Truncated) => s.request_truncated += 1,
            None => {}
        }
    })
}

/// `web[id]: GET /api/state -> 200 (1234 B)` at debug level: the request line
/// (at most 48 bytes of it, if it is text).
fn log_request(id: usize, request: &[u8], response: &Response) {
    let line = request.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(&[]);
    let line = &line[..line.len().min(48)];
    let line = core::str::from_utf8(line).unwrap_or("(not text)");
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
