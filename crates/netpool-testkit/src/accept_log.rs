//! [`AcceptLog`]: the [`ScriptedStack`] with a record of every connection its `accept`
//! handed to the application, in order.
//!
//! The pool decides, right after an accept, whether to serve the connection or to
//! release it (a rejection). The record is the ground truth a test compares the
//! pool's accepts and rejection counters with. Every other call, and every extension
//! trait, goes to the scripted stack unchanged (its native behaviour).

use std::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack, TcpFullStack};
use netpool::stack::{
    LinkStatus, PcbDiagnostics, PeerStatus, SendFlag, TcpAbort, TcpBacklog, TcpPeerStatus, TcpPush,
    TcpSendFlags, TcpSendQueue,
};
use netpool::LinkState;

use crate::scripted::{PeerId, ScriptedError, ScriptedStack, SockId};

/// A [`ScriptedStack`] that records each connection `accept` returns.
#[derive(Debug, Default)]
pub struct AcceptLog {
    inner: ScriptedStack,
    accepted: Vec<PeerId>,
}

impl AcceptLog {
    /// Wrap a scripted stack.
    pub fn new(inner: ScriptedStack) -> Self {
        AcceptLog {
            inner,
            accepted: Vec::new(),
        }
    }

    /// The scripted stack (peer side, introspection).
    pub fn sim(&self) -> &ScriptedStack {
        &self.inner
    }

    /// The scripted stack, mutably.
    pub fn sim_mut(&mut self) -> &mut ScriptedStack {
        &mut self.inner
    }

    /// Every connection `accept` has returned so far, in order.
    pub fn accepted(&self) -> &[PeerId] {
        &self.accepted
    }
}

impl TcpClientStack for AcceptLog {
    type TcpSocket = SockId;
    type Error = ScriptedError;

    fn socket(&mut self) -> Result<SockId, ScriptedError> {
        self.inner.socket()
    }
    fn connect(&mut self, sock: &mut SockId, remote: SocketAddr) -> nb::Result<(), ScriptedError> {
        self.inner.connect(sock, remote)
    }
    fn send(&mut self, sock: &mut SockId, data: &[u8]) -> nb::Result<usize, ScriptedError> {
        self.inner.send(sock, data)
    }
    fn receive(&mut self, sock: &mut SockId, buf: &mut [u8]) -> nb::Result<usize, ScriptedError> {
        self.inner.receive(sock, buf)
    }
    fn close(&mut self, sock: SockId) -> Result<(), ScriptedError> {
        self.inner.close(sock)
    }
}

impl TcpFullStack for AcceptLog {
    fn bind(&mut self, sock: &mut SockId, port: u16) -> Result<(), ScriptedError> {
        self.inner.bind(sock, port)
    }
    fn listen(&mut self, sock: &mut SockId) -> Result<(), ScriptedError> {
        self.inner.listen(sock)
    }
    fn accept(&mut self, sock: &mut SockId) -> nb::Result<(SockId, SocketAddr), ScriptedError> {
        let (new, remote) = self.inner.accept(sock)?;
        let peer = self
            .inner
            .peer_of(new)
            .expect("an accepted socket belongs to a connection");
        self.accepted.push(peer);
        Ok((new, remote))
    }
}

impl TcpAbort for AcceptLog {
    const NATIVE_ABORT: bool = <ScriptedStack as TcpAbort>::NATIVE_ABORT;

    fn abort(&mut self, sock: SockId) -> Result<(), ScriptedError> {
        self.inner.abort(sock)
    }
}

impl TcpSendFlags for AcceptLog {
    const NATIVE_FLAGS: bool = <ScriptedStack as TcpSendFlags>::NATIVE_FLAGS;

    fn send_flagged(
        &mut self,
        sock: &mut SockId,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, ScriptedError> {
        self.inner.send_flagged(sock, data, flag)
    }
}

impl TcpPush for AcceptLog {
    fn push(&mut self, sock: &mut SockId) -> nb::Result<(), ScriptedError> {
        self.inner.push(sock)
    }
}

impl TcpSendQueue for AcceptLog {
    fn send_queue(&mut self, sock: &SockId) -> Option<usize> {
        self.inner.send_queue(sock)
    }
}

impl TcpBacklog for AcceptLog {}
impl PcbDiagnostics for AcceptLog {}

impl TcpPeerStatus for AcceptLog {
    fn peer_status(&mut self, sock: &SockId) -> PeerStatus {
        self.inner.peer_status(sock)
    }
}

impl LinkStatus for AcceptLog {
    fn link_state(&self) -> LinkState {
        self.inner.link_state()
    }
}
