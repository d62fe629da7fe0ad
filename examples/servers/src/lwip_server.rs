//! A status server on the sync `Pool` over lwIP's raw API (netpool-lwip's
//! `LwipStack`): what the ESP8266 bridge image does, without the bridge.
//!
//! lwIP's raw API runs in one context: the main loop of a `NO_SYS` build, or the
//! tcpip thread (a `sys_timeout` callback, as the ESP8266 image does). Call
//! [`LwipServer::poll`] there; it returns when it wants to run again. The firmware's
//! own lwIP is linked (feature `bundled` of netpool-lwip compiles one for the host).
//!
//! ```text
//! let mut server = LwipServer::new(LwipStack::new()?)?;
//! // in lwIP's context, now and at every instant `poll` returns:
//! let again = server.poll(clock.now());
//! ```
//!
//! lwIP has a send flag (MORE) and a send queue of its own, so the pool keeps no
//! coalescing buffer (`TX = 0`). Unlike the smoltcp example's accept queue, a
//! connection that completes its handshake while every slot is taken is not kept
//! waiting: netpool-lwip hands it to the pool, which refuses it (counted), so that
//! only served connections hold lwIP's scarce PCBs. Size the slots for the clients
//! you expect at once; the request deadline bounds how long a silent one holds a slot.

use netpool::{Config, Instant, ListenError, ListenParams, Pool};
use netpool_lwip::LwipStack;

use crate::service::Service;

/// The port it serves.
pub const PORT: u16 = 80;
/// Connections served at once (the pool's slots).
pub const SLOTS: usize = 4;
/// lwIP's listen backlog (`tcp_listen_with_backlog`): connections whose handshake
/// completed in one burst, before the pool's next pass takes them.
pub const WAITING: u8 = 4;

/// The pool over lwIP and the application.
pub struct LwipServer {
    pool: Pool<LwipStack, SLOTS, 1, 0>,
    service: Service<SLOTS>,
}

impl LwipServer {
    /// Serve on the process's lwIP (its network interface is the firmware's).
    pub fn new(stack: LwipStack) -> Result<Self, ListenError> {
        let mut pool = Pool::new(stack.with_backlog(WAITING), Config::new());
        pool.listen(PORT, ListenParams::new(SLOTS as u8))?;
        Ok(LwipServer {
            pool,
            service: Service::default(),
        })
    }

    /// One pass at `now`, in lwIP's context: the backend's clock and handshake lease,
    /// the pool's timers, every connection. Returns when to call again at the latest.
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.pool.stack_mut().poll(now);
        self.pool.poll(now);
        self.service.serve(&mut self.pool, now);
        let stack = self.pool.stack().poll_at(now);
        [stack, self.pool.poll_at(), self.service.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The pool (its `report` and `counters`).
    pub fn pool(&self) -> &Pool<LwipStack, SLOTS, 1, 0> {
        &self.pool
    }

    /// The stack, e.g. to hand it packets on the host.
    pub fn stack_mut(&mut self) -> &mut LwipStack {
        self.pool.stack_mut()
    }

    /// Responses handed over completely.
    pub fn answered(&self) -> u32 {
        self.service.answered
    }
}
