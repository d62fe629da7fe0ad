//! The sync driver: a fixed pool of connections over an embedded-nal stack.

use core::net::SocketAddr;

use embedded_nal::nb;

use crate::config::Config;
use crate::error::{Classify, ConnError, ConnectError, ErrorClass, ListenError};
use crate::event::Event;
use crate::handle::{CloseReason, ConnHandle};
use crate::link::LinkState;
use crate::listener::{ListenOutcome, ListenParams};
use crate::report::{Counters, Report, SlotReport};
use crate::sansio::{Access, Core, ListenerIo, Release, Slot, SlotIo, SlotOutcome};
use crate::stack::{PeerStatus, Stack};
use crate::state::ConnState;
use crate::time::{Duration, Instant};
use crate::write::{self, Coalescer, TxSide};

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
///
/// The decisions (admission, states, timers, the error rule, counters, events) are
/// the connection core's, shared with the [async driver](crate::asynch); the pool
/// keeps the sockets and the coalescing buffers beside it and does the I/O.
pub struct Pool<S: Stack, const N: usize, const L: usize, const TX: usize = 256> {
    stack: S,
    core: Core<N, L>,
    sockets: [Option<S::TcpSocket>; N],
    buffers: [Coalescer<TX>; N],
    listener_sockets: [Option<S::TcpSocket>; L],
    link: LinkState,
}

impl<S: Stack, const N: usize, const L: usize, const TX: usize> Pool<S, N, L, TX> {
    const BUFFER_FITS: () = assert!(
        TX <= u16::MAX as usize,
        "a coalescing buffer holds at most 65 535 bytes"
    );

    /// A pool over `stack`, with every slot free and no listener.
    pub const fn new(stack: S, config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::BUFFER_FITS;
        Pool {
            stack,
            core: Core::new(config),
            sockets: [const { None }; N],
            buffers: [const { Coalescer::new() }; N],
            listener_sockets: [const { None }; L],
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
        self.core.config()
    }

    /// Replace the configuration; takes effect at the next call.
    pub fn set_config(&mut self, config: Config) {
        self.core.set_config(config);
        self.stack.set_handshake_deadline(config.handshake_deadline);
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
        let (stack, sockets) = (&mut self.stack, &mut self.listener_sockets);
        // The stack keeps the handshake lease of the sockets it arms for listeners.
        stack.set_handshake_deadline(self.core.config().handshake_deadline);
        self.core.handle_listen(port, params, |io| match io {
            ListenerIo::Close(i) => {
                if let Some(socket) = sockets[i].take() {
                    let _ = stack.close(socket);
                }
                Ok(())
            }
            ListenerIo::Open(i) => {
                let mut socket = stack.socket().map_err(|e| ListenError::Stack(e.class()))?;
                let bound = match stack.bind(&mut socket, port) {
                    Ok(()) => stack.listen(&mut socket),
                    Err(e) => Err(e),
                };
                if let Err(e) = bound {
                    let _ = stack.close(socket);
                    return Err(ListenError::Stack(e.class()));
                }
                sockets[i] = Some(socket);
                Ok(())
            }
        })
    }

    /// Stop listening on `port`. Returns whether a listener was stopped.
    pub fn stop_listening(&mut self, port: u16) -> bool {
        match self.core.listener_index(port) {
            Some(i) => {
                self.stop_listener(i);
                true
            }
            None => false,
        }
    }

    /// The parameters of the listener on `port`, if any.
    pub fn listener(&self, port: u16) -> Option<ListenParams> {
        self.core
            .listener_index(port)
            .and_then(|i| self.core.listener(i))
            .map(|l| l.params)
    }

    fn stop_listener(&mut self, i: usize) {
        self.core.remove_listener(i);
        if let Some(socket) = self.listener_sockets[i].take() {
            let _ = self.stack.close(socket);
        }
    }

    /// Take what is waiting in one listener's backlog (bounded per poll).
    fn drain_listener(&mut self, li: usize, now: Instant, summary: &mut PollSummary) {
        for _ in 0..self.core.config().accepts_in_a_row() {
            let Some(listener) = self.listener_sockets[li].as_mut() else {
                return;
            };
            let (socket, remote) = match self.stack.accept(listener) {
                Ok(accepted) => accepted,
                Err(nb::Error::WouldBlock) => return,
                Err(nb::Error::Other(e)) => {
                    self.core.handle_accept_error(e.class());
                    return;
                }
            };
            match self.core.handle_incoming(li, remote, now) {
                Ok(admitted) => {
                    let i = admitted.handle.slot();
                    self.sockets[i] = Some(socket);
                    summary.accepted += 1;
                    if admitted.listener_stopped {
                        self.stop_listener(li);
                        return;
                    }
                }
                Err(_) => {
                    // Release at once: never leave it holding a PCB in the backlog.
                    let _ = match self.core.rejected_release() {
                        Release::Abort => self.stack.abort(socket),
                        Release::Close => self.stack.close(socket),
                    };
                    summary.rejected += 1;
                }
            }
        }
    }

    /// The next accepted connection not yet handed out, if any.
    ///
    /// Connections are accepted by [`poll`](Self::poll); this only hands them out
    /// (it drains their [`EventKind::Accepted`](crate::EventKind::Accepted) event).
    /// Applications that scan slots instead may ignore it.
    pub fn accept_next(&mut self) -> Option<Accepted> {
        let i = self.core.take_accepted()?;
        let slot = self.core.slot(i);
        Some(Accepted {
            handle: slot.handle(i),
            port: slot.port,
            protocol: slot.protocol,
            remote: slot.remote.addr()?,
        })
    }

    /// The next per-connection event (accepted, connected, connect failed, peer
    /// closed, reaped, aborted) not yet drained. See [`Event`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    // ---------------------------------------------------------------- connect

    /// Start an outgoing connection. Never blocks.
    ///
    /// Refused at once, with nothing allocated and nothing sent, when the link is
    /// down ([`LinkStatus`](crate::stack::LinkStatus); the pool never probes), when every
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
        self.open(None, remote, protocol, timeout, now)
    }

    /// [`connect`](Self::connect) into slot number `slot`, for wire protocols whose
    /// peer names the socket ([`ConnectError::SlotInUse`] if it is taken).
    pub fn connect_at(
        &mut self,
        slot: usize,
        remote: SocketAddr,
        protocol: u8,
        timeout: Duration,
        now: Instant,
    ) -> Result<ConnHandle, ConnectError> {
        self.open(Some(slot), remote, protocol, timeout, now)
    }

    fn open(
        &mut self,
        want: Option<usize>,
        remote: SocketAddr,
        protocol: u8,
        timeout: Duration,
        now: Instant,
    ) -> Result<ConnHandle, ConnectError> {
        self.link = self.stack.link_state();
        let i = self.core.pick_connect_slot(want, remote, self.link)?;
        let mut socket = self.stack.socket().map_err(|e| ConnectError::Stack(e.class()))?;
        let established = match self.stack.connect(&mut socket, remote) {
            Ok(()) => true,
            Err(nb::Error::WouldBlock) => false,
            Err(nb::Error::Other(e)) if e.class().is_retry() => false,
            Err(nb::Error::Other(e)) => {
                let _ = self.stack.close(socket);
                self.core.handle_connect_refused();
                return Err(ConnectError::Stack(e.class()));
            }
        };
        self.sockets[i] = Some(socket);
        Ok(self
            .core
            .handle_connect_started(i, remote, protocol, established, now + timeout, now))
    }

    // ---------------------------------------------------------------- data

    /// Read received bytes into `buf`.
    ///
    /// Returns the bytes read, `WouldBlock` when nothing is waiting, and
    /// [`ConnError::PeerGone`] once the peer has closed *and* every byte it sent has
    /// been read: data received before a FIN stays readable.
    pub fn read(&mut self, h: ConnHandle, buf: &mut [u8], now: Instant) -> nb::Result<usize, ConnError> {
        let i = self.core.live(h)?;
        match self.core.may_read(i) {
            Access::Wait => return Err(nb::Error::WouldBlock),
            Access::Go => {}
            Access::Fail => return Err(nb::Error::Other(self.core.error_for(i))),
        }
        let Some(socket) = self.sockets[i].as_mut() else {
            return Err(nb::Error::Other(self.core.error_for(i)));
        };
        if buf.is_empty() {
            return Ok(0);
        }
        match self.stack.receive(socket, buf) {
            Ok(0) => {
                self.core.handle_peer_fin(i, now);
                Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Closed)))
            }
            Ok(n) => {
                let n = n.min(buf.len());
                self.core.handle_read(i, n, now);
                Ok(n)
            }
            Err(nb::Error::WouldBlock) => Err(self.nothing_to_read(i)),
            Err(nb::Error::Other(e)) => {
                let class = e.class();
                if class.is_retry() {
                    return Err(self.nothing_to_read(i));
                }
                self.on_error(i, class, now);
                Err(nb::Error::Other(self.core.error_for(i)))
            }
        }
    }

    fn nothing_to_read(&self, i: usize) -> nb::Error<ConnError> {
        match self.core.nothing_to_read(i) {
            Some(e) => nb::Error::Other(e),
            None => nb::Error::WouldBlock,
        }
    }

    /// Write `data`; returns the bytes taken, which may be fewer than `data.len()`.
    ///
    /// `push == false` means MORE (more data follows: coalesce); `push == true` means
    /// send now. When nothing at all can be taken the call returns `WouldBlock` at
    /// once: call again after a later [`poll`](Self::poll). Never spins. See
    /// [Writes](crate#writes-more-and-push) for the full contract.
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
        let i = self.core.live(h)?;
        match self.core.may_write(i) {
            Access::Wait => return Err(nb::Error::WouldBlock),
            Access::Go => {}
            Access::Fail => return Err(nb::Error::Other(self.core.error_for(i))),
        }
        let Some(socket) = self.sockets[i].as_mut() else {
            return Err(nb::Error::Other(self.core.error_for(i)));
        };
        let (slot, config) = self.core.send_side(i);
        let mut tx = TxSide {
            buf: &mut self.buffers[i],
            slot,
            config,
        };
        let out = write::write(&mut self.stack, socket, &mut tx, data, push, now);
        self.core.handle_written(i, out.taken, now);
        if let Some(class) = out.error {
            self.on_error(i, class, now);
            if out.taken == 0 {
                return Err(nb::Error::Other(self.core.error_for(i)));
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
        let i = self.core.live(h).map_err(nb::Error::Other)?;
        if taken == data.len() && self.core.buffered(i) == 0 {
            self.close(h, now).map_err(nb::Error::Other)?;
        }
        Ok(taken)
    }

    /// Send what is held back now: hand netpool's coalesced bytes to the stack and,
    /// on stacks with a native MORE flag, ask the stack to send the MORE bytes it
    /// holds ([`TcpPush`](crate::stack::TcpPush)). `Ok` once netpool holds none;
    /// `WouldBlock` while the stack refuses some.
    pub fn flush(&mut self, h: ConnHandle, now: Instant) -> nb::Result<(), ConnError> {
        self.write(h, &[], true, now)?;
        let i = self.core.live(h).map_err(nb::Error::Other)?;
        if self.core.buffered(i) == 0 {
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
    /// (its slot reused) is refused and closes nothing. Closing a connection the pool
    /// kept in its end state ([`Config::hold_ended`]) acknowledges it and frees the slot.
    pub fn close(&mut self, h: ConnHandle, now: Instant) -> Result<(), ConnError> {
        if let Some(i) = self.core.handle_app_close(h, false)? {
            self.release(i, Release::Close, CloseReason::Closed, now);
        }
        Ok(())
    }

    /// Abort now: RST where the stack can (else close), free the slot. Idempotent,
    /// like [`close`](Self::close).
    pub fn abort(&mut self, h: ConnHandle, now: Instant) -> Result<(), ConnError> {
        if let Some(i) = self.core.handle_app_close(h, true)? {
            self.release(i, Release::Abort, CloseReason::Aborted, now);
        }
        Ok(())
    }

    /// End slot `i`'s connection `how`, for `reason`: the core's [`end`](Core::end),
    /// with this pool's sockets.
    fn release(&mut self, i: usize, how: Release, reason: CloseReason, now: Instant) {
        let mut io = PoolIo {
            stack: &mut self.stack,
            sockets: &mut self.sockets,
            buffers: &mut self.buffers,
        };
        self.core.end(i, how, reason, now, &mut io);
    }

    /// Shut the pool down: close every connection (FIN after handing over coalesced
    /// bytes), stop every listener, and give the stack back. Nothing is leaked in the
    /// stack (dropping a pool instead leaves its sockets there).
    pub fn into_stack(mut self, now: Instant) -> S {
        for i in 0..N {
            if self.core.slot(i).state.is_in_use() {
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
        // Only slots in use have work: an idle pool's poll is O(L).
        if self.core.free_slots() < N {
            let mut io = PoolIo {
                stack: &mut self.stack,
                sockets: &mut self.sockets,
                buffers: &mut self.buffers,
            };
            let mut out = SlotOutcome::default();
            self.core.poll_slots(now, self.link, &mut io, &mut out);
            summary.connected = out.connected;
            summary.peer_gone = out.peer_gone;
            summary.closed = out.closed;
        }
        for li in 0..L {
            self.drain_listener(li, now, &mut summary);
        }
        self.announce_rooms();
        summary
    }

    /// Tell the stack each listener's room (the core's number) when it changed, so a
    /// stack without a SYN queue keeps that many sockets listening. Nothing to do (and
    /// no cost) for a stack whose `set_backlog` does nothing.
    fn announce_rooms(&mut self) {
        if !S::NATIVE_BACKLOG {
            return;
        }
        for li in 0..L {
            if let Some(room) = self.core.room_to_announce(li) {
                if let Some(socket) = self.listener_sockets[li].as_mut() {
                    self.stack.set_backlog(socket, room);
                }
            }
        }
    }

    /// Apply an error's [`Disposition`](crate::Disposition) (the core decides).
    fn on_error(&mut self, i: usize, class: ErrorClass, now: Instant) {
        let mut io = PoolIo {
            stack: &mut self.stack,
            sockets: &mut self.sockets,
            buffers: &mut self.buffers,
        };
        self.core.apply_error(i, class, now, &mut io);
    }

    /// The earliest time at which [`poll`](Self::poll) has timer work: a connect
    /// deadline, coalesced bytes due, a stall reading, an idle or abandoned timeout.
    /// Exactly the time `poll` acts on (it may be in the past: poll now). Listeners
    /// still need polling for new connections.
    pub fn poll_at(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    // ---------------------------------------------------------------- queries

    /// The state of a connection. A handle whose connection ended reads `Free`.
    pub fn state(&self, h: ConnHandle) -> Result<ConnState, ConnError> {
        self.core.slot_of(h).map(|i| self.core.slot(i).state)
    }

    /// Bytes this connection has handed to the stack that the peer has not yet
    /// acknowledged, plus what waits in netpool's coalescing buffer; `None` when the
    /// stack cannot tell ([`TcpSendQueue`](crate::stack::TcpSendQueue) fallback).
    /// One stack call; no side effects.
    pub fn send_queue(&mut self, h: ConnHandle) -> Result<Option<usize>, ConnError> {
        let i = self.core.live(h)?;
        let buffered = self.core.buffered(i);
        let Some(socket) = self.sockets[i].as_ref() else {
            return Ok(Some(buffered));
        };
        Ok(self.stack.send_queue(socket).map(|q| q + buffered))
    }

    /// The handle of the connection in slot `slot`, if it is in use.
    pub fn handle_at(&self, slot: usize) -> Option<ConnHandle> {
        (slot < N && self.core.slot(slot).state.is_in_use()).then(|| self.core.slot(slot).handle(slot))
    }

    /// Handles of every slot in use.
    pub fn handles(&self) -> impl Iterator<Item = ConnHandle> + '_ {
        self.core.handles()
    }

    /// One slot's report (`None` if `slot >= N`).
    pub fn slot_report(&self, slot: usize, now: Instant) -> Option<SlotReport> {
        (slot < N).then(|| self.core.slot_report(slot, now))
    }

    /// Free slots now.
    pub fn free_slots(&self) -> usize {
        self.core.free_slots()
    }

    /// The counters. O(N) (counts the slots in use).
    pub fn counters(&self) -> Counters {
        self.core.counters()
    }

    /// The link state as last read (at the last `poll` or `connect`).
    pub fn link(&self) -> LinkState {
        self.link
    }

    /// A snapshot of everything. O(N + L), no I/O.
    pub fn report(&self, now: Instant) -> Report<N, L> {
        let mut report = self.core.report(now, self.link);
        report.pcbs = self.stack.pcb_counters();
        report
    }
}

impl<S: Stack, const N: usize, const L: usize, const TX: usize> core::fmt::Debug for Pool<S, N, L, TX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("slots", &N)
            .field("listeners", &L)
            .field("free", &self.free_slots())
            .field("counters", &self.core.counters())
            .finish()
    }
}

/// The socket I/O the core asks for ([`SlotIo`]), over a pool's stack, sockets and
/// coalescing buffers.
struct PoolIo<'a, S: Stack, const N: usize, const TX: usize> {
    stack: &'a mut S,
    sockets: &'a mut [Option<S::TcpSocket>; N],
    buffers: &'a mut [Coalescer<TX>; N],
}

impl<S: Stack, const N: usize, const TX: usize> SlotIo for PoolIo<'_, S, N, TX> {
    fn connect(&mut self, i: usize, remote: SocketAddr) -> Result<bool, ErrorClass> {
        let Some(socket) = self.sockets[i].as_mut() else {
            return Err(ErrorClass::Fatal);
        };
        match self.stack.connect(socket, remote) {
            Ok(()) => Ok(true),
            Err(nb::Error::WouldBlock) => Ok(false),
            Err(nb::Error::Other(e)) => Err(e.class()),
        }
    }

    fn push(&mut self, i: usize, slot: &mut Slot, config: &Config, now: Instant) -> Result<(), ErrorClass> {
        let Some(socket) = self.sockets[i].as_mut() else {
            return Ok(());
        };
        let mut tx = TxSide {
            buf: &mut self.buffers[i],
            slot,
            config,
        };
        write::push_now(self.stack, socket, &mut tx, now).map(|_| ())
    }

    #[inline]
    fn peer_status(&mut self, i: usize) -> PeerStatus {
        match self.sockets[i].as_ref() {
            Some(socket) => self.stack.peer_status(socket),
            None => PeerStatus::Unknown,
        }
    }

    fn send_queue(&mut self, i: usize) -> Option<usize> {
        self.sockets[i].as_ref().and_then(|s| self.stack.send_queue(s))
    }

    fn release(
        &mut self,
        i: usize,
        how: Release,
        slot: &mut Slot,
        config: &Config,
        now: Instant,
    ) -> Option<usize> {
        let buffered = |slot: &Slot| usize::from(slot.progress.buffered);
        let Some(mut socket) = self.sockets[i].take() else {
            return Some(buffered(slot));
        };
        if how == Release::Close && slot.can_send {
            // FIN after what netpool still holds: hand it over first.
            let mut tx = TxSide {
                buf: &mut self.buffers[i],
                slot,
                config,
            };
            let _ = write::flush(self.stack, &mut socket, &mut tx, now);
        }
        // The socket is the stack's again whatever it says; nothing to retry.
        let _ = match how {
            Release::Close => self.stack.close(socket),
            Release::Abort => self.stack.abort(socket),
        };
        Some(buffered(slot))
    }

    fn abort(&mut self, i: usize) {
        if let Some(socket) = self.sockets[i].take() {
            let _ = self.stack.abort(socket);
        }
    }
}
