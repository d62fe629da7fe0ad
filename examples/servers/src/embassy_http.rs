//! An HTTP status server on embassy-net with the async pool: `AsyncPool` (the slots),
//! a `Backlog` (accepts kept armed: smoltcp has no SYN queue), a `Closer` (FIN in the
//! background, the slot free at once) and netpool's `LeasedTcp` acceptor (the
//! handshake lease: half-open SYNs cannot take the listener). What the Pico W furnace
//! does, without the furnace.
//!
//! The firmware brings up embassy-net (driver, `StackResources` with room for
//! [`SOCKETS`] + its own), puts an [`Acceptor`], a [`WebBacklog`] and a [`WebCloser`]
//! in `StaticCell`s (the sockets borrow the acceptor) and spawns, on the executor that
//! runs the stack:
//!
//! ```text
//! static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
//! let acceptor = ACCEPTOR.init(acceptor(stack, BUFFERS.take()));
//! let (backlog, closer) = (BACKLOG.init(backlog()), CLOSER.init(closer()));
//! spawner.spawn(backlog_task(backlog, acceptor))   // each wrapped in an
//! spawner.spawn(closer_task(closer))               // #[embassy_executor::task]
//! spawner.spawn(reaper_task())
//! for _ in 0..WORKERS { spawner.spawn(worker_task(backlog, closer)) }
//! ```

use embassy_net::Stack;
use netpool::asynch::embassy::{LeasedSocket, LeasedTcp, TcpBuffers};
use netpool::asynch::{AcceptError, AsyncPool, Backlog, Closer, Timer};
use netpool::{Config, ConnError, Duration, Instant, ListenParams};

use crate::http::{self, MAX_REQUEST};

/// The port it serves.
pub const PORT: u16 = 80;
/// Worker tasks: connections served at once (the pool's slots).
pub const WORKERS: usize = 2;
/// Accepts kept armed ahead of the workers: connections that wait for one.
pub const BACKLOG: usize = 4;
/// Connections the closer finishes at once.
pub const CLOSING: usize = 2;
/// Every socket: the workers', the backlog's, the closer's and one for a half-open
/// handshake (the lease keeps those apart from the room).
pub const SOCKETS: usize = WORKERS + BACKLOG + CLOSING + 1;
/// A response must be with the stack this long after the request.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How often the reaper runs the pool's timers.
pub const REAP_EVERY: Duration = Duration::from_millis(250);

/// The slots, shared by the tasks.
pub static POOL: AsyncPool<WORKERS> = AsyncPool::new(Config::new());

/// netpool's clock: embassy-time, in milliseconds.
#[derive(Copy, Clone, Debug, Default)]
pub struct Clock;

impl Timer for Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    async fn at(&self, deadline: Instant) {
        let ms = deadline.as_millis().min(embassy_time::Instant::MAX.as_millis());
        embassy_time::Timer::at(embassy_time::Instant::from_millis(ms)).await
    }
}

/// The sockets' buffers (1 KiB each way per socket).
pub type Buffers = TcpBuffers<SOCKETS, 1024, 1024>;
/// The acceptor: [`SOCKETS`] embassy-net sockets on [`PORT`], with the handshake lease.
pub type Acceptor = LeasedTcp<'static, Clock, SOCKETS>;
/// A connection's socket, lent by the acceptor.
pub type Socket = LeasedSocket<'static, 'static, SOCKETS>;
/// Accepts kept armed for the workers.
pub type WebBacklog = Backlog<Socket, BACKLOG>;
/// Closes finished in the background.
pub type WebCloser = Closer<Socket, CLOSING>;

/// The acceptor over `stack`'s sockets made from `buffers`.
pub fn acceptor(stack: Stack<'static>, buffers: &'static mut Buffers) -> Acceptor {
    LeasedTcp::new(stack, PORT, buffers, Clock, POOL.config().handshake_deadline)
}

/// An empty backlog (a connection waits in it at most 5 s for a worker).
pub const fn backlog() -> WebBacklog {
    Backlog::new(PORT, Duration::from_secs(5))
}

/// An idle closer.
pub const fn closer() -> WebCloser {
    Closer::new()
}

/// Keep [`BACKLOG`] accepts armed; forever.
pub async fn backlog_task(backlog: &'static WebBacklog, acceptor: &'static Acceptor) -> ! {
    let _ = POOL.listen(PORT, ListenParams::new(WORKERS as u8));
    backlog.run(&POOL, acceptor, &Clock).await
}

/// Finish the closes the workers hand over; forever.
pub async fn closer_task(closer: &'static WebCloser) -> ! {
    closer.run(&POOL, &Clock).await
}

/// Run the pool's timers (idle, stall, abandoned connections) every [`REAP_EVERY`].
pub async fn reaper_task() -> ! {
    loop {
        POOL.reap(Clock.now());
        Clock.at(Clock.now() + REAP_EVERY).await;
    }
}

/// Take a connection, answer one request, close; forever.
pub async fn worker_task(backlog: &'static WebBacklog, closer: &'static WebCloser) -> ! {
    let mut request = [0u8; MAX_REQUEST];
    loop {
        let mut conn = match POOL
            .accept_from(backlog, &Clock, Clock.now() + Duration::from_secs(60))
            .await
        {
            Ok(conn) => conn,
            Err(AcceptError::TimedOut) => continue,
            Err(AcceptError::NotListening) => {
                let _ = POOL.listen(PORT, ListenParams::new(WORKERS as u8));
                continue;
            }
            Err(_) => {
                Clock.at(Clock.now() + Duration::from_millis(500)).await;
                continue;
            }
        };
        let deadline = Clock.now() + http::REQUEST_DEADLINE;
        let mut len = 0;
        let response = loop {
            let in_use = WORKERS - POOL.free_slots();
            if let Some(r) = http::answer(&request[..len], in_use, WORKERS) {
                break Some(r);
            }
            match conn.read(&mut request[len..], &Clock, deadline).await {
                Ok(0) => break None, // the peer ended before a whole request
                Ok(n) => len += n,
                Err(ConnError::TimedOut) => break Some(http::timed_out()),
                Err(_) => break None,
            }
        };
        let Some(response) = response else {
            conn.abort(&Clock).await;
            continue;
        };
        match conn
            .write_all(&response, &Clock, Clock.now() + WRITE_DEADLINE)
            .await
        {
            // The slot is free at once; the closer sends the rest and the FIN.
            Ok(()) => conn.close(closer, &Clock).await,
            Err(_) => conn.abort(&Clock).await,
        }
    }
}
