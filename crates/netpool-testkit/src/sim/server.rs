//! The server application of the simulations: status polls and uploads, on a
//! netpool [`Pool`], with a choice of close policy.
//!
//! A request starting `GET ` gets a fixed response of [`RESPONSE_LEN`] bytes; a
//! request starting `POST` is an upload whose bytes are read and counted until the
//! peer closes. What happens after a response is the [`ClosePolicy`]:
//!
//! - [`Immediate`](ClosePolicy::Immediate) — netpool's: close as soon as the response
//!   is taken; the slot is free at once.
//! - [`Lingering`](ClosePolicy::Lingering) — the old firmware's `closePending`: hold the
//!   slot (and its stack socket) until the peer has acknowledged the response (the
//!   stack's send queue is empty, also after the peer's FIN) or `max` passes (then
//!   abort) — optionally also let go as soon as the connection is lost (reset).

use std::vec::Vec;

use netpool::nb;
use netpool::stack::Stack;
use netpool::ConnState;
use netpool::Pool;
use netpool::{CloseReason, ConnHandle, ErrorClass};
use netpool::{Duration, Instant};

/// The status response: headers and a body, [`RESPONSE_LEN`] bytes in all.
pub const RESPONSE_HEAD: &[u8] =
    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 256\r\n\r\n";
/// Body length of the status response.
pub const RESPONSE_BODY_LEN: usize = 256;
/// Total bytes of one status response.
pub const RESPONSE_LEN: usize = RESPONSE_HEAD.len() + RESPONSE_BODY_LEN;
/// The request a status poller sends.
pub const STATUS_REQUEST: &[u8] = b"GET /rr_model?key=state HTTP/1.1\r\nHost: duet\r\n\r\n";
/// The header an uploader sends before its body.
pub const UPLOAD_HEADER: &[u8] = b"POST /rr_upload?name=0:/gcodes/part.g HTTP/1.1\r\nHost: duet\r\n\r\n";

/// What the server does with a connection once its response is written.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClosePolicy {
    /// Close at once (netpool).
    Immediate,
    /// Hold the slot until the response is acknowledged or `max` passes.
    Lingering {
        /// Longest hold (the old firmware: 4 s).
        max: Duration,
        /// Also let go as soon as the connection is lost (reset, timed out, aborted;
        /// a peer's FIN is not a loss): what the old firmware's "PCB lost" check did.
        /// Without it, a peer that resets instead of acknowledging holds the slot for
        /// the full `max`.
        free_when_dead: bool,
    },
}

/// Counts kept by the server application.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Status responses completely handed to the pool.
    pub responses: u64,
    /// Upload bytes read.
    pub upload_bytes: u64,
    /// Connections closed after lingering.
    pub lingered: u64,
    /// Lingering connections aborted after `max`.
    pub linger_timeouts: u64,
}

#[derive(Debug)]
enum Phase {
    Request(Vec<u8>),
    Respond { written: usize },
    Linger { since: Instant },
    Upload,
}

/// The application: one state per connection slot.
#[derive(Debug)]
pub struct StatusServer {
    policy: ClosePolicy,
    conns: Vec<Option<(ConnHandle, Phase)>>,
    stats: ServerStats,
}

impl StatusServer {
    /// A server for a pool of `slots` connections.
    pub fn new(policy: ClosePolicy, slots: usize) -> Self {
        StatusServer {
            policy,
            conns: (0..slots).map(|_| None).collect(),
            stats: ServerStats::default(),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// One pass of the service loop: poll the pool, take new connections, serve.
    pub fn step<S: Stack, const N: usize, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, N, L, TX>,
        now: Instant,
    ) {
        pool.poll(now);
        while let Some(a) = pool.accept_next() {
            if let Some(c) = self.conns.get_mut(a.handle.slot()) {
                *c = Some((a.handle, Phase::Request(Vec::new())));
            }
        }
        for i in 0..self.conns.len() {
            let Some((h, mut phase)) = self.conns[i].take() else {
                continue;
            };
            let keep = self.serve(pool, h, &mut phase, now);
            if keep {
                self.conns[i] = Some((h, phase));
            }
        }
    }

    /// Serve one connection; returns whether the application still holds it.
    fn serve<S: Stack, const N: usize, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, N, L, TX>,
        h: ConnHandle,
        phase: &mut Phase,
        now: Instant,
    ) -> bool {
        let mut buf = [0u8; 1024];
        match phase {
            Phase::Request(req) => match pool.read(h, &mut buf, now) {
                Ok(n) => {
                    req.extend_from_slice(&buf[..n]);
                    if req.starts_with(b"POST") {
                        self.stats.upload_bytes += req.len() as u64;
                        *phase = Phase::Upload;
                    } else if req.windows(4).any(|w| w == b"\r\n\r\n") {
                        *phase = Phase::Respond { written: 0 };
                        return self.serve(pool, h, phase, now);
                    }
                    true
                }
                Err(nb::Error::WouldBlock) => true,
                Err(nb::Error::Other(_)) => self.done(pool, h, now),
            },
            Phase::Respond { written } => {
                let body = [b'x'; RESPONSE_BODY_LEN];
                while *written < RESPONSE_LEN {
                    let (part, push) = if *written < RESPONSE_HEAD.len() {
                        (&RESPONSE_HEAD[*written..], false) // MORE: the body follows
                    } else {
                        (&body[*written - RESPONSE_HEAD.len()..], true)
                    };
                    match pool.write(h, part, push, now) {
                        Ok(n) => *written += n,
                        Err(nb::Error::WouldBlock) => return true,
                        Err(nb::Error::Other(_)) => return self.done(pool, h, now),
                    }
                }
                self.stats.responses += 1;
                match self.policy {
                    ClosePolicy::Immediate => self.done(pool, h, now),
                    ClosePolicy::Lingering { .. } => {
                        *phase = Phase::Linger { since: now };
                        true
                    }
                }
            }
            Phase::Linger { since } => {
                let ClosePolicy::Lingering { max, free_when_dead } = self.policy else {
                    return self.done(pool, h, now);
                };
                // A peer that sent FIN is not dead: its side is closed, ours still
                // delivers. Only a reset, a loss or an abort loses the connection (the
                // old firmware's "PCB lost": lwIP reports those as errors, never a FIN).
                let lost = match pool.state(h) {
                    Ok(ConnState::Connected) => false,
                    Ok(ConnState::OtherEndClosed) => !matches!(
                        pool.slot_report(h.slot(), now).and_then(|r| r.close_reason),
                        Some(CloseReason::PeerGone(ErrorClass::Closed))
                    ),
                    _ => true,
                };
                // Acknowledged: nothing left in the stack's send queue — also after
                // the peer's FIN, as the old firmware's `send_queue == 0` check did.
                let acked = !lost && matches!(pool.send_queue(h), Ok(Some(0)));
                if acked || (lost && free_when_dead) {
                    self.stats.lingered += 1;
                    self.done(pool, h, now)
                } else if now.saturating_since(*since) >= max {
                    self.stats.linger_timeouts += 1;
                    let _ = pool.abort(h, now);
                    false
                } else {
                    true
                }
            }
            Phase::Upload => loop {
                match pool.read(h, &mut buf, now) {
                    Ok(n) => self.stats.upload_bytes += n as u64,
                    Err(nb::Error::WouldBlock) => return true,
                    Err(nb::Error::Other(_)) => return self.done(pool, h, now),
                }
            },
        }
    }

    fn done<S: Stack, const N: usize, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, N, L, TX>,
        h: ConnHandle,
        now: Instant,
    ) -> bool {
        // Closing is idempotent; an already-ended connection needs nothing more.
        let _ = pool.close(h, now);
        false
    }
}
