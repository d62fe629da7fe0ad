//! A status server on the sync `Pool` over smoltcp (`SmoltcpStack`): no_std, no
//! allocator, one loop. What the ESP32-C3 bridge image does, without the bridge.
//!
//! The firmware owns the device (the WiFi or Ethernet driver), the clock and the socket
//! storage; [`SmoltcpServer::poll`] runs the interface, the pool and the
//! [`Service`], and says when to call it again, so the loop
//! sleeps until a packet or that instant:
//!
//! ```text
//! let mut server = SmoltcpServer::new(iface, sockets)?;
//! loop {
//!     let wake = server.poll(clock.now(), &mut device);
//!     wait_for_packet_or(wake);
//! }
//! ```
//!
//! Sockets: [`SLOTS`] connections, [`WAITING`] more that wait for a slot (the listener
//! keeps `SLOTS + WAITING` sockets armed: smoltcp has no SYN queue), and closing ones
//! reclaimed on demand ([`SOCKETS`] in all).

use netpool::stack::smoltcp::SmoltcpStack;
use netpool::{Config, Instant, ListenError, ListenParams, Pool};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::Device;

use crate::service::Service;

/// The port it serves.
pub const PORT: u16 = 80;
/// Connections served at once (the pool's slots).
pub const SLOTS: usize = 4;
/// Connections beyond the slots that complete their handshake and wait for one.
pub const WAITING: usize = 4;
/// TCP sockets to give the stack: the slots, the waiting ones, and as many again for
/// connections still closing or half-open handshakes.
pub const SOCKETS: usize = 2 * (SLOTS + WAITING);

/// The stack, the pool over it and the application.
pub struct SmoltcpServer<'a> {
    pool: Pool<SmoltcpStack<'a, SOCKETS>, SLOTS, 1, 256>,
    service: Service<SLOTS>,
}

impl<'a> SmoltcpServer<'a> {
    /// Serve on `iface` with the TCP sockets of `sockets` (at most [`SOCKETS`] are used;
    /// give each a `set_timeout` so that a peer that vanishes mid-close lets go).
    pub fn new(iface: Interface, sockets: SocketSet<'a>) -> Result<Self, ListenError> {
        let stack = SmoltcpStack::new(iface, sockets).with_accept_queue(SLOTS + WAITING);
        let mut pool = Pool::new(stack, Config::new());
        pool.listen(PORT, ListenParams::new(SLOTS as u8))?;
        Ok(SmoltcpServer {
            pool,
            service: Service::default(),
        })
    }

    /// One pass at `now`: packets in and out, the pool's timers, every connection.
    /// Returns when to call again at the latest (a packet may come sooner).
    pub fn poll<D: Device>(&mut self, now: Instant, device: &mut D) -> Option<Instant> {
        let smol_now = smoltcp::time::Instant::from_millis(now.as_millis() as i64);
        self.pool.stack_mut().poll(smol_now, device);
        self.pool.poll(now);
        self.service.serve(&mut self.pool, now);
        // What the service handed over goes out in this pass, not the next.
        self.pool.stack_mut().poll(smol_now, device);
        let stack = self
            .pool
            .stack_mut()
            .poll_at(smol_now)
            .map(|t| Instant::from_millis(t.total_millis() as u64));
        [stack, self.pool.poll_at(), self.service.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The pool (its `report` and `counters`).
    pub fn pool(&self) -> &Pool<SmoltcpStack<'a, SOCKETS>, SLOTS, 1, 256> {
        &self.pool
    }

    /// Responses handed over completely.
    pub fn answered(&self) -> u32 {
        self.service.answered
    }
}
