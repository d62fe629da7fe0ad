//! The board's network for [`net`](super) (feature `embassy-net`): embassy-net's
//! [`Stack`] is the [`Interface`], edge-nal-embassy's sockets are the web server's,
//! and the socket storage is sized for them. The firmware and `furnace-net-host` use
//! it.

use core::future::Future;
use core::net::Ipv4Addr;

use edge_nal::TcpBind;
use edge_nal_embassy::{Tcp, TcpAccept, TcpError};
use embassy_net::Stack;

use super::{Interface, HTTP_PORT, SOCKETS, TCP_RX, TCP_TX};

/// The web server's socket on embassy-net.
pub type Socket<'d> = edge_nal_embassy::TcpSocket<'d>;
/// The TCP socket buffers: one set per socket ([`SOCKETS`]).
pub type TcpBuffers = edge_nal_embassy::TcpBuffers<SOCKETS, TCP_TX, TCP_RX>;
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

/// The acceptor the [`WebBacklog`](super::WebBacklog) arms its accepts on:
/// [`HTTP_PORT`] on every address of `tcp`'s stack.
pub fn listen<'d>(tcp: &'d Tcp<'d>) -> impl Future<Output = Result<TcpAccept<'d>, TcpError>> + 'd {
    tcp.bind(core::net::SocketAddr::new(
        Ipv4Addr::UNSPECIFIED.into(),
        HTTP_PORT,
    ))
}
