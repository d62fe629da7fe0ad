//! The simulated RepRapFirmware board ("the SAM"): its WiFi interface and socket
//! polling, seeing sockets only through SPI transactions on the
//! [`VirtualBus`](super::bus::VirtualBus). The HTTP API it serves is in `api.rs`
//! (sessions in [`session`](super::session), the machine behind `rr_gcode` in
//! [`gcode`](super::gcode), the object model in [`model`](super::model), the card's
//! files in [`files`]).
//!
//! What it does, after RepRapFirmware's `WiFiInterface` and `WiFiSocket`:
//!
//! - **Startup** (`startup.rs`): request-line edges, stable pins, status, host name,
//!   client mode, then `networkListen` on the HTTP port with the configured cap.
//! - **Spin**: fetch a status change when the request line pulsed; poll the next
//!   socket that needs it (in use, or flagged by the status bitmaps; otherwise the
//!   next one anyway, to notice new connections) with `connGetStatus`; read what is
//!   available (`connRead`), write responses within `writeBufferSpace` (`connWrite`),
//!   then push (zero-length write) and `connClose`; `connAbort` sockets shown
//!   `aborted`. Each pass also advances the simulated print and executes one queued
//!   G-code.
//! - **HTTP**: one request per connection (`Connection: close`), framed by
//!   [`http`] (`httparse`). The board serves `http_max_conns`
//!   connections at once and holds up to `http_queue` more waiting (the listen cap is
//!   the sum; the bridge resets connections beyond it at once). Deadlines: a request
//!   head must be complete `request_deadline` after the board first saw the
//!   connection, queue time included (else 408, or 503 if it never got a turn); a
//!   body must keep moving (no byte for `body_stall`: 408) and, after its first
//!   `body_stall`, average at least `min_body_rate` bytes/s (408), so a trickle cannot
//!   hold a slot. Routes are checked when the head is complete, before the body is
//!   read: 404, 405 with `Allow`, 403 (another origin), 401 (no session), 411 (upload
//!   without `Content-Length`), 413, 400 for a file name outside the card
//!   ([`card::normalise`]), 507
//!   when the card has no room for the announced length. An error answered before
//!   the request was read to its end is followed by a short lingering read (at most
//!   [`LINGER`]), so the client sees the response rather than a reset.

use std::collections::{BTreeMap, BTreeSet};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::api::{self, error_body};
use super::bus::{LinkError, SamLink};
use super::card;
use super::files;
use super::gcode::Machine;
use super::http::{self, Exchange, HttpError};
use super::session::{SessionConfig, Sessions};
use super::DiagMessage;
use crate::protocol::{
    c_str, Command, ConnStatusResponse, Reply, SamHeader, WiFiState, FLAG_PUSH, FORMAT_VERSION,
    MAX_CONNECTIONS, MAX_DATA_LENGTH,
};

/// Settings of the simulated board.
#[derive(Clone, Debug)]
pub struct SamConfig {
    /// The HTTP port it listens on.
    pub http_port: u16,
    /// `maxConnections` it asks for on the HTTP port.
    pub http_max_conns: u16,
    /// Its host name.
    pub host_name: String,
    /// The SSID it asks the module to join.
    pub ssid: String,
    /// How long it waits for the module to be ready, and for a transfer (100 ms).
    pub spi_timeout: Duration,
    /// Files on its "SD card" at start: (path, content).
    pub files: Vec<(String, Vec<u8>)>,
    /// Largest upload it accepts (413 beyond).
    pub max_upload: usize,
    /// Bytes its SD card holds (507 for an upload that does not fit).
    pub card_capacity: usize,
    /// Connections it holds waiting, beyond `http_max_conns`, for a turn.
    pub http_queue: u16,
    /// A request head must be complete this long after the connection was first
    /// seen (408).
    pub request_deadline: Duration,
    /// An upload body must move at least once per this long (408), and average
    /// `min_body_rate` after its first `body_stall`.
    pub body_stall: Duration,
    /// Lowest average body rate, bytes/s, once `body_stall` has passed (408).
    pub min_body_rate: u32,
    /// The machine password (`None`: none set; any password logs in).
    pub password: Option<String>,
    /// An HTTP session ends after this long without a request (RepRapFirmware: 8 s).
    pub session_timeout: Duration,
    /// Bytes of a G-code file a simulated print gets through per second.
    pub print_rate: u32,
}

/// How long the board keeps reading (and discarding) after an error response to a
/// request it did not read to its end, waiting for the client to close first.
pub const LINGER: Duration = Duration::from_secs(1);

impl Default for SamConfig {
    fn default() -> Self {
        SamConfig {
            http_port: 80,
            http_max_conns: 4,
            host_name: "duet-sim".to_string(),
            ssid: "sim-net".to_string(),
            spi_timeout: Duration::from_millis(100),
            files: Vec::new(),
            max_upload: 64 << 20,
            card_capacity: 64 << 20,
            http_queue: 0,
            request_deadline: Duration::from_secs(5),
            body_stall: Duration::from_secs(5),
            min_body_rate: 1024,
            password: None,
            session_timeout: Duration::from_secs(8),
            print_rate: 1024,
        }
    }
}

/// Counters of the simulated board, readable from any thread.
#[derive(Debug, Default)]
pub struct SamStats {
    /// SPI commands sent.
    pub commands: AtomicU64,
    /// Commands that got −7 (timeout) or −8 (busy).
    pub link_errors: AtomicU64,
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

// ------------------------------------------------------------------------ sockets

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Inactive,
    Active,
}

pub(super) struct SamSocket {
    phase: Phase,
    /// The client's IPv4 address (first octet in the low byte), for its session.
    pub(super) remote_ip: u32,
    needs_polling: bool,
    tx_space: usize,
    peer_closed: bool,
    /// When the board first saw the connection (the request deadline runs from here).
    seen_at: Instant,
    /// It has one of the `http_max_conns` turns (else it waits in the queue).
    responder: bool,
    pub(super) exchange: Exchange,
    /// The head was complete and its route accepted it: the body is being read.
    admitted: bool,
    response: Option<Vec<u8>>,
    sent: usize,
    /// The response answers a request not read to its end: linger after it.
    linger: bool,
    /// Lingering: read and discard until the peer closes or this time.
    closing_until: Option<Instant>,
}

impl SamSocket {
    fn new() -> Self {
        SamSocket {
            phase: Phase::Inactive,
            remote_ip: 0,
            needs_polling: false,
            tx_space: 0,
            peer_closed: false,
            seen_at: Instant::now(),
            responder: false,
            exchange: Exchange::default(),
            admitted: false,
            response: None,
            sent: 0,
            linger: false,
            closing_until: None,
        }
    }

    /// The body length of an admitted upload still arriving (reserved on the card).
    pub(super) fn reserved(&self) -> usize {
        match self.exchange.head() {
            Some(r) if self.admitted && self.response.is_none() && r.path == api::UPLOAD => r.body_len(),
            _ => 0,
        }
    }
}

/// The board.
pub struct Sam {
    pub(super) link: SamLink,
    pub(super) config: SamConfig,
    pub(super) shared: Arc<SamShared>,
    pub(super) uart: Receiver<DiagMessage>,
    pub(super) sockets: Vec<SamSocket>,
    current: usize,
    pub(super) rises_seen: u64,
    pub(super) mode: WiFiState,
    pub(super) booted: Instant,
    pub(super) ip: [u8; 4],
    /// The HTTP sessions.
    pub(super) sessions: Sessions,
    /// The machine behind `rr_gcode`.
    pub(super) machine: Machine,
}

type CmdResult = Result<(i32, Vec<u8>), i32>;

impl Sam {
    /// A board on `link`; `uart` carries the module's diagnostics output.
    pub fn new(
        link: SamLink,
        config: SamConfig,
        shared: Arc<SamShared>,
        uart: Receiver<DiagMessage>,
    ) -> Self {
        {
            let mut files = shared.files.lock().unwrap_or_else(|e| e.into_inner());
            for (name, content) in &config.files {
                if let Ok(name) = card::normalise(name, false) {
                    files.insert(name, content.clone());
                }
            }
            let mut dirs = shared.dirs.lock().unwrap_or_else(|e| e.into_inner());
            dirs.extend(files::STANDARD_DIRS.iter().map(|d| d.to_string()));
        }
        let sessions = Sessions::new(SessionConfig {
            password: config.password.clone(),
            timeout: config.session_timeout,
        });
        let machine = Machine::new(config.print_rate);
        Sam {
            link,
            config,
            shared,
            uart,
            sockets: (0..MAX_CONNECTIONS).map(|_| SamSocket::new()).collect(),
            current: 0,
            rises_seen: 0,
            mode: WiFiState::Disabled,
            booted: Instant::now(),
            ip: [0; 4],
            sessions,
            machine,
        }
    }

    /// Run until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        match self.start(stop) {
            Ok(()) => self.shared.set_started(Ok(())),
            Err(e) => {
                self.shared.set_started(Err(e));
                return;
            }
        }
        while !stop.load(Ordering::Relaxed) {
            if !self.spin() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    // -------------------------------------------------------------- SPI commands

    pub(super) fn cmd(
        &mut self,
        command: Command,
        socket: usize,
        flags: u8,
        data: &[u8],
        room: usize,
    ) -> CmdResult {
        self.cmd_param(command, socket, flags, data, room, 0)
    }

    fn cmd_param(
        &mut self,
        command: Command,
        socket: usize,
        flags: u8,
        data: &[u8],
        room: usize,
        param32: u32,
    ) -> CmdResult {
        let header = SamHeader::new(
            command,
            socket as u8,
            flags,
            data.len() as u16,
            room as u16,
            param32,
        );
        bump(&self.shared.stats.commands);
        match self.link.command(header, data, self.config.spi_timeout) {
            Ok(r) => {
                if r.header.format_version != FORMAT_VERSION {
                    return Err(Reply::Error(crate::protocol::Response::BadReplyFormatVersion).code());
                }
                if let Ok(state) = WiFiState::try_from(r.header.state) {
                    self.mode = state;
                }
                if r.header.response < 0 {
                    Err(r.header.response)
                } else {
                    Ok((r.header.response, r.data))
                }
            }
            Err(e) => {
                bump(&self.shared.stats.link_errors);
                Err(match e {
                    LinkError::Busy => -8,
                    LinkError::Timeout => -7,
                })
            }
        }
    }

    pub(super) fn get_last_error(&mut self) {
        if let Ok((n, data)) = self.cmd(Command::NetworkGetLastError, 0, 0, &[], 100) {
            if n > 0 {
                let text = String::from_utf8_lossy(c_str(&data)).into_owned();
                if !text.is_empty() {
                    self.shared.message(text);
                }
            }
        }
    }

    pub(super) fn status_changed(&mut self) -> bool {
        let rises = self.link.request_rises();
        if rises > self.rises_seen {
            self.rises_seen = rises;
            true
        } else {
            false
        }
    }

    // -------------------------------------------------------------- spin

    /// One pass of the network task. Returns whether anything was done.
    fn spin(&mut self) -> bool {
        if self.status_changed() {
            self.get_last_error();
        }
        let start = self.current;
        let mut i = start;
        loop {
            if self.sockets[i].phase != Phase::Inactive || self.sockets[i].needs_polling {
                break;
            }
            i = (i + 1) % MAX_CONNECTIONS;
            if i == start {
                break;
            }
        }
        let busy = self.poll(i);
        self.current = (i + 1) % MAX_CONNECTIONS;
        let ran = self.run_machine();
        busy || ran
    }

    fn abort(&mut self, i: usize) {
        let _ = self.cmd(Command::ConnAbort, i, 0, &[], 0);
        self.sockets[i] = SamSocket::new();
    }

    fn poll(&mut self, i: usize) -> bool {
        let st = match self.cmd(Command::ConnGetStatus, i, 0, &[], ConnStatusResponse::SIZE) {
            Ok((20, data)) => match ConnStatusResponse::decode(&data) {
                Ok(s) => s,
                Err(_) => return false,
            },
            _ => return false,
        };
        for (j, s) in self.sockets.iter_mut().enumerate() {
            if (st.connected_sockets | st.other_end_closed_sockets) & (1 << j) != 0 {
                s.needs_polling = true;
            }
        }
        self.sockets[i].needs_polling = false;
        let was_active = self.sockets[i].phase == Phase::Active;
        match st.state {
            netpool::ConnState::Connected | netpool::ConnState::OtherEndClosed => {
                let now = Instant::now();
                if !was_active {
                    self.sockets[i] = SamSocket::new();
                    self.sockets[i].phase = Phase::Active;
                    self.sockets[i].remote_ip = st.remote_ip;
                    bump(&self.shared.stats.connections);
                }
                let s = &mut self.sockets[i];
                s.tx_space = st.write_buffer_space as usize;
                if st.state == netpool::ConnState::OtherEndClosed {
                    s.peer_closed = true;
                }
                if !self.take_turn(i, now) {
                    return false;
                }
                let s = &self.sockets[i];
                let reading = s.response.is_none() || s.closing_until.is_some();
                if st.bytes_available > 0 && reading {
                    let room = (st.bytes_available as usize).min(MAX_DATA_LENGTH);
                    match self.cmd(Command::ConnRead, i, 0, &[], room) {
                        Ok((_, data)) => {
                            let s = &mut self.sockets[i];
                            // Lingering: the bytes are discarded.
                            if s.response.is_none() {
                                if let Err(e) = s.exchange.feed(&data, now) {
                                    self.respond_error(i, e, true);
                                }
                            }
                        }
                        Err(_) => {
                            self.abort(i);
                            return true;
                        }
                    }
                }
                self.serve(i, now);
                true
            }
            netpool::ConnState::Aborted => {
                bump(&self.shared.stats.aborted_seen);
                self.abort(i);
                true
            }
            _ => {
                if was_active {
                    // The connection vanished under us (RepRapFirmware: "broken").
                    bump(&self.shared.stats.vanished);
                    self.abort(i);
                }
                false
            }
        }
    }

    /// Give the socket a turn if one is free. A socket still waiting when the
    /// request deadline passes is answered 503. Returns whether it has a turn (or a
    /// response to send).
    fn take_turn(&mut self, i: usize, now: Instant) -> bool {
        let s = &self.sockets[i];
        if s.responder || s.response.is_some() {
            return true;
        }
        let turns = self.sockets.iter().filter(|s| s.responder).count();
        if turns < usize::from(self.config.http_max_conns) {
            self.sockets[i].responder = true;
            return true;
        }
        if now.saturating_duration_since(s.seen_at) >= self.config.request_deadline {
            bump(&self.shared.stats.busy);
            let e = HttpError::new(503, "server busy: try again");
            self.respond_error(i, e, true);
            return true;
        }
        false
    }

    /// Answer with an error; `unread`: the request was not read to its end.
    fn respond_error(&mut self, i: usize, e: HttpError, unread: bool) {
        match e.status {
            408 => bump(&self.shared.stats.timed_out),
            503 => {}
            507 => bump(&self.shared.stats.card_full),
            _ => bump(&self.shared.stats.bad_requests),
        }
        let allow: Vec<(&str, &str)> = e.allow.map(|a| ("Allow", a)).into_iter().collect();
        let s = &mut self.sockets[i];
        s.response = Some(http::response(
            e.status,
            "application/json",
            &error_body(e.message),
            &allow,
            false,
        ));
        s.linger = unread;
    }

    /// Why a request still arriving must be answered now, if it must.
    fn overdue(&self, i: usize, now: Instant) -> Option<(HttpError, bool)> {
        let s = &self.sockets[i];
        let x = &s.exchange;
        if s.peer_closed {
            // Gone before the whole request arrived.
            return x
                .started()
                .then_some((HttpError::new(400, "request ended before it was complete"), false));
        }
        let since = |t: Option<Instant>| now.saturating_duration_since(t.unwrap_or(now));
        match x.head() {
            None if now.saturating_duration_since(s.seen_at) >= self.config.request_deadline => Some((
                HttpError::new(408, "request head not complete in time"),
                x.started(),
            )),
            None => None,
            Some(_) => {
                let stall = self.config.body_stall;
                if since(x.body_moved_at) >= stall {
                    return Some((HttpError::new(408, "request body stalled"), true));
                }
                let elapsed = since(x.head_done_at);
                let due = elapsed.saturating_sub(stall).as_secs_f64() * f64::from(self.config.min_body_rate);
                ((x.body_received() as f64) < due)
                    .then_some((HttpError::new(408, "request body too slow"), true))
            }
        }
    }

    fn serve(&mut self, i: usize, now: Instant) {
        if self.sockets[i].response.is_none() {
            let s = &mut self.sockets[i];
            if !s.admitted {
                if let Some(head) = s.exchange.head() {
                    let unread = s.exchange.body_received() < head.body_len();
                    match self.admit(i) {
                        Ok(()) => self.sockets[i].admitted = true,
                        Err(e) => self.respond_error(i, e, unread),
                    }
                }
            }
            let s = &mut self.sockets[i];
            if s.response.is_none() {
                match s.exchange.take_complete() {
                    Some((req, body)) => {
                        let resp = self.handle(i, &req, body);
                        self.sockets[i].response = Some(resp);
                    }
                    None => match self.overdue(i, now) {
                        Some((e, unread)) => self.respond_error(i, e, unread),
                        None if self.sockets[i].peer_closed => {
                            // Gone without a byte: nothing to answer.
                            let _ = self.cmd(Command::ConnClose, i, 0, &[], 0);
                            self.sockets[i] = SamSocket::new();
                            return;
                        }
                        None => return,
                    },
                }
            }
        }
        if let Some(until) = self.sockets[i].closing_until {
            // Lingering after the response: close once the client did, or at the limit.
            if self.sockets[i].peer_closed || now >= until {
                let _ = self.cmd(Command::ConnClose, i, 0, &[], 0);
                self.sockets[i] = SamSocket::new();
            }
            return;
        }
        // Send within the space the module promised.
        loop {
            let s = &mut self.sockets[i];
            let Some(resp) = s.response.as_ref() else {
                return;
            };
            let left = resp.len() - s.sent;
            if left == 0 {
                break;
            }
            let n = left.min(s.tx_space).min(MAX_DATA_LENGTH);
            if n == 0 {
                return;
            }
            let chunk = resp[s.sent..s.sent + n].to_vec();
            match self.cmd(Command::ConnWrite, i, 0, &chunk, 0) {
                Ok((k, _)) if k >= 0 && k as usize <= n => {
                    let s = &mut self.sockets[i];
                    s.sent += k as usize;
                    s.tx_space -= k as usize;
                    if k == 0 {
                        return;
                    }
                }
                _ => {
                    self.abort(i);
                    return;
                }
            }
        }
        // Everything is with the module: push, then close (or linger first).
        let _ = self.cmd(Command::ConnWrite, i, FLAG_PUSH, &[], 0);
        bump(&self.shared.stats.responses);
        let s = &mut self.sockets[i];
        if s.linger && !s.peer_closed {
            s.closing_until = Some(now + LINGER);
            return;
        }
        let _ = self.cmd(Command::ConnClose, i, 0, &[], 0);
        self.sockets[i] = SamSocket::new();
    }
}
