//! The sync driver: a fixed pool of connections over an embedded-nal stack.

use core::net::SocketAddr;

use embedded_nal::nb;

use crate::config::{Config, RejectPolicy};
use crate::error::{Classify, ConnError, ConnectError, ErrorClass, ListenError};
use crate::handle::{CloseReason, ConnHandle, ListenerId};
use crate::link::LinkState;
use crate::listener::{admit, ListenMode, ListenOutcome, ListenParams, Listener, Rejection};
use crate::report::{Counters, ListenerReport, Report, SlotReport};
use crate::slot::{NewConn, Origin, Slot};
use crate::stack::{PeerStatus, Stack};
use crate::state::ConnState;
use crate::time::{Duration, Instant};
use crate::write;

/// A connection handed out by [`Pool::accept_next`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Accepted {
    /// The new connection.
    pub handle: ConnHandle,
    /// The port it arrived on.
    pub port: u16,
    /// The listener's protocol tag.
    pub protocol: u8,
    /// The peer.
    pub remote: SocketAddr,
}

/// What one [`Pool::poll`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PollSummary {
    /// Connections accepted and given a slot (see [`Pool::accept_next`]).
    pub accepted: u16,
    /// Incoming connections turned away.
    pub rejected: u16,
    /// Outgoing connections that became established.
    pub connected: u16,
    /// Connections whose peer went away.
    pub peer_gone: u16,
    /// Connections the pool closed or aborted itself (stall, idle, abandoned,
    /// connect failure, fatal error).
    pub closed: u16,
}

/// How a socket is given back to the stack.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Release {
    /// FIN, after handing over coalesced bytes.
    Close,
    /// RST where the stack can.
    Abort,
}

/// A fixed-capacity pool of TCP connections over a [`Stack`].
///
/// - `N`: connection slots (at most 255);
/// - `L`: listener slots (at most 255);
/// - `TX`: bytes of coalescing buffer per slot, used only when the stack has no native
///   MORE flag ([`TcpSendFlags`](crate::stack::TcpSendFlags)); use 0 for stacks that do.
///
/// # Call order
///
/// The pool never blocks and has no clock. Drive it from one loop:
///
/// 1. [`poll(now)`](Self::poll) — accepts, finishes connects, flushes coalesced
///    bytes, reaps stalled and idle connections, notices peers that left;
/// 2. [`accept_next()`](Self::accept_next) until `None` — the new connections;
/// 3. [`read`](Self::read) / [`write`](Self::write) / [`close`](Self::close) on handles;
/// 4. sleep until the next network event or [`poll_at()`](Self::poll_at).
///
/// Every operation on a handle is O(1) and makes at most three calls into the stack;
/// `poll` and [`report`](Self::report) are O(N + L).
pub struct Pool<S: Stack, const N: usize, const L: usize, const TX: usize = 256> {
    stack: S,
    config: Config,
    slots: [Slot<S::TcpSocket, TX>; N],
    listeners: [Option<Listener<S::TcpSocket>>; L],
    listener_generation: u16,
    counters: Counters,
    link: LinkState,
}

impl<S: Stack, const N: usize, const L: usize, const TX: usize> Pool<S, N, L, TX> {
    const CAPACITY_FITS: () = assert!(
        N <= u8::MAX as usize && L <= u8::MAX as usize,
        "a pool has at most 255 connection and 255 listener slots"
    );

    /// A pool over `stack`, with every slot free and no listener.
    pub const fn new(stack: S, config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS;
        Pool {
            stack,
            config,
            slots: [const { Slot::new() }; N],
            listeners: [const { None }; L],
            listener_generation: 0,
            counters: Counters::ZERO,
            link: LinkState::Unknown,
        }
    }

    /// The stack.
    pub fn stack(&self) -> &S {
        &self.stack
    }

    /// The stack, mutably (e.g. to drive its interface or set its link state).
    pub fn stack_mut(&mut self) -> &mut S {
        &mut self.stack
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replace the configuration; takes effect at the next call.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    // ---------------------------------------------------------------- listeners

    /// Listen on `port`, or change the parameters of the port's listener.
    ///
    /// `max_conns == 0` stops the port's listener. Connections already accepted on a
    /// port keep running when its listener stops or its cap drops.
    ///
    /// ```
    /// # use netpool::*;
    /// # fn demo<S: netpool::stack::Stack>(pool: &mut Pool<S, 8, 2>) -> Result<(), ListenError> {
    /// pool.listen(80, ListenParams::new(4))?;                       // HTTP, at most 4
    /// pool.listen(1024, ListenParams::new(1).with_mode(ListenMode::OneShot))?; // FTP data
    /// pool.listen(80, ListenParams::new(0))?;                       // stop HTTP
    /// # Ok(()) }
    /// ```
    pub fn listen(&mut self, port: u16, params: ListenParams) -> Result<ListenOutcome, ListenError> {
        if let Some(i) = self.listener_index(port) {
            if params.max_conns == 0 {
                self.stop_listener(i);
                return Ok(ListenOutcome::Stopped);
            }
            let Some(l) = self.listeners[i].as_mut() else {
                return Err(ListenError::TableFull);
            };
            l.params = params;
            return Ok(ListenOutcome::Updated(ListenerId {
                index: i as u8,
                generation: l.generation,
            }));
        }
        if params.max_conns == 0 {
            return Ok(ListenOutcome::Stopped);
        }
        let Some(i) = self.listeners.iter().position(Option::is_none) else {
            return Err(ListenError::TableFull);
        };
        let mut socket = self.stack.socket().map_err(|e| ListenError::Stack(e.class()))?;
        let bound = match self.stack.bind(&mut socket, port) {
            Ok(()) => self.stack.listen(&mut socket),
            Err(e) => Err(e),
        };
        if let Err(e) = bound {
            let _ = self.stack.close(socket);
            return Err(ListenError::Stack(e.class()));
        }
        self.listener_generation = self.listener_generation.wrapping_add(1);
        self.listeners[i] = Some(Listener {
            port,
            params,
            socket,
            generation: self.listener_generation,
        });
        Ok(ListenOutcome::Started(ListenerId {
            index: i as u8,
            generation: self.listener_generation,
        }))
    }

    /// Stop listening on `port`. Returns whether a listener was stopped.
    pub fn stop_listening(&mut self, port: u16) -> bool {
        match self.listener_index(port) {
            Some(i) => {
                self.stop_listener(i);
                true
            }
            None => false,
        }
    }

    /// The parameters of the listener on `port`, if any.
    pub fn listener(&self, port: u16) -> Option<ListenParams> {
        self.listener_index(port)
            .and_then(|i| self.listeners[i].as_ref())
            .map(|l| l.params)
    }

    fn listener_index(&self, port: u16) -> Option<usize> {
        self.listeners
            .iter()
            .position(|l| l.as_ref().is_some_and(|l| l.port == port))
    }

    fn stop_listener(&mut self, i: usize) {
        if let Some(l) = self.listeners[i].take() {
            let _ = self.stack.close(l.socket);
        }
    }

    /// Take what is waiting in one listener's backlog (bounded per poll).
    fn drain_listener(&mut self, li: usize, now: Instant, summary: &mut PollSummary) {
        for _ in 0..self.config.accepts_per_poll.max(1) {
            let Some(l) = self.listeners[li].as_mut() else {
                return;
            };
            let (socket, remote) = match self.stack.accept(&mut l.socket) {
                Ok(accepted) => accepted,
                Err(nb::Error::WouldBlock) => return,
                Err(nb::Error::Other(e)) => {
                    if !e.class().is_retry() {
                        self.counters.accept_errors = self.counters.accept_errors.wrapping_add(1);
                    }
                    return;
                }
            };
            let (port, params) = (l.port, l.params);
            let on_port = self.slots.iter().filter(|s| s.counts_against(port)).count();
            match admit(&params, on_port, self.free_slot()) {
                Ok(i) => {
                    let new = NewConn {
                        socket,
                        state: ConnState::Connected,
                        origin: Origin::Accepted { port },
                        remote,
                        protocol: params.protocol,
                    };
                    self.slots[i].occupy(i, new, now);
                    self.counters.accepted = self.counters.accepted.wrapping_add(1);
                    self.note_occupied();
                    summary.accepted += 1;
                    if params.mode == ListenMode::OneShot {
                        self.stop_listener(li);
                        return;
                    }
                }
                Err(why) => {
                    // Release at once: never leave it holding a PCB in the backlog.
                    let _ = match self.config.reject {
                        RejectPolicy::Abort => self.stack.abort(socket),
                        RejectPolicy::Close => self.stack.close(socket),
                    };
                    let c = &mut self.counters;
                    c.rejected = c.rejected.wrapping_add(1);
                    match why {
                        Rejection::PortCap => c.rejected_port_cap = c.rejected_port_cap.wrapping_add(1),
                        Rejection::PoolFull => {
                            c.rejected_pool_full = c.rejected_pool_full.wrapping_add(1);
                            c.exhausted = c.exhausted.wrapping_add(1);
                        }
                    }
                    summary.rejected += 1;
                }
            }
        }
    }

    /// The next accepted connection not yet handed out, if any.
    ///
    /// Connections are accepted by [`poll`](Self::poll); this only hands them out.
    /// Applications that scan slots instead (wire protocols polling every socket) may
    /// ignore it.
    pub fn accept_next(&mut self) -> Option<Accepted> {
        let (i, slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.unclaimed && s.state.is_in_use())?;
        slot.unclaimed = false;
        Some(Accepted {
            handle: slot.handle(i),
            port: slot.local_port(),
            protocol: slot.protocol,
            remote: slot.remote?,
        })
    }

    // ---------------------------------------------------------------- connect

    /// Start an outgoing connection. Never blocks.
    ///
    /// Refused at once, with nothing allocated and nothing sent, when the link is
    /// down ([`LinkStatus`](crate::LinkStatus); the pool never probes), when every
    /// slot is in use, or when the stack refuses. Otherwise the slot is `Connecting`
    /// until [`poll`](Self::poll) sees it established (`Connected`) or failed
    /// (`Aborted`, with [`CloseReason::ConnectFailed`] or
    /// [`CloseReason::ConnectTimeout`] once `timeout` has passed).
    pub fn connect(
        &mut self,
        remote: SocketAddr,
        protocol: u8,
        timeout: Duration,
        now: Instant,
    ) -> Result<ConnHandle, ConnectError> {
        self.link = self.stack.link_state();
        if !self.link.allows_connect() {
            return Err(ConnectError::LinkDown);
        }
        let Some(i) = self.free_slot() else {
            self.counters.exhausted = self.counters.exhausted.wrapping_add(1);
            return Err(ConnectError::PoolFull);
        };
        let mut socket = self.stack.socket().map_err(|e| ConnectError::Stack(e.class()))?;
        self.counters.connects = self.counters.connects.wrapping_add(1);
        let state = match self.stack.connect(&mut socket, remote) {
            Ok(()) => ConnState::Connected,
            Err(nb::Error::WouldBlock) => ConnState::Connecting,
            Err(nb::Error::Other(e)) if e.class().is_retry() => ConnState::Connecting,
            Err(nb::Error::Other(e)) => {
                let _ = self.stack.close(socket);
                self.counters.connect_failed = self.counters.connect_failed.wrapping_add(1);
                return Err(ConnectError::Stack(e.class()));
            }
        };
        let origin = Origin::Outgoing {
            deadline: now + timeout,
        };
        let new = NewConn {
            socket,
            state,
            origin,
            remote,
            protocol,
        };
        let handle = self.slots[i].occupy(i, new, now);
        self.note_occupied();
        Ok(handle)
    }

    // ---------------------------------------------------------------- data

    /// Read received bytes into `buf`.
    ///
    /// Returns the bytes read, `WouldBlock` when nothing is waiting, and
    /// [`ConnError::PeerGone`] once the peer has closed *and* every byte it sent has
    /// been read: data received before a FIN stays readable.
    pub fn read(&mut self, h: ConnHandle, buf: &mut [u8], now: Instant) -> nb::Result<usize, ConnError> {
        let i = self.live(h)?;
        let slot = &mut self.slots[i];
        match slot.state {
            ConnState::Connecting => return Err(nb::Error::WouldBlock),
            ConnState::Connected | ConnState::OtherEndClosed => {}
            _ => return Err(nb::Error::Other(self.error_for(i))),
        }
        let Some(socket) = slot.socket.as_mut() else {
            return Err(nb::Error::Other(self.error_for(i)));
        };
        if buf.is_empty() {
            return Ok(0);
        }
        match self.stack.receive(socket, buf) {
            Ok(0) => {
                self.peer_finished(i, now);
                Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Closed)))
            }
            Ok(n) => {
                let n = n.min(buf.len());
                slot.bytes_in += n as u64;
                slot.last_activity = now;
                Ok(n)
            }
            Err(nb::Error::WouldBlock) => Err(self.nothing_to_read(i)),
            Err(nb::Error::Other(e)) => {
                let class = e.class();
                if class.is_retry() {
                    return Err(self.nothing_to_read(i));
                }
                self.on_error(i, class, now);
                Err(nb::Error::Other(self.error_for(i)))
            }
        }
    }

    /// Write `data`; returns the bytes taken, which may be fewer than `data.len()`.
    ///
    /// `push == false` means MORE (more data follows: coalesce); `push == true` means
    /// send now. When nothing at all can be taken the call returns `WouldBlock` at
    /// once: call again after a later [`poll`](Self::poll). Never spins. See
    /// [`crate::write`] for the full contract.
    ///
    /// Writing is allowed in `OtherEndClosed` after a peer FIN (a half-close), not
    /// after a reset.
    pub fn write(
        &mut self,
        h: ConnHandle,
        data: &[u8],
        push: bool,
        now: Instant,
    ) -> nb::Result<usize, ConnError> {
        let i = self.live(h)?;
        let slot = &mut self.slots[i];
        match slot.state {
            ConnState::Connecting => return Err(nb::Error::WouldBlock),
            ConnState::Connected | ConnState::OtherEndClosed if slot.can_send => {}
            _ => return Err(nb::Error::Other(self.error_for(i))),
        }
        let Some(socket) = slot.socket.as_mut() else {
            return Err(nb::Error::Other(self.error_for(i)));
        };
        let out = write::write(&mut self.stack, socket, &mut slot.tx, data, push, now);
        slot.bytes_out += out.taken as u64;
        if out.taken > 0 {
            slot.last_activity = now;
        }
        if let Some(class) = out.error {
            self.on_error(i, class, now);
            if out.taken == 0 {
                return Err(nb::Error::Other(self.error_for(i)));
            }
        }
        if out.taken == 0 && !data.is_empty() {
            return Err(nb::Error::WouldBlock);
        }
        Ok(out.taken)
    }

    /// Write `data` with push, then close once every byte — this call's and any
    /// coalesced before it — is with the stack (the bridge protocol's
    /// close-after-write). Returns the bytes of `data` taken; when the connection is
    /// still open afterwards, call again with the rest (or with nothing, to finish).
    pub fn write_and_close(
        &mut self,
        h: ConnHandle,
        data: &[u8],
        now: Instant,
    ) -> nb::Result<usize, ConnError> {
        let taken = match self.write(h, data, true, now) {
            Ok(n) => n,
            Err(nb::Error::WouldBlock) => 0,
            Err(e) => return Err(e),
        };
        let i = self.live(h).map_err(nb::Error::Other)?;
        if taken == data.len() && self.slots[i].tx.coalescer.is_empty() {
            self.close(h, now).map_err(nb::Error::Other)?;
        }
        Ok(taken)
    }

    /// Hand coalesced bytes to the stack now (a push without data). `Ok` once
    /// netpool holds none; `WouldBlock` while the stack refuses some.
    pub fn flush(&mut self, h: ConnHandle, now: Instant) -> nb::Result<(), ConnError> {
        self.write(h, &[], true, now)?;
        let i = self.live(h).map_err(nb::Error::Other)?;
        if self.slots[i].tx.coalescer.is_empty() {
            Ok(())
        } else {
            Err(nb::Error::WouldBlock)
        }
    }

    // ---------------------------------------------------------------- close

    /// Close now: hand coalesced bytes to the stack, send FIN, free the slot.
    ///
    /// The slot is free when this returns; the stack finishes FIN/TIME-WAIT on its own.
    /// Idempotent: closing a connection that has already ended is `Ok`. A stale handle
    /// (its slot reused) is refused and closes nothing.
    pub fn close(&mut self, h: ConnHandle, now: Instant) -> Result<(), ConnError> {
        self.end(h, Release::Close, CloseReason::Closed, now)
    }

    /// Abort now: RST where the stack can (else close), free the slot. Idempotent,
    /// like [`close`](Self::close).
    pub fn abort(&mut self, h: ConnHandle, now: Instant) -> Result<(), ConnError> {
        self.end(h, Release::Abort, CloseReason::Aborted, now)
    }

    fn end(
        &mut self,
        h: ConnHandle,
        how: Release,
        reason: CloseReason,
        now: Instant,
    ) -> Result<(), ConnError> {
        match self.live(h) {
            Ok(i) => {
                if how == Release::Abort {
                    self.counters.aborted = self.counters.aborted.wrapping_add(1);
                }
                self.release(i, how, reason, now);
                Ok(())
            }
            Err(ConnError::Closed(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Give the slot's socket back to the stack and free the slot.
    fn release(&mut self, i: usize, how: Release, reason: CloseReason, now: Instant) {
        let slot = &mut self.slots[i];
        if let Some(mut socket) = slot.socket.take() {
            let result = match how {
                Release::Close => {
                    if slot.can_send {
                        let _ = write::flush(&mut self.stack, &mut socket, &mut slot.tx, now);
                    }
                    let lost = slot.tx.coalescer.len() as u32;
                    self.counters.dropped_on_close = self.counters.dropped_on_close.wrapping_add(lost);
                    self.stack.close(socket)
                }
                Release::Abort => self.stack.abort(socket),
            };
            // The socket is the stack's again whatever it says; nothing to retry.
            let _ = result;
        }
        slot.free(reason, now);
    }

    /// Shut the pool down: close every connection (FIN after handing over coalesced
    /// bytes), stop every listener, and give the stack back. Nothing is leaked in the
    /// stack (dropping a pool instead leaves its sockets there).
    pub fn into_stack(mut self, now: Instant) -> S {
        for i in 0..N {
            if self.slots[i].state.is_in_use() {
                self.release(i, Release::Close, CloseReason::Closed, now);
            }
        }
        for li in 0..L {
            self.stop_listener(li);
        }
        self.stack
    }

    // ---------------------------------------------------------------- poll

    /// Do the pool's periodic work at time `now`. O(N + L), never blocks.
    ///
    /// In order: read the link state; for every connection, finish or fail a
    /// connect, hand over due coalesced bytes, notice a peer that left, reap a send
    /// stall, apply the idle and abandoned timeouts; then take what waits in each
    /// listener's backlog (at most [`Config::accepts_per_poll`] each), serving or
    /// rejecting every connection. Freeing a slot never triggers an accept by itself.
    pub fn poll(&mut self, now: Instant) -> PollSummary {
        let mut summary = PollSummary::default();
        self.link = self.stack.link_state();
        for i in 0..N {
            self.service_slot(i, now, &mut summary);
        }
        for li in 0..L {
            self.drain_listener(li, now, &mut summary);
        }
        summary
    }

    fn service_slot(&mut self, i: usize, now: Instant, summary: &mut PollSummary) {
        match self.slots[i].state {
            ConnState::Connecting => self.advance_connect(i, now, summary),
            ConnState::Connected | ConnState::OtherEndClosed => self.watch_connection(i, now, summary),
            ConnState::Aborted => self.free_if_abandoned(i, now, summary),
            _ => {}
        }
    }

    fn advance_connect(&mut self, i: usize, now: Instant, summary: &mut PollSummary) {
        let slot = &mut self.slots[i];
        let (Origin::Outgoing { deadline }, Some(remote), Some(socket)) =
            (slot.origin, slot.remote, slot.socket.as_mut())
        else {
            self.fail_connect(i, CloseReason::ConnectFailed(ErrorClass::Fatal), now, summary);
            return;
        };
        if !self.link.allows_connect() {
            self.fail_connect(i, CloseReason::ConnectFailed(ErrorClass::NoRoute), now, summary);
            return;
        }
        match self.stack.connect(socket, remote) {
            Ok(()) => {
                slot.set_state(ConnState::Connected, now);
                slot.last_activity = now;
                slot.tx.progress.last_progress = now;
                summary.connected += 1;
            }
            Err(nb::Error::Other(e)) if !e.class().is_retry() => {
                self.fail_connect(i, CloseReason::ConnectFailed(e.class()), now, summary);
            }
            Err(_) if now >= deadline => self.fail_connect(i, CloseReason::ConnectTimeout, now, summary),
            Err(_) => {}
        }
    }

    /// A connect failed: release the socket at once, keep the slot `Aborted` so the
    /// application sees the failure and its reason.
    fn fail_connect(&mut self, i: usize, reason: CloseReason, now: Instant, summary: &mut PollSummary) {
        self.abort_in_place(i, reason, now);
        self.counters.connect_failed = self.counters.connect_failed.wrapping_add(1);
        summary.closed += 1;
    }

    /// Release the socket at once (RST where the stack can) but keep the slot,
    /// `Aborted`, so the application sees the failure and its reason.
    fn abort_in_place(&mut self, i: usize, reason: CloseReason, now: Instant) {
        let slot = &mut self.slots[i];
        if let Some(socket) = slot.socket.take() {
            let _ = self.stack.abort(socket);
        }
        slot.can_send = false;
        slot.tx.coalescer.clear();
        slot.note_reason(reason);
        slot.set_state(ConnState::Aborted, now);
    }

    fn watch_connection(&mut self, i: usize, now: Instant, summary: &mut PollSummary) {
        let config = self.config;
        let slot = &mut self.slots[i];
        let Some(socket) = slot.socket.as_mut() else {
            return;
        };

        if slot.can_send && slot.tx.coalescer.is_due(now, config.coalesce_delay) {
            if let Err(class) = write::flush(&mut self.stack, socket, &mut slot.tx, now) {
                self.on_error_counted(i, class, now, summary);
                return;
            }
        }

        match self.stack.peer_status(socket) {
            PeerStatus::Closed if slot.state == ConnState::Connected => {
                self.peer_finished(i, now);
                summary.peer_gone += 1;
            }
            PeerStatus::Gone(class)
                if !class.is_retry() && (slot.can_send || slot.state == ConnState::Connected) =>
            {
                self.on_error_counted(i, class, now, summary);
                return;
            }
            _ => {}
        }

        let slot = &mut self.slots[i];
        let Some(socket) = slot.socket.as_ref() else {
            return;
        };
        if slot.can_send && slot.tx.progress.sample_due(now, config.stall_grace) {
            let queue = self.stack.send_queue(socket);
            let pending = slot.tx.progress.observe(queue, slot.tx.coalescer.len(), now);
            if slot.tx.progress.is_stalled(pending, now, config.stall_grace) {
                self.counters.reaped = self.counters.reaped.wrapping_add(1);
                self.release(i, Release::Abort, CloseReason::Stalled, now);
                summary.closed += 1;
                return;
            }
        }

        if let Some(idle) = config.idle_timeout {
            if now.saturating_since(slot.last_activity) >= idle {
                self.counters.idle_closed = self.counters.idle_closed.wrapping_add(1);
                self.release(i, Release::Close, CloseReason::Idle, now);
                summary.closed += 1;
                return;
            }
        }

        if self.slots[i].state == ConnState::OtherEndClosed {
            self.free_if_abandoned(i, now, summary);
        }
    }

    fn free_if_abandoned(&mut self, i: usize, now: Instant, summary: &mut PollSummary) {
        let Some(after) = self.config.abandoned_after else {
            return;
        };
        let slot = &self.slots[i];
        // A half-closed connection still moving data is in use, not abandoned.
        let since = if slot.can_send {
            slot.state_since.max(slot.last_activity)
        } else {
            slot.state_since
        };
        if now.saturating_since(since) >= after {
            self.counters.abandoned = self.counters.abandoned.wrapping_add(1);
            self.release(i, Release::Abort, CloseReason::Abandoned, now);
            summary.closed += 1;
        }
    }

    /// The peer sent FIN: `OtherEndClosed`, still writable (half-close).
    fn peer_finished(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.state == ConnState::Connected {
            slot.set_state(ConnState::OtherEndClosed, now);
            slot.note_reason(CloseReason::PeerGone(ErrorClass::Closed));
            self.counters.peer_closed = self.counters.peer_closed.wrapping_add(1);
        }
    }

    fn on_error_counted(&mut self, i: usize, class: ErrorClass, now: Instant, summary: &mut PollSummary) {
        let was_connected = self.slots[i].state == ConnState::Connected;
        if class.is_peer_gone() {
            summary.peer_gone += u16::from(was_connected);
        } else if !class.is_retry() {
            summary.closed += 1;
        }
        self.on_error(i, class, now);
    }

    /// Apply an error's [`Disposition`](crate::Disposition) to a connection.
    fn on_error(&mut self, i: usize, class: ErrorClass, now: Instant) {
        match crate::handle::after_error(class) {
            None => {}
            Some((ConnState::OtherEndClosed, reason)) => {
                // The peer is gone: keep the socket so received data stays readable.
                let slot = &mut self.slots[i];
                slot.can_send = false;
                slot.tx.coalescer.clear();
                slot.note_reason(reason);
                if slot.state == ConnState::Connected {
                    slot.set_state(ConnState::OtherEndClosed, now);
                    self.counters.peer_closed = self.counters.peer_closed.wrapping_add(1);
                }
            }
            Some((_, reason)) => {
                self.abort_in_place(i, reason, now);
                self.counters.aborted = self.counters.aborted.wrapping_add(1);
            }
        }
    }

    /// The earliest time a timer in the pool (connect deadline, coalescing delay,
    /// stall grace, idle or abandoned timeout) may need [`poll`](Self::poll).
    /// Listeners still need polling for new connections.
    pub fn poll_at(&self) -> Option<Instant> {
        let c = &self.config;
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                ConnState::Connecting => match s.origin {
                    Origin::Outgoing { deadline } => Some(deadline),
                    Origin::Accepted { .. } => None,
                },
                ConnState::Connected | ConnState::OtherEndClosed => [
                    s.tx.progress.deadline(c.stall_grace),
                    s.tx.coalescer.deadline(c.coalesce_delay),
                    c.idle_timeout.map(|d| s.last_activity + d),
                    (s.state == ConnState::OtherEndClosed)
                        .then_some(c.abandoned_after)
                        .flatten()
                        .map(|d| s.state_since + d),
                ]
                .into_iter()
                .flatten()
                .min(),
                ConnState::Aborted => c.abandoned_after.map(|d| s.state_since + d),
                _ => None,
            })
            .min()
    }

    // ---------------------------------------------------------------- queries

    /// The state of a connection. A handle whose connection ended reads `Free`.
    pub fn state(&self, h: ConnHandle) -> Result<ConnState, ConnError> {
        self.slot_of(h).map(|i| self.slots[i].state)
    }

    /// Bytes this connection has handed to the stack that the peer has not yet
    /// acknowledged, plus what waits in netpool's coalescing buffer; `None` when the
    /// stack cannot tell ([`TcpSendQueue`](crate::stack::TcpSendQueue) fallback).
    /// One stack call; no side effects.
    pub fn send_queue(&mut self, h: ConnHandle) -> Result<Option<usize>, ConnError> {
        let i = self.live(h)?;
        let slot = &self.slots[i];
        let Some(socket) = slot.socket.as_ref() else {
            return Ok(Some(slot.tx.coalescer.len()));
        };
        Ok(self.stack.send_queue(socket).map(|q| q + slot.tx.coalescer.len()))
    }

    /// The handle of the connection in slot `slot`, if it is in use.
    pub fn handle_at(&self, slot: usize) -> Option<ConnHandle> {
        let s = self.slots.get(slot)?;
        s.state.is_in_use().then(|| s.handle(slot))
    }

    /// Handles of every slot in use.
    pub fn handles(&self) -> impl Iterator<Item = ConnHandle> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state.is_in_use())
            .map(|(i, s)| s.handle(i))
    }

    /// One slot's report (`None` if `slot >= N`).
    pub fn slot_report(&self, slot: usize, now: Instant) -> Option<SlotReport> {
        self.slots.get(slot).map(|s| s.report(slot, now))
    }

    /// Free slots now.
    pub fn free_slots(&self) -> usize {
        self.slots.iter().filter(|s| !s.state.is_in_use()).count()
    }

    /// The counters. O(N) (counts the slots in use).
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.in_use = (N - self.free_slots()) as u32;
        c
    }

    /// The link state as last read (at the last `poll` or `connect`).
    pub fn link(&self) -> LinkState {
        self.link
    }

    /// A snapshot of everything. O(N + L), no I/O.
    pub fn report(&self, now: Instant) -> Report<N, L> {
        Report {
            at: now,
            slots: core::array::from_fn(|i| self.slots[i].report(i, now)),
            listeners: core::array::from_fn(|i| {
                self.listeners[i].as_ref().map(|l| ListenerReport {
                    port: l.port,
                    params: l.params,
                    open: self.slots.iter().filter(|s| s.counts_against(l.port)).count() as u8,
                })
            }),
            counters: self.counters(),
            link: self.link,
        }
    }

    // ---------------------------------------------------------------- internals

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(|s| !s.state.is_in_use())
    }

    fn note_occupied(&mut self) {
        let in_use = (N - self.free_slots()) as u32;
        if in_use > self.counters.high_water {
            self.counters.high_water = in_use;
        }
    }

    /// The slot a handle names, if the handle is not stale (its connection may have
    /// ended: the slot is then `Free`).
    fn slot_of(&self, h: ConnHandle) -> Result<usize, ConnError> {
        match self.slots.get(h.slot()) {
            Some(slot) if slot.generation == h.generation => Ok(h.slot()),
            _ => Err(ConnError::Stale),
        }
    }

    /// The slot of a handle whose connection has not ended.
    fn live(&self, h: ConnHandle) -> Result<usize, ConnError> {
        let i = self.slot_of(h)?;
        let slot = &self.slots[i];
        if !slot.state.is_in_use() {
            return Err(ConnError::Closed(
                slot.close_reason.unwrap_or(CloseReason::Closed),
            ));
        }
        Ok(i)
    }

    /// Nothing to read now: wait, unless the connection is already known dead (a write
    /// or the reaper found out), in which case the reader learns it at once.
    fn nothing_to_read(&self, i: usize) -> nb::Error<ConnError> {
        let slot = &self.slots[i];
        if slot.state == ConnState::OtherEndClosed && !slot.can_send {
            nb::Error::Other(self.error_for(i))
        } else {
            nb::Error::WouldBlock
        }
    }

    /// The error a handle operation reports for a slot's current state.
    fn error_for(&self, i: usize) -> ConnError {
        let slot = &self.slots[i];
        crate::handle::ended_error(slot.state, slot.close_reason)
    }
}

impl<S: Stack, const N: usize, const L: usize, const TX: usize> core::fmt::Debug for Pool<S, N, L, TX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("slots", &N)
            .field("listeners", &L)
            .field("free", &self.free_slots())
            .field("counters", &self.counters)
            .finish()
    }
}
