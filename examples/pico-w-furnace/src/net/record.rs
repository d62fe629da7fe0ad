//! What the web tasks did: each task's phase and the outcome counters. One
//! `critical_section::Mutex` cell, copied in and out; readable from any thread (the
//! host binaries' reports). The closer's counters are the pool's
//! ([`closer_stats`]).

use core::cell::Cell;

use critical_section::Mutex;
use netpool::{CloserCounters, Instant};

use super::{POOL, WEB_TASKS};
use crate::web::{Incomplete, Response};

/// What a web task is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// Not started yet.
    Starting,
    /// Waiting for the network configuration (link up, address).
    WaitingForNetwork,
    /// In `accept`.
    Accepting,
    /// Reading a request.
    Reading,
    /// Writing a response.
    Writing,
    /// Handing a connection to the closer (FIN), or aborting it (RST).
    Closing,
}

impl Phase {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::WaitingForNetwork => "waiting-for-network",
            Phase::Accepting => "accepting",
            Phase::Reading => "reading",
            Phase::Writing => "writing",
            Phase::Closing => "closing",
        }
    }
}

/// One web task, as last recorded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    /// What it is doing.
    pub phase: Phase,
    /// Since when.
    pub since: Instant,
    /// Connections it has finished (served, refused or dropped).
    pub connections: u32,
}

/// What the web tasks did with their connections. Every accepted connection ends in
/// exactly one of `responded_*`, `read_failed`, `empty_response`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WebStats {
    /// Responses with a 2xx/3xx status.
    pub responded_ok: u32,
    /// Responses with a 4xx status, of which the next three are counted again:
    pub responded_client_error: u32,
    /// 408: the request was not complete by [`REQUEST_TIMEOUT`](super::REQUEST_TIMEOUT).
    pub request_timed_out: u32,
    /// 431: the request did not fit in the buffer.
    pub request_too_large: u32,
    /// 400: the peer ended its side mid-request.
    pub request_truncated: u32,
    /// Responses with a 5xx status.
    pub responded_server_error: u32,
    /// Connections that ended before a request byte (reset, closed, reaped): aborted.
    pub read_failed: u32,
    /// Requests the handlers answered with nothing (aborted).
    pub empty_response: u32,
    /// Responses handed to the stack completely, then closed through the closer.
    pub written: u32,
    /// Responses not written completely (the peer reset, the reaper gave up, or
    /// [`WRITE_TIMEOUT`](super::WRITE_TIMEOUT)): aborted.
    pub write_failed: u32,
    /// Of `write_failed`: the write deadline passed.
    pub write_timed_out: u32,
    /// Accepts that failed (the stack's error).
    pub accept_failed: u32,
}

#[derive(Copy, Clone)]
pub(super) struct Record {
    pub stats: WebStats,
    pub tasks: [TaskStatus; WEB_TASKS],
}

static RECORD: Mutex<Cell<Record>> = Mutex::new(Cell::new(Record {
    stats: WebStats {
        responded_ok: 0,
        responded_client_error: 0,
        request_timed_out: 0,
        request_too_large: 0,
        request_truncated: 0,
        responded_server_error: 0,
        read_failed: 0,
        empty_response: 0,
        written: 0,
        write_failed: 0,
        write_timed_out: 0,
        accept_failed: 0,
    },
    tasks: [TaskStatus {
        phase: Phase::Starting,
        since: Instant::ZERO,
        connections: 0,
    }; WEB_TASKS],
}));

pub(super) fn record(f: impl FnOnce(&mut Record)) {
    critical_section::with(|cs| {
        let cell = RECORD.borrow(cs);
        let mut r = cell.get();
        f(&mut r);
        cell.set(r);
    })
}

pub(super) fn set_phase(id: usize, phase: Phase, now: Instant) {
    record(|r| {
        if let Some(t) = r.tasks.get_mut(id) {
            t.phase = phase;
            t.since = now;
        }
    })
}

/// What the web tasks did so far.
pub fn stats() -> WebStats {
    critical_section::with(|cs| RECORD.borrow(cs).get().stats)
}

/// Every web task's phase.
pub fn tasks() -> [TaskStatus; WEB_TASKS] {
    critical_section::with(|cs| RECORD.borrow(cs).get().tasks)
}

/// What the [`WebCloser`](super::WebCloser) did: the pool's closer counters
/// ([`AsyncPool::closer_counters`](netpool::asynch::AsyncPool::closer_counters)),
/// readable from any thread, unlike the closer.
pub fn closer_stats() -> CloserCounters {
    POOL.closer_counters()
}

/// Count a response by its status (and why a request never completed).
pub(super) fn count_response(response: &Response, incomplete: Option<Incomplete>) {
    record(|r| {
        let s = &mut r.stats;
        match response.status {
            0..=399 => s.responded_ok += 1,
            400..=499 => s.responded_client_error += 1,
            _ => s.responded_server_error += 1,
        }
        match incomplete {
            Some(Incomplete::TimedOut) => s.request_timed_out += 1,
            Some(Incomplete::TooLarge) => s.request_too_large += 1,
            Some(Incomplete::Truncated) => s.request_truncated += 1,
            None => {}
        }
    })
}
