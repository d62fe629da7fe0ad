//! The socket mirror: what each of the SAM's eight socket numbers is to the bridge,
//! beside the pool slot of the same number.
//!
//! The state, protocol, ports and remote address the SAM reads are the pool's
//! ([`Pool::state`], [`Pool::slot_report`]); the mirror keeps only what the pool
//! cannot know:
//!
//! - **Which connection the SAM holds** ([`Phase`]): a connection is adopted when the
//!   pool puts one in the slot, and stays the SAM's until it lets go (`connAbort`,
//!   `connClose`, close-after-write). After `connClose` the number reads `free` at
//!   once while the pool still finishes the connection (`Closing`): the handle must
//!   not be adopted again as a new connection, and the pool's
//!   [`write_and_close`](Pool::write_and_close) needs calling until every byte is
//!   with the stack. One case has no pool slot at all: a connect the stack refused
//!   after `connCreate` had announced the number (`Refused`); only then does the
//!   mirror keep a protocol and remote address of its own.
//! - **A receive buffer**: `bytesAvailable` must be exact and `connRead` is answered
//!   while chip select is low (no I/O), so received bytes are read from the pool
//!   beforehand. netpool has no readable-byte count.
//! - **A transmit hold** (why the pool's coalescing buffer is not the only one):
//!   `connWrite`'s response, the count of bytes accepted, goes out *before* the SAM
//!   sends them and before any TCP write, so every byte counted must have a place
//!   already. netpool has no send-space query, and on a stack with a native MORE
//!   flag (Linux sockets, lwIP, the test stack) [`Pool::write`] hands bytes straight
//!   to the stack and buffers none: with a peer that reads slowly the stack takes,
//!   say, 300 of 2048 bytes the SAM was told were accepted, and the other 1748 must
//!   wait here (a pool with `TX = 0` has no buffer at all). The hold hands its bytes
//!   to the pool at every pass, with MORE unless the SAM pushed; what the pool takes
//!   is the pool's (coalesced, pushed, closed by it).

use core::net::{SocketAddr, SocketAddrV4};

use netpool::stack::Stack;
use netpool::{nb, ConnHandle, ConnState, Instant, Pool};

use super::plan::SocketView;
use super::SOCKETS;
use crate::protocol::{ip_to_wire, ConnStatusResponse};

/// A byte buffer kept compact at the front, filled through its free tail.
///
/// Hand-kept rather than `heapless::Vec`: the pool reads straight into the free
/// tail, which `heapless::Vec` offers only as uninitialised memory (unsafe to use,
/// and the crate forbids `unsafe`) or after zeroing it before every read.
pub(super) struct Buf<const B: usize> {
    data: [u8; B],
    len: usize,
}

impl<const B: usize> Buf<B> {
    const fn new() -> Self {
        Buf { data: [0; B], len: 0 }
    }
    pub(super) fn len(&self) -> usize {
        self.len
    }
    fn space(&self) -> usize {
        B - self.len
    }
    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
    fn append(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.space());
        self.data[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }
    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }
    fn clear(&mut self) {
        self.len = 0;
    }
}

/// What a socket number is to the bridge.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing (a pool connection in this slot is adopted at the next pass).
    Free,
    /// A pool connection, shown to the SAM with the pool's state.
    Open(ConnHandle),
    /// The SAM let go and reads `free`; the pool is finishing the connection
    /// ([`Pool::write_and_close`] with what the hold still has).
    Closing(ConnHandle),
    /// `connCreate` announced this number, then the stack refused the connect before
    /// the pool took the slot: no pool connection to mirror, so the number shows
    /// `aborted` until `connAbort` or `connClose`. (A connection the pool accepts
    /// into this slot meanwhile is adopted once the SAM has let go.)
    Refused {
        /// The protocol the SAM asked for.
        protocol: u8,
        /// Where it asked to connect.
        remote: SocketAddrV4,
    },
}

struct Socket<const B: usize> {
    phase: Phase,
    rx: Buf<B>,
    tx: Buf<B>,
    /// The pool said the peer is gone and every byte has been read.
    eof: bool,
    /// A push is owed: the SAM pushed (every byte of its write was accepted) and the
    /// push has not yet reached the pool with the last of those bytes, or as a flush.
    push: bool,
}

impl<const B: usize> Socket<B> {
    const fn new() -> Self {
        Socket {
            phase: Phase::Free,
            rx: Buf::new(),
            tx: Buf::new(),
            eof: false,
            push: false,
        }
    }

    fn reset(&mut self, phase: Phase) {
        self.phase = phase;
        self.rx.clear();
        self.tx.clear();
        self.eof = false;
        self.push = false;
    }
}

fn is_live<S: Stack, const L: usize, const TX: usize>(pool: &Pool<S, SOCKETS, L, TX>, h: ConnHandle) -> bool {
    matches!(pool.state(h), Ok(s) if s.is_in_use())
}

/// The eight sockets. Methods that change them return the bytes the SAM wrote that
/// could not be delivered (the connection died first).
pub(super) struct Sockets<const B: usize> {
    sockets: [Socket<B>; SOCKETS],
}

impl<const B: usize> Sockets<B> {
    pub(super) const fn new() -> Self {
        Sockets {
            sockets: [const { Socket::new() }; SOCKETS],
        }
    }

    /// Whether the SAM holds `h` (in socket `h.slot()`).
    pub(super) fn holds(&self, h: ConnHandle) -> bool {
        self.sockets.get(h.slot()).map(|s| s.phase) == Some(Phase::Open(h))
    }

    /// Bytes in socket `i`'s receive buffer and transmit hold.
    pub(super) fn buffered(&self, i: usize) -> Option<(usize, usize)> {
        self.sockets.get(i).map(|s| (s.rx.len(), s.tx.len()))
    }

    /// The received bytes of socket `i` (for `connRead`).
    pub(super) fn received(&self, i: usize) -> &[u8] {
        self.sockets[i].rx.bytes()
    }

    // -------------------------------------------------------------- the pass

    /// Adopt new pool connections, fill receive buffers, hand held bytes to the pool,
    /// finish connections the SAM let go of.
    pub(super) fn sync<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        now: Instant,
    ) -> u64 {
        (0..SOCKETS).map(|i| self.sync_socket(pool, i, now)).sum()
    }

    fn sync_socket<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        now: Instant,
    ) -> u64 {
        match self.sockets[i].phase {
            Phase::Free => {
                if let Some(h) = pool.handle_at(i) {
                    self.sockets[i].reset(Phase::Open(h));
                }
                0
            }
            Phase::Open(h) if !is_live(pool, h) => {
                // Only if the pool was reconfigured to free slots it ends itself.
                let dropped = self.sockets[i].tx.len() as u64;
                self.sockets[i].reset(Phase::Free);
                dropped
            }
            Phase::Open(h) => {
                self.fill(pool, i, h, now);
                self.feed(pool, i, h, now)
            }
            Phase::Closing(h) => self.finish(pool, i, h, now),
            Phase::Refused { .. } => 0,
        }
    }

    /// Read what the pool has into the receive buffer.
    fn fill<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        h: ConnHandle,
        now: Instant,
    ) {
        let sock = &mut self.sockets[i];
        if sock.eof || sock.rx.space() == 0 {
            return;
        }
        let len = sock.rx.len;
        match pool.read(h, &mut sock.rx.data[len..], now) {
            Ok(n) => sock.rx.len += n,
            Err(nb::Error::WouldBlock) => {}
            Err(nb::Error::Other(_)) => sock.eof = true,
        }
    }

    /// Hand held bytes to the pool, with MORE unless a push is owed; then a push
    /// owed with nothing left to carry it is a flush.
    fn feed<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        h: ConnHandle,
        now: Instant,
    ) -> u64 {
        let sock = &mut self.sockets[i];
        if sock.tx.len() > 0 {
            match pool.write(h, sock.tx.bytes(), sock.push, now) {
                Ok(taken) => {
                    sock.tx.consume(taken);
                    if sock.tx.len() == 0 {
                        // The push went with the last byte.
                        sock.push = false;
                    }
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(_)) => {
                    // The connection is gone: nobody will take these bytes.
                    let dropped = sock.tx.len() as u64;
                    sock.tx.clear();
                    sock.push = false;
                    return dropped;
                }
            }
        }
        if sock.tx.len() == 0 && sock.push {
            // A late push (bytes already handed over with MORE): the stack sends what
            // it holds now. Kept owed while the pool still holds bytes the stack
            // refuses; dropped once the connection has ended.
            match pool.flush(h, now) {
                Ok(()) | Err(nb::Error::Other(_)) => sock.push = false,
                Err(nb::Error::WouldBlock) => {}
            }
        }
        0
    }

    /// A connection the SAM let go of: every held byte goes with push, then the
    /// pool's [`write_and_close`](Pool::write_and_close) closes once every byte is
    /// with the stack; what arrives meanwhile is discarded (unread data would make
    /// the close a reset). The pool's stall reaper bounds how long this takes.
    fn finish<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        h: ConnHandle,
        now: Instant,
    ) -> u64 {
        let mut dropped = 0;
        if is_live(pool, h) {
            let mut scratch = [0u8; 64];
            let _ = pool.read(h, &mut scratch, now);
            self.sockets[i].push = true;
            dropped = self.feed(pool, i, h, now);
            if self.sockets[i].tx.len() == 0 {
                if let Err(nb::Error::Other(_)) = pool.write_and_close(h, &[], now) {
                    // Ended under us (reaped, reset): the pool holds the slot until
                    // it is closed.
                    let _ = pool.close(h, now);
                }
            }
        }
        let sock = &mut self.sockets[i];
        if !is_live(pool, h) {
            dropped += sock.tx.len() as u64;
            sock.reset(Phase::Free);
        }
        dropped
    }

    // -------------------------------------------------------------- what the SAM sees

    /// The state the SAM sees: the pool's, except that `otherEndClosed` waits until
    /// the receive buffer is drained.
    pub(super) fn wire_state<S: Stack, const L: usize, const TX: usize>(
        &self,
        pool: &Pool<S, SOCKETS, L, TX>,
        i: usize,
    ) -> ConnState {
        let sock = &self.sockets[i];
        match sock.phase {
            Phase::Free | Phase::Closing(_) => ConnState::Free,
            Phase::Refused { .. } => ConnState::Aborted,
            Phase::Open(h) => match pool.state(h) {
                Ok(ConnState::OtherEndClosed) if sock.rx.len() > 0 || !sock.eof => ConnState::Connected,
                Ok(s) => s,
                Err(_) => ConnState::Free,
            },
        }
    }

    /// Socket `i` as the planner sees it.
    pub(super) fn view<S: Stack, const L: usize, const TX: usize>(
        &self,
        pool: &Pool<S, SOCKETS, L, TX>,
        i: usize,
    ) -> SocketView {
        self.view_in(i, self.wire_state(pool, i))
    }

    /// Socket `i` as the planner sees it, its wire state being `state`.
    fn view_in(&self, i: usize, state: ConnState) -> SocketView {
        let sock = &self.sockets[i];
        let writable = matches!(sock.phase, Phase::Open(_))
            && matches!(
                state,
                ConnState::Connecting | ConnState::Connected | ConnState::OtherEndClosed
            );
        SocketView {
            readable: if matches!(sock.phase, Phase::Open(_)) {
                sock.rx.len()
            } else {
                0
            },
            write_space: if writable { sock.tx.space() } else { 0 },
            writable,
        }
    }

    /// The lowest socket number free for the SAM and in the pool.
    pub(super) fn vacant<S: Stack, const L: usize, const TX: usize>(
        &self,
        pool: &Pool<S, SOCKETS, L, TX>,
    ) -> Option<usize> {
        (0..SOCKETS).find(|&i| self.sockets[i].phase == Phase::Free && pool.handle_at(i).is_none())
    }

    /// The SAM's status snapshot of socket `i` (`connGetStatus`). Protocol, local
    /// port and remote address are the pool's slot report's.
    pub(super) fn conn_status<S: Stack, const L: usize, const TX: usize>(
        &self,
        pool: &Pool<S, SOCKETS, L, TX>,
        i: usize,
        rssi: i8,
        now: Instant,
    ) -> ConnStatusResponse {
        let sock = &self.sockets[i];
        let (mut connected, mut closed, mut state) = (0u16, 0u16, ConnState::Free);
        for j in 0..SOCKETS {
            let s = self.wire_state(pool, j);
            if j == i {
                state = s;
            }
            match s {
                ConnState::Connected => connected |= 1 << j,
                ConnState::OtherEndClosed | ConnState::Aborted => closed |= 1 << j,
                _ => {}
            }
        }
        let (protocol, local_port, remote) = match sock.phase {
            Phase::Open(h) => match pool.slot_report(i, now) {
                Some(r) if r.generation == h.generation() => (
                    r.protocol,
                    r.local_port,
                    match r.remote {
                        Some(SocketAddr::V4(a)) => Some(a),
                        _ => None,
                    },
                ),
                _ => (0, 0, None),
            },
            Phase::Refused { protocol, remote } => (protocol, 0, Some(remote)),
            Phase::Free | Phase::Closing(_) => (0, 0, None),
        };
        let view = self.view_in(i, state);
        ConnStatusResponse {
            state,
            socket_number: i as u8,
            protocol,
            rssi,
            local_port,
            remote_port: remote.map_or(0, |a| a.port()),
            remote_ip: remote.map_or(0, |a| ip_to_wire(*a.ip())),
            bytes_available: view.readable as u16,
            write_buffer_space: view.write_space as u16,
            connected_sockets: connected,
            other_end_closed_sockets: closed,
        }
    }

    // -------------------------------------------------------------- after a transfer

    /// `connAbort`: RST, the number is free.
    pub(super) fn abort<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        now: Instant,
    ) {
        if let Phase::Open(h) | Phase::Closing(h) = self.sockets[i].phase {
            let _ = pool.abort(h, now);
        }
        self.sockets[i].reset(Phase::Free);
    }

    /// `connClose`: the number reads `free` at once; held bytes still go out, then
    /// FIN.
    pub(super) fn close<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        now: Instant,
    ) -> u64 {
        match self.sockets[i].phase {
            Phase::Open(h) => self.let_go(pool, i, h, now),
            Phase::Refused { .. } => {
                self.sockets[i].reset(Phase::Free);
                0
            }
            Phase::Free | Phase::Closing(_) => 0,
        }
    }

    fn let_go<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        h: ConnHandle,
        now: Instant,
    ) -> u64 {
        let sock = &mut self.sockets[i];
        sock.rx.clear();
        sock.phase = Phase::Closing(h);
        self.finish(pool, i, h, now)
    }

    /// `connWrite` after its data arrived: hold the bytes (all of them: the planner
    /// promised no more than the hold's space) and hand them on. Returns the bytes
    /// held and the bytes dropped.
    pub(super) fn write<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        data: &[u8],
        (push, close): (bool, bool),
        now: Instant,
    ) -> (usize, u64) {
        let Phase::Open(h) = self.sockets[i].phase else {
            return (0, 0);
        };
        let sock = &mut self.sockets[i];
        let n = sock.tx.append(data);
        sock.push |= push;
        let dropped = if close {
            self.let_go(pool, i, h, now)
        } else {
            self.feed(pool, i, h, now)
        };
        (n, dropped)
    }

    /// `connRead` sent `len` bytes: forget them and read more.
    pub(super) fn consume<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        i: usize,
        len: usize,
        now: Instant,
    ) {
        self.sockets[i].rx.consume(len);
        if let Phase::Open(h) = self.sockets[i].phase {
            self.fill(pool, i, h, now);
        }
    }

    /// The pool took the connect into slot `i`.
    pub(super) fn connected(&mut self, h: ConnHandle) {
        self.sockets[h.slot()].reset(Phase::Open(h));
    }

    /// The stack refused the connect announced as number `i`.
    pub(super) fn refused(&mut self, i: usize, protocol: u8, remote: SocketAddrV4) {
        self.sockets[i].reset(Phase::Refused { protocol, remote });
    }

    /// `networkStop`: every pool connection goes, including one accepted into the
    /// slot of a refused connect and not yet shown.
    pub(super) fn abort_all<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, SOCKETS, L, TX>,
        now: Instant,
    ) {
        for (i, sock) in self.sockets.iter_mut().enumerate() {
            if let Some(h) = pool.handle_at(i) {
                let _ = pool.abort(h, now);
            }
            sock.reset(Phase::Free);
        }
    }
}
