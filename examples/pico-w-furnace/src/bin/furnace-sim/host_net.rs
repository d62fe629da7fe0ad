//! The host's network under [`pico_w_furnace::net`]: the firmware's web server runs
//! unchanged on edge-nal-std sockets over the host's TCP, with a simulated WiFi link.
//!
//! - [`Acceptor`]: the listening socket (the host's, so its port is `--http`'s; the
//!   pool's bookkeeping keys the listener by [`net::HTTP_PORT`](pico_w_furnace::net::HTTP_PORT)
//!   as on the board). While the simulated link is down it resets every connection
//!   at once: on the board no SYN arrives then, here the kernel has already completed
//!   the handshake.
//! - [`Socket`]: edge-nal-std's socket, except that `abort` resets (linger 0, then
//!   the drop). edge-nal-std's own `abort` does nothing, so its drop would send FIN
//!   where the web server means RST (as embassy-net sends).
//! - [`SimInterface`]: the link the WiFi thread publishes in [`DRIVER_LINK`] (the
//!   CYW43 driver's link on the board) and a static address, as `furnace-net-host`
//!   has.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration as StdDuration;

use async_io::Async;
use pico_w_furnace::net::Interface;

/// The simulated WiFi driver's link: set by the WiFi thread, read by the web server
/// (through [`SimInterface`]) and by the [`Acceptor`].
pub static DRIVER_LINK: AtomicBool = AtomicBool::new(false);
/// Connections reset by the [`Acceptor`] because the link was down.
pub static REFUSED_WHILE_DOWN: AtomicU32 = AtomicU32::new(0);

/// How often [`SimInterface::wait_config_up`] looks at the link again.
const LINK_POLL: embassy_time::Duration = embassy_time::Duration::from_millis(50);

/// The network interface: [`DRIVER_LINK`], and a static address (configured whenever
/// the link is up).
pub struct SimInterface {
    /// The address the UI is served on.
    pub address: Ipv4Addr,
    /// The port the UI is served on.
    pub port: u16,
}

impl Interface for SimInterface {
    fn is_link_up(&self) -> bool {
        DRIVER_LINK.load(Ordering::Acquire)
    }

    fn is_config_up(&self) -> bool {
        self.is_link_up()
    }

    async fn wait_config_up(&self) {
        while !self.is_config_up() {
            embassy_time::Timer::after(LINK_POLL).await;
        }
    }

    fn address(&self) -> Option<Ipv4Addr> {
        self.is_config_up().then_some(self.address)
    }

    fn port(&self) -> u16 {
        self.port
    }
}

/// Reset `stream`: linger 0, then the drop sends RST.
fn reset(stream: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).set_linger(Some(StdDuration::ZERO))
}

/// The listening socket, handing out [`Socket`]s while the link is up.
pub struct Acceptor(Async<TcpListener>);

impl Acceptor {
    /// Accept on `listener` (made non-blocking).
    pub fn new(listener: TcpListener) -> io::Result<Self> {
        Async::new(listener).map(Acceptor)
    }
}

impl edge_nal::TcpAccept for Acceptor {
    type Error = io::Error;
    type Socket<'a>
        = Socket
    where
        Self: 'a;

    async fn accept(&self) -> io::Result<(SocketAddr, Socket)> {
        // One connection per turn; it goes round only while the link is down, and the
        // backlog bounds every accept with its deadline.
        loop {
            let (stream, remote) = self.0.accept().await?;
            if DRIVER_LINK.load(Ordering::Acquire) {
                return Ok((remote, Socket(edge_nal_std::TcpSocket::new(stream))));
            }
            let _ = reset(stream.get_ref());
            REFUSED_WHILE_DOWN.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// edge-nal-std's socket whose `abort` sends RST.
pub struct Socket(edge_nal_std::TcpSocket);

impl embedded_io_async::ErrorType for Socket {
    type Error = io::Error;
}

impl embedded_io_async::Read for Socket {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        embedded_io_async::Read::read(&mut self.0, buf).await
    }
}

impl embedded_io_async::Write for Socket {
    async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        embedded_io_async::Write::write(&mut self.0, buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        embedded_io_async::Write::flush(&mut self.0).await
    }
}

impl edge_nal::Readable for Socket {
    async fn readable(&mut self) -> io::Result<()> {
        edge_nal::Readable::readable(&mut self.0).await
    }
}

impl edge_nal::TcpShutdown for Socket {
    async fn close(&mut self, what: edge_nal::Close) -> io::Result<()> {
        edge_nal::TcpShutdown::close(&mut self.0, what).await
    }

    /// RST once the socket is dropped (every caller drops it right after).
    async fn abort(&mut self) -> io::Result<()> {
        reset(self.0.get_ref())
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
        edge_nal::TcpSplit::split(&mut self.0)
    }
}
