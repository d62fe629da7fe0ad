//! What the simulated board shares with the outside (the simulator's owner, the
//! diagnostics and the tests): its counters, its SD card and its startup result.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::http;

/// Counters of the simulated board, readable from any thread.
#[derive(Debug, Default)]
pub struct SamStats {
    /// SPI commands sent.
    pub commands: AtomicU64,
    /// Commands that got −7 (timeout) or −8 (busy).
    pub link_errors: AtomicU64,
    /// `connClose`/`connAbort` sent again because the last one was lost.
    pub release_retries: AtomicU64,
    /// Connections it saw.
    pub connections: AtomicU64,
    /// HTTP responses completely handed to the module.
    pub responses: AtomicU64,
    /// Requests answered 400 or another 4xx framing or route error (not 404, 408).
    pub bad_requests: AtomicU64,
    /// Requests answered 408 (head deadline, stalled or too slow body).
    pub timed_out: AtomicU64,
    /// Connections answered 503: they waited in the queue past the request deadline.
    pub busy: AtomicU64,
    /// Uploads refused with 507 (no room on the card).
    pub card_full: AtomicU64,
    /// Uploads stored with a matching CRC.
    pub uploads_ok: AtomicU64,
    /// Uploads whose CRC did not match.
    pub uploads_bad_crc: AtomicU64,
    /// Sockets it found `aborted` and terminated.
    pub aborted_seen: AtomicU64,
    /// Sockets whose connection vanished while it was serving them.
    pub vanished: AtomicU64,
}

/// What the board shares with the outside (the simulator's owner and tests).
#[derive(Debug, Default)]
pub struct SamShared {
    /// Counters.
    pub stats: SamStats,
    /// The SD card's files.
    pub files: Mutex<BTreeMap<String, Vec<u8>>>,
    /// The SD card's directories made explicitly (a directory also exists while a
    /// file lies below it). Locked after `files` when both are needed.
    pub dirs: Mutex<BTreeSet<String>>,
    /// `None` while starting; then whether listening worked.
    pub started: Mutex<Option<Result<(), String>>>,
    started_cv: Condvar,
    /// Messages the module reported (`networkGetLastError`).
    pub messages: Mutex<Vec<String>>,
    /// The newest [`REQUEST_LOG`] requests it answered, oldest first.
    pub requests: Mutex<VecDeque<RequestRecord>>,
    /// Also print each answered request to stderr (`bridge-sim --log-requests`).
    pub print_requests: AtomicBool,
}

/// Requests the board's request log keeps ([`SamShared::requests`]); older ones are
/// dropped.
pub const REQUEST_LOG: usize = 4096;

/// One request the board answered, in its request log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the response was made.
    pub at: Instant,
    /// The method ("" when the request head never came complete).
    pub method: String,
    /// The path, percent-decoded ("" when the head never came complete).
    pub path: String,
    /// The query's pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The response's status code.
    pub status: u16,
}

impl RequestRecord {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for RequestRecord {
    /// `STATUS METHOD PATH?QUERY` (the query as `k=v` pairs, decoded).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.status, self.method, self.path)?;
        for (n, (k, v)) in self.query.iter().enumerate() {
            write!(f, "{}{k}={v}", if n == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl SamShared {
    /// Wait at most `timeout` for the startup to finish.
    pub fn wait_started(&self, timeout: Duration) -> Option<Result<(), String>> {
        let g = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .started_cv
            .wait_timeout_while(g, timeout, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        g.clone()
    }

    pub(super) fn set_started(&self, r: Result<(), String>) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.started_cv.notify_all();
    }

    /// What the request log holds now, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        let log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    /// Log a request answered with `status` (`req`: its head, if it came complete).
    pub(super) fn log_request(&self, req: Option<&http::Request>, status: u16) {
        let record = RequestRecord {
            at: Instant::now(),
            method: req.map_or_else(String::new, |r| r.method.clone()),
            path: req.map_or_else(String::new, |r| r.path.clone()),
            query: req.map_or_else(Vec::new, |r| r.query.clone()),
            status,
        };
        if self.print_requests.load(Ordering::Relaxed) {
            std::eprintln!("request: {record}");
        }
        let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(record);
    }

    pub(super) fn message(&self, m: String) {
        let mut v = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 1000 {
            v.push(m);
        }
    }
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
