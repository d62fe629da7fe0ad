//! The board's network for [`net`](super) (feature `embassy-net`): embassy-net's
//! [`Stack`] is the [`Interface`], and the web server's sockets are netpool's
//! [`LeasedTcp`]: a fixed set of embassy-net sockets, created once from
//! [`TcpBuffers`], armed by the backlog's accepts with the handshake lease (a
//! half-open connection holds a socket at most the pool's `handshake_deadline`, and
//! the oldest gives way when nothing else listens: a flood of SYNs that never complete
//! cannot lock the web UI out). The firmware and `furnace-net-host` use it.

use core::cell::Cell;
use core::future::Future;
use core::net::Ipv4Addr;

use critical_section::Mutex;
use embassy_net::Stack;
use netpool::asynch::embassy::{LeaseCounters, LeasedSocket, LeasedTcp};

use super::{EmbassyTimer, Interface, WebBacklog, HTTP_PORT, POOL, SOCKETS, TCP_RX, TCP_TX, TICK};

/// The web server's acceptor: [`SOCKETS`] embassy-net sockets on [`HTTP_PORT`].
pub type Acceptor = LeasedTcp<'static, EmbassyTimer, SOCKETS>;
/// The web server's socket on embassy-net: one of the [`Acceptor`]'s, lent.
pub type Socket<'a> = LeasedSocket<'a, 'static, SOCKETS>;
/// The TCP socket buffers: one set per socket ([`SOCKETS`]).
pub type TcpBuffers = netpool::asynch::embassy::TcpBuffers<SOCKETS, TCP_TX, TCP_RX>;
/// embassy-net's socket storage: the web server's sockets, DHCP and one spare.
pub type Resources = embassy_net::StackResources<{ SOCKETS + 2 }>;

impl Interface for Stack<'_> {
    fn is_link_up(&self) -> bool {
        Stack::is_link_up(self)
    }

    fn is_config_up(&self) -> bool {
        Stack::is_config_up(self)
    }

    // Stack's own future (not an `async fn` around it: one state machine less).
    fn wait_config_up(&self) -> impl Future<Output = ()> {
        Stack::wait_config_up(self)
    }

    fn address(&self) -> Option<Ipv4Addr> {
        self.config_v4().map(|cfg| cfg.address.address())
    }
}

/// The acceptor the [`WebBacklog`] arms its accepts on:
/// [`HTTP_PORT`] on every address of `stack`, its sockets over `buffers`, the lease
/// deadline the [`POOL`]'s.
pub fn acceptor(stack: Stack<'static>, buffers: &'static mut TcpBuffers) -> Acceptor {
    LeasedTcp::new(
        stack,
        HTTP_PORT,
        buffers,
        EmbassyTimer,
        POOL.config().handshake_deadline,
    )
}

/// The acceptor's counters as last published by [`backlog_task`] (the acceptor is
/// not `Sync`: other threads read this copy).
static LEASE: Mutex<Cell<LeaseCounters>> = Mutex::new(Cell::new(LeaseCounters::ZERO));

/// What the acceptor did, as of the last [`TICK`]: half-open connections reset at the
/// deadline or evicted, connections accepted.
pub fn lease_stats() -> LeaseCounters {
    critical_section::with(|cs| LEASE.borrow(cs).get())
}

/// The backlog's task body on embassy-net: [`net::backlog_task`](super::backlog_task)
/// over `acceptor`, and every [`TICK`] a copy of its counters for [`lease_stats`];
/// forever.
pub async fn backlog_task(backlog: &WebBacklog<Socket<'static>>, acceptor: &'static Acceptor) -> ! {
    let publish = async {
        loop {
            let c = acceptor.counters();
            critical_section::with(|cs| LEASE.borrow(cs).set(c));
            embassy_time::Timer::after(TICK).await;
        }
    };
    let (never, _) = embassy_futures::join::join(super::backlog_task(backlog, acceptor), publish).await;
    never
}
