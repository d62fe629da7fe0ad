//! The simulated RepRapFirmware board ("the SAM"): its WiFi interface, socket
//! polling and a subset of the Duet HTTP API, seeing sockets only through SPI
//! transactions on the [`VirtualBus`](super::bus::VirtualBus).
//!
//! What it does, after RepRapFirmware's `WiFiInterface` and `WiFiSocket`:
//!
//! - **Startup**: wait for two rising edges of the request line and for stable pins,
//!   then `networkGetStatus` (≥ 140 bytes) and `networkSetHostName` (64 bytes), fetch
//!   the status change with `networkGetLastError`, ask for client mode
//!   (`networkStartClient`), wait for the request pulse that says the mode changed,
//!   then `networkListen` on the HTTP port with the configured cap.
//! - **Spin**: fetch a status change when the request line pulsed; poll the next
//!   socket that needs it (in use, or flagged by the status bitmaps; otherwise the
//!   next one anyway, to notice new connections) with `connGetStatus`; read what is
//!   available (`connRead`), write responses within `writeBufferSpace` (`connWrite`),
//!   then push (zero-length write) and `connClose`; `connAbort` sockets shown
//!   `aborted`.
//! - **HTTP**: one request per connection (`Connection: close`), parsed with
//!   `httparse`; anything malformed gets a 400.

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

use serde_json::{json, Value};

use super::bus::{LinkError, SamLink};
use super::DiagMessage;
use crate::protocol::{
    c_str, Command, ConnStatusResponse, ListenOrConnectData, NetworkStatusResponse, Protocol, Reply,
    SamHeader, WiFiState, FLAG_PUSH, FORMAT_VERSION, HOST_NAME_LENGTH, MAX_CONNECTIONS, MAX_DATA_LENGTH,
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
    /// Largest upload it accepts.
    pub max_upload: usize,
}

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
    /// Requests answered 400.
    pub bad_requests: AtomicU64,
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
    /// The SD card.
    pub files: Mutex<BTreeMap<String, Vec<u8>>>,
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

    fn set_started(&self, r: Result<(), String>) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.started_cv.notify_all();
    }

    fn message(&self, m: String) {
        let mut v = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 1000 {
            v.push(m);
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

// ------------------------------------------------------------------------ HTTP

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_length: usize,
}

impl Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Parse {
    More,
    Done(Request),
    Bad(&'static str),
}

/// One connection's HTTP exchange.
#[derive(Default)]
struct Http {
    head: Vec<u8>,
    request: Option<Request>,
    body: Vec<u8>,
    bad: Option<&'static str>,
    response: Option<Vec<u8>>,
    sent: usize,
}

const MAX_HEAD: usize = 16 * 1024;

impl Http {
    fn feed(&mut self, mut data: &[u8], max_body: usize) {
        if self.bad.is_some() || self.response.is_some() {
            return;
        }
        if self.request.is_none() {
            let before = self.head.len();
            self.head.extend_from_slice(data);
            let Some(end) = find(&self.head, b"\r\n\r\n") else {
                if self.head.len() > MAX_HEAD {
                    self.bad = Some("request head too long");
                }
                return;
            };
            let head_len = end + 4;
            match parse_head(&self.head[..head_len]) {
                Ok(r) if r.content_length > max_body => {
                    self.bad = Some("body too large");
                    return;
                }
                Ok(r) => self.request = Some(r),
                Err(why) => {
                    self.bad = Some(why);
                    return;
                }
            }
            data = &data[(head_len - before).min(data.len())..];
            self.head.truncate(head_len);
        }
        if let Some(r) = &self.request {
            let want = r.content_length - self.body.len();
            self.body.extend_from_slice(&data[..data.len().min(want)]);
        }
    }

    fn state(&mut self) -> Parse {
        if let Some(why) = self.bad {
            return Parse::Bad(why);
        }
        match &self.request {
            Some(r) if self.body.len() >= r.content_length => match self.request.take() {
                Some(r) => Parse::Done(r),
                None => Parse::More,
            },
            _ => Parse::More,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head"),
        Err(_) => return Err("malformed request"),
    }
    let method = req.method.ok_or("no method")?.to_string();
    let target = req.path.ok_or("no path")?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut content_length = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| "bad Content-Length")?;
            content_length = v.trim().parse().map_err(|_| "bad Content-Length")?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked bodies are not supported");
        }
    }
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(Request {
        method,
        path: percent_decode(path)?,
        query: params,
        content_length,
    })
}

fn percent_decode(s: &str) -> Result<String, &'static str> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or("bad percent escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "bad percent escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent escape")?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8")
}

fn http_response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn json_response(status: u16, v: &Value) -> Vec<u8> {
    http_response(status, "application/json", v.to_string().as_bytes())
}

// ------------------------------------------------------------------------ sockets

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Inactive,
    Active,
}

struct SamSocket {
    phase: Phase,
    needs_polling: bool,
    tx_space: usize,
    peer_closed: bool,
    http: Http,
}

impl SamSocket {
    fn new() -> Self {
        SamSocket {
            phase: Phase::Inactive,
            needs_polling: false,
            tx_space: 0,
            peer_closed: false,
            http: Http::default(),
        }
    }
}

/// The board.
pub struct Sam {
    link: SamLink,
    config: SamConfig,
    shared: Arc<SamShared>,
    uart: Receiver<DiagMessage>,
    sockets: Vec<SamSocket>,
    current: usize,
    rises_seen: u64,
    mode: WiFiState,
    booted: Instant,
    ip: [u8; 4],
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
                files.insert(name.clone(), content.clone());
            }
        }
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

    fn cmd(&mut self, command: Command, socket: usize, flags: u8, data: &[u8], room: usize) -> CmdResult {
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

    fn get_last_error(&mut self) {
        if let Ok((n, data)) = self.cmd(Command::NetworkGetLastError, 0, 0, &[], 100) {
            if n > 0 {
                let text = String::from_utf8_lossy(c_str(&data)).into_owned();
                if !text.is_empty() {
                    self.shared.message(text);
                }
            }
        }
    }

    fn status_changed(&mut self) -> bool {
        let rises = self.link.request_rises();
        if rises > self.rises_seen {
            self.rises_seen = rises;
            true
        } else {
            false
        }
    }

    // -------------------------------------------------------------- startup

    fn start(&mut self, stop: &AtomicBool) -> Result<(), String> {
        // Two rising edges of the request line: out of reset, then initialised.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.link.request_rises() < 2 {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return Err("WiFi module start timed out".into());
            }
            self.link.wait_request_rise(1, Duration::from_millis(50));
        }
        // Stable pins for a while.
        let mut stable_since = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(50) {
            if !self.link.pins_idle() {
                stable_since = Instant::now();
            }
            if Instant::now() > deadline {
                return Err("WiFi module pins not stable".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut status = None;
        for _ in 0..4 {
            match self.cmd(Command::NetworkGetStatus, 0, 0, &[], NetworkStatusResponse::SIZE) {
                Ok((n, data)) if n as usize >= NetworkStatusResponse::MIN_LEN => {
                    status = NetworkStatusResponse::decode(&data).ok();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if status.is_none() {
            return Err("failed to initialise WiFi module".into());
        }
        let mut name = [0u8; HOST_NAME_LENGTH];
        let n = self.config.host_name.len().min(HOST_NAME_LENGTH - 1);
        name[..n].copy_from_slice(&self.config.host_name.as_bytes()[..n]);
        if let Err(code) = self.cmd(Command::NetworkSetHostName, 0, 0, &name, 0) {
            self.shared
                .message(format!("failed to set WiFi hostname: {code}"));
        }
        self.rises_seen = self.link.request_rises();
        self.get_last_error();
        // Client mode.
        let mut ssid = [0u8; 32];
        let n = self.config.ssid.len().min(31);
        ssid[..n].copy_from_slice(&self.config.ssid.as_bytes()[..n]);
        if self.mode == WiFiState::Idle {
            if let Err(code) = self.cmd(Command::NetworkStartClient, 0, 0, &ssid, 0) {
                return Err(format!("failed to change WiFi mode: {code}"));
            }
        }
        while !matches!(self.mode, WiFiState::Connected | WiFiState::RunningAsAccessPoint) {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                return Err("WiFi module did not connect".into());
            }
            self.link
                .wait_request_rise(self.rises_seen, Duration::from_millis(50));
            if self.status_changed() {
                self.get_last_error();
            }
        }
        if let Ok((n, data)) = self.cmd(Command::NetworkGetStatus, 0, 0, &[], NetworkStatusResponse::SIZE) {
            if let Ok(s) = NetworkStatusResponse::decode(&data[..(n as usize).min(data.len())]) {
                self.ip = s.ip_address.to_le_bytes();
            }
        }
        // Listen for HTTP.
        let lcd = ListenOrConnectData {
            remote_ip: 0,
            protocol: Protocol::Http.value(),
            port: self.config.http_port,
            max_connections: self.config.http_max_conns,
        };
        let before = self.shared.messages.lock().map(|m| m.len()).unwrap_or(0);
        if let Err(code) = self.cmd(Command::NetworkListen, 0, 0, &lcd.encode(), 0) {
            return Err(format!("networkListen failed: {code}"));
        }
        // A failure comes back as a status change (request pulse + last error).
        let rises = self.rises_seen;
        self.link.wait_request_rise(rises, Duration::from_millis(150));
        if self.status_changed() {
            self.get_last_error();
        }
        let messages = self
            .shared
            .messages
            .lock()
            .map(|m| m[before..].to_vec())
            .unwrap_or_default();
        if let Some(m) = messages.iter().find(|m| m.contains("Listen failed")) {
            return Err(format!("WiFi module reported: {m}"));
        }
        Ok(())
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
        busy
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
                if !was_active {
                    self.sockets[i] = SamSocket::new();
                    self.sockets[i].phase = Phase::Active;
                    bump(&self.shared.stats.connections);
                }
                let s = &mut self.sockets[i];
                s.tx_space = st.write_buffer_space as usize;
                if st.state == netpool::ConnState::OtherEndClosed {
                    s.peer_closed = true;
                }
                if st.bytes_available > 0 {
                    let room = (st.bytes_available as usize).min(MAX_DATA_LENGTH);
                    match self.cmd(Command::ConnRead, i, 0, &[], room) {
                        Ok((_, data)) => {
                            let max = self.config.max_upload;
                            self.sockets[i].http.feed(&data, max);
                        }
                        Err(_) => {
                            self.abort(i);
                            return true;
                        }
                    }
                }
                self.serve(i);
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

    fn serve(&mut self, i: usize) {
        if self.sockets[i].http.response.is_none() {
            match self.sockets[i].http.state() {
                Parse::More => {
                    if self.sockets[i].peer_closed {
                        // Gone before a whole request arrived.
                        let _ = self.cmd(Command::ConnClose, i, 0, &[], 0);
                        self.sockets[i] = SamSocket::new();
                    }
                    return;
                }
                Parse::Bad(why) => {
                    bump(&self.shared.stats.bad_requests);
                    let body = json!({"err": 1, "error": why});
                    self.sockets[i].http.response = Some(json_response(400, &body));
                }
                Parse::Done(req) => {
                    let body = std::mem::take(&mut self.sockets[i].http.body);
                    let resp = self.handle(&req, body);
                    self.sockets[i].http.response = Some(resp);
                }
            }
        }
        // Send within the space the module promised.
        loop {
            let s = &mut self.sockets[i];
            let Some(resp) = s.http.response.as_ref() else {
                return;
            };
            let left = resp.len() - s.http.sent;
            if left == 0 {
                break;
            }
            let n = left.min(s.tx_space).min(MAX_DATA_LENGTH);
            if n == 0 {
                return;
            }
            let chunk = resp[s.http.sent..s.http.sent + n].to_vec();
            match self.cmd(Command::ConnWrite, i, 0, &chunk, 0) {
                Ok((k, _)) if k >= 0 && k as usize <= n => {
                    let s = &mut self.sockets[i];
                    s.http.sent += k as usize;
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
        // Everything is with the module: push, close.
        let _ = self.cmd(Command::ConnWrite, i, FLAG_PUSH, &[], 0);
        let _ = self.cmd(Command::ConnClose, i, 0, &[], 0);
        bump(&self.shared.stats.responses);
        self.sockets[i] = SamSocket::new();
    }

    // -------------------------------------------------------------- the HTTP API

    fn handle(&mut self, req: &Request, body: Vec<u8>) -> Vec<u8> {
        let bad = |stats: &SamStats, why: &str| {
            bump(&stats.bad_requests);
            json_response(400, &json!({"err": 1, "error": why}))
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/rr_connect") => json_response(
                200,
                &json!({"err": 0, "sessionTimeout": 8000, "boardType": "duetwifi102", "apiLevel": 1,
                        "sessionKey": 0}),
            ),
            ("GET", "/rr_model") => {
                let key = req.param("key").unwrap_or("");
                let flags = req.param("flags").unwrap_or("");
                json_response(
                    200,
                    &json!({"key": key, "flags": flags, "result": self.model(key)}),
                )
            }
            ("POST", "/rr_upload") => {
                let Some(name) = req.param("name") else {
                    return bad(&self.shared.stats, "missing name");
                };
                let expected = match req.param("crc32") {
                    Some(hex) => match u32::from_str_radix(hex.trim_start_matches("0x"), 16) {
                        Ok(v) => Some(v),
                        Err(_) => return bad(&self.shared.stats, "bad crc32"),
                    },
                    None => None,
                };
                let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&body);
                if expected.is_some_and(|e| e != crc) {
                    bump(&self.shared.stats.uploads_bad_crc);
                    return json_response(200, &json!({"err": 1}));
                }
                bump(&self.shared.stats.uploads_ok);
                self.shared
                    .files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), body);
                json_response(200, &json!({"err": 0}))
            }
            ("GET", "/rr_download") => {
                let Some(name) = req.param("name") else {
                    return bad(&self.shared.stats, "missing name");
                };
                let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
                match files.get(name) {
                    Some(content) => http_response(200, "application/octet-stream", content),
                    None => json_response(404, &json!({"err": 1})),
                }
            }
            ("GET", "/rr_filelist") => {
                let Some(dir) = req.param("dir") else {
                    return bad(&self.shared.stats, "missing dir");
                };
                json_response(200, &self.file_list(dir))
            }
            ("GET", "/rr_diag") => self.diag(),
            (
                _,
                "/rr_connect" | "/rr_model" | "/rr_upload" | "/rr_download" | "/rr_filelist" | "/rr_diag",
            ) => json_response(405, &json!({"err": 1, "error": "method not allowed"})),
            _ => json_response(404, &json!({"err": 1, "error": "not found"})),
        }
    }

    fn model(&self, key: &str) -> Value {
        let up = self.booted.elapsed().as_secs_f64();
        let ip = format!("{}.{}.{}.{}", self.ip[0], self.ip[1], self.ip[2], self.ip[3]);
        let wobble = (up * 0.7).sin() * 0.3;
        let model = json!({
            "boards": [{"firmwareName": "RepRapFirmware (simulated)", "firmwareVersion": "3.5.0",
                        "name": "Duet 2 WiFi (simulated)"}],
            "heat": {"heaters": [
                {"current": 24.6 + wobble, "active": 0.0, "standby": 0.0, "state": "off"},
                {"current": 205.0 + wobble, "active": 205.0, "standby": 0.0, "state": "active"}
            ]},
            "network": {"hostname": self.config.host_name, "interfaces": [
                {"type": "wifi", "actualIP": ip, "state": "active", "ssid": self.config.ssid}
            ]},
            "state": {"status": "idle", "upTime": up as u64, "machineMode": "FFF"},
            "seqs": {"state": 1, "heat": 1, "network": 1},
        });
        if key.is_empty() {
            return model;
        }
        let mut v = &model;
        for part in key.split('.') {
            match v.get(part) {
                Some(next) => v = next,
                None => return Value::Null,
            }
        }
        v.clone()
    }

    fn file_list(&self, dir: &str) -> Value {
        let dir = dir.trim_end_matches('/');
        let prefix = format!("{dir}/");
        let files = self.shared.files.lock().unwrap_or_else(|e| e.into_inner());
        let mut entries = Vec::new();
        let mut dirs = Vec::<String>::new();
        for (path, content) in files.range(prefix.clone()..) {
            let Some(rest) = path.strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                Some((sub, _)) => {
                    if dirs.last().map(String::as_str) != Some(sub) {
                        dirs.push(sub.to_string());
                        entries.push(json!({"type": "d", "name": sub, "size": 0}));
                    }
                }
                None => entries.push(json!({"type": "f", "name": rest, "size": content.len()})),
            }
        }
        json!({"dir": dir, "first": 0, "files": entries, "next": 0})
    }

    /// `diagnostics` over SPI; the module's report arrives on its UART.
    fn diag(&mut self) -> Vec<u8> {
        while self.uart.try_recv().is_ok() {}
        if let Err(code) = self.cmd(Command::Diagnostics, 0, 0, &[], 0) {
            return json_response(503, &json!({"err": 1, "error": format!("diagnostics: {code}")}));
        }
        match self.uart.recv_timeout(Duration::from_millis(500)) {
            Ok(msg) => json_response(200, &super::diag_json(&msg)),
            Err(_) => json_response(503, &json!({"err": 1, "error": "no diagnostics from the module"})),
        }
    }
}
