//! The web UI's request handlers: pure functions from request bytes and a snapshot
//! to response bytes, shared by every driver (the host simulator's sync netpool
//! service today, an async netpool driver on the firmware later).
//!
//! | Route | Method | Response |
//! |---|---|---|
//! | `/` (`/index.html`) | GET, HEAD | 200 HTML page: live values server-rendered, an inline SVG chart of the history, a script that refreshes from `/api/state` (backing off up to 30 s when the controller is unreachable). No external resources; a CSP forbids them. |
//! | `/api/state` | GET, HEAD | 200 JSON: [`Snapshot`] fields and `history_c` (oldest first, `null` for fault samples) |
//! | `/api/setpoint` | POST | body `{"setpoint_c": N}`, `N` an integer in [`SETPOINT_MIN_C`]`..=`[`SETPOINT_MAX_C`] °C → 202 and [`Command::SetSetpoint`] |
//! | `/api/reset-cutoff` | POST | body empty or `{}`; 202 and [`Command::ResetCutoff`] when the cutoff is latched, else 409. The control loop honours the reset only below [`Config::reset_below`](crate::control::Config::reset_below); the result shows up as `last_command` in the state. |
//!
//! # Cross-site requests
//!
//! Every state-changing request (the POSTs) must carry `Content-Type:
//! application/json` (parameters such as `charset` allowed, case-insensitive) — a
//! type an HTML form or a "simple" cross-origin `fetch` cannot send without a CORS
//! preflight, which this server never grants — and, when it has an `Origin`, that
//! origin must be `http://` + its own `Host`. So a page on another origin the user
//! merely visits cannot change the setpoint or reset the overheat latch. Checked
//! before anything else about the request: 415, then 403.
//!
//! # Errors
//!
//! Errors are JSON `{"error": "..."}`: 400 malformed request (also blank lines
//! alone), malformed JSON or an invalid JSON number (`0300`, `+300`), missing or
//! unknown field, setpoint not a whole number or out of range (the body then also has
//! `min_c`/`max_c`), bytes beyond `Content-Length`, `Transfer-Encoding`; 403 a
//! foreign `Origin`; 404 unknown path; 405 wrong method (with `Allow`); 408 request
//! not completed in time; 411 body without `Content-Length`; 413 body too large
//! (limit [`MAX_BODY`]); 415 a state-changing request without a JSON `Content-Type`;
//! 431 too many headers, or a request head too large for the request buffer; 500
//! response larger than the caller's buffer.
//!
//! Drivers that log requests print [`request_line`] with
//! [`escape_ascii`](slice::escape_ascii), never the raw bytes (a request could carry
//! terminal escape sequences).
//!
//! Every response has `Content-Length` and `Connection: close`: one request per
//! connection, so the driver closes after writing and a slot is busy for one exchange.
//! Requests are parsed with `httparse` and JSON with `serde-json-core`. No handler
//! panics, allocates or loops without bound on any input.

use core::fmt::{self, Write as _};

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use crate::control::{Command, CommandOutcome, SETPOINT_MAX_C, SETPOINT_MIN_C};
use crate::history::History;
use crate::state::{link_name, Snapshot};
use crate::temp::Temp;

/// Largest request body accepted.
pub const MAX_BODY: usize = 256;
/// A request buffer of this size holds any request a browser sends here.
pub const REQUEST_BUF: usize = 2048;
/// A response buffer of this size holds every response (the page is the largest).
pub const RESPONSE_BUF: usize = 12 * 1024;
/// Room kept in front of the body for the status line and headers.
const HEADER_RESERVE: usize = 320;
const MAX_HEADERS: usize = 32;

/// The HTML page template. `{{name}}` placeholders are filled in by [`handle`].
pub const PAGE_TEMPLATE: &str = include_str!("web/page.html");

/// What the handlers render from: a snapshot and the history, both copies.
#[derive(Copy, Clone, Debug)]
pub struct View<'a, const H: usize> {
    /// The controller's latest snapshot.
    pub snapshot: &'a Snapshot,
    /// The recent temperatures.
    pub history: &'a History<H>,
}

/// A response written into the caller's buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Bytes of the response at the start of the buffer. 0 only when the buffer is
    /// too small even for an error response: close the connection.
    pub len: usize,
    /// A command for the control loop (post it to the mailbox).
    pub command: Option<Command>,
}

/// The outcome of [`handle`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The request is not complete: read more bytes and call again with all of them
    /// (or answer with [`respond_incomplete`] when the buffer is full, the peer
    /// stopped sending, or the deadline passed).
    NeedMore,
    /// Send the response, then close.
    Respond(Response),
}

/// Why a request will never be completed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Incomplete {
    /// The request buffer is full (431: with at most [`MAX_BODY`] bytes of body, only
    /// the head can have filled it).
    TooLarge,
    /// The peer ended its side before the request was complete (400).
    Truncated,
    /// The request was not completed before the deadline (408).
    TimedOut,
}

/// Handle one request: `request` is every byte received so far on the connection.
pub fn handle<const H: usize>(request: &[u8], view: &View<'_, H>, out: &mut [u8]) -> Handled {
    if blank_lines_only(request) {
        return Handled::Respond(error(out, 400, "empty lines instead of a request line"));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(request) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Handled::NeedMore,
        Err(httparse::Error::TooManyHeaders) => {
            return Handled::Respond(error(out, 431, "too many header fields"))
        }
        Err(_) => return Handled::Respond(error(out, 400, "malformed HTTP request")),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Handled::Respond(error(out, 400, "malformed HTTP request"));
    };
    let received = request.get(head_len..).unwrap_or(&[]);
    let reply = match body_of(req.headers, received, method) {
        Ok(Some(body)) => route(method, target, req.headers, body, view, out),
        Ok(None) => return Handled::NeedMore,
        Err((status, msg)) => reply_error(out, status, msg),
    };
    // A response to HEAD is the head alone.
    let len = if method == "HEAD" {
        reply.head_len
    } else {
        reply.len
    };
    Handled::Respond(Response {
        status: reply.status,
        len,
        command: reply.command,
    })
}

fn route<const H: usize>(
    method: &str,
    target: &str,
    headers: &[httparse::Header<'_>],
    body: &[u8],
    view: &View<'_, H>,
    out: &mut [u8],
) -> Reply {
    let path = target.split('?').next().unwrap_or(target);
    let is_get = matches!(method, "GET" | "HEAD");
    match path {
        "/" | "/index.html" if is_get => page(view, out),
        "/api/state" if is_get => state(view, out),
        "/api/setpoint" | "/api/reset-cutoff" if method == "POST" => {
            if let Err((status, msg)) = same_origin_json(headers) {
                return reply_error(out, status, msg);
            }
            if path == "/api/setpoint" {
                setpoint(body, out)
            } else {
                reset_cutoff(view.snapshot, body, out)
            }
        }
        "/" | "/index.html" | "/api/state" => not_allowed(out, "GET, HEAD"),
        "/api/setpoint" | "/api/reset-cutoff" => not_allowed(out, "POST"),
        _ => reply_error(out, 404, "not found"),
    }
}

/// The response for a request that will never complete.
pub fn respond_incomplete(why: Incomplete, out: &mut [u8]) -> Response {
    match why {
        Incomplete::TooLarge => error(out, 431, "request head too large"),
        Incomplete::Truncated => error(out, 400, "request ended early (shorter than its Content-Length?)"),
        Incomplete::TimedOut => error(out, 408, "request not completed in time"),
    }
}

/// The request line (the first line, at most 80 bytes) of what was received, for
/// a log. Print it escaped (`request_line(r).escape_ascii()`): it is the peer's bytes.
pub fn request_line(request: &[u8]) -> &[u8] {
    let line = request
        .split(|&b| b == b'\r' || b == b'\n')
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    &line[..line.len().min(80)]
}

#[cfg(test)]
mod tests;

/// Whether the request starts with two empty lines: RFC 9112 §2.2 lets a server skip
/// one before the request line; `httparse` skips any number and would wait for more,
/// so a client sending only blank lines would hold the connection until the deadline.
/// A line starting with CR or LF after the first skipped one can never begin a request.
fn blank_lines_only(request: &[u8]) -> bool {
    let rest = request
        .strip_prefix(b"\r\n")
        .or_else(|| request.strip_prefix(b"\n"))
        .unwrap_or(request);
    // Only once one line was skipped: a lone "\r" may still become "\r\n".
    rest.len() < request.len() && matches!(rest.first(), Some(b'\r' | b'\n'))
}

// ------------------------------------------------------------------- framing

/// The body, `None` while incomplete, or an error status.
fn body_of<'r>(
    headers: &[httparse::Header<'_>],
    received: &'r [u8],
    method: &str,
) -> Result<Option<&'r [u8]>, (u16, &'static str)> {
    let mut length: Option<usize> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((400, "Transfer-Encoding is not supported: send a Content-Length"));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = core::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or((400, "invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err((400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) if n > MAX_BODY => Err((413, "body too large (at most 256 bytes)")),
        Some(n) if received.len() < n => Ok(None),
        Some(n) if received.len() > n => Err((400, "more bytes than Content-Length announced")),
        Some(_) => Ok(Some(received)),
        None if received.is_empty() => Ok(Some(received)),
        None if method == "POST" => Err((411, "Content-Length required")),
        None => Err((400, "unexpected bytes after the request head")),
    }
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn header_count(headers: &[httparse::Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .count()
}

/// The cross-site defence of a state-changing request (see the [module docs](self)):
/// exactly one `Content-Type` whose media type is `application/json`, and no
/// `Origin` other than this server's own (`http://` + `Host`).
fn same_origin_json(headers: &[httparse::Header<'_>]) -> Result<(), (u16, &'static str)> {
    const NOT_JSON: (u16, &str) = (415, "Content-Type must be application/json");
    if header_count(headers, "content-type") != 1 {
        return Err(NOT_JSON);
    }
    let ct = header(headers, "content-type").unwrap_or(&[]);
    let media_type = ct.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii();
    if !media_type.eq_ignore_ascii_case(b"application/json") {
        return Err(NOT_JSON);
    }
    const FOREIGN: (u16, &str) = (403, "requests from another origin are not accepted");
    match header_count(headers, "origin") {
        0 => Ok(()),
        1 => {
            let origin = header(headers, "origin").unwrap_or(&[]).trim_ascii();
            let host = (header_count(headers, "host") == 1)
                .then(|| header(headers, "host"))
                .flatten()
                .map(<[u8]>::trim_ascii)
                .filter(|h| !h.is_empty())
                .ok_or(FOREIGN)?;
            let own = origin.len() > 7
                && origin[..7].eq_ignore_ascii_case(b"http://")
                && origin[7..].eq_ignore_ascii_case(host);
            if own {
                Ok(())
            } else {
                Err(FOREIGN)
            }
        }
        _ => Err(FOREIGN),
    }
}

/// Whether every number in a JSON text follows RFC 8259 §6 (`-? (0 | [1-9][0-9]*)
/// (. [0-9]+)? ([eE] [+-]? [0-9]+)?`). Hand-written because `serde-json-core` hands
/// any run of `[0-9+-.eE]` to Rust's float parser, which takes `0300` and `+300`.
/// Only the number grammar is checked here; the rest is `serde-json-core`'s job.
fn json_numbers_valid(text: &[u8]) -> bool {
    let mut i = 0;
    let mut in_string = false;
    while let Some(&b) = text.get(i) {
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'+' | b'.' | b'0'..=b'9' => {
                let end = text[i..]
                    .iter()
                    .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(text.len(), |n| i + n);
                if !json_number(&text[i..end]) {
                    return false;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    true
}

/// One number token, RFC 8259 §6.
fn json_number(t: &[u8]) -> bool {
    fn digits(t: &[u8]) -> usize {
        t.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let int = digits(t);
    if int == 0 || (int > 1 && t[0] == b'0') {
        return false;
    }
    let mut t = &t[int..];
    if let Some(rest) = t.strip_prefix(b".") {
        let frac = digits(rest);
        if frac == 0 {
            return false;
        }
        t = &rest[frac..];
    }
    if let Some(rest) = t.strip_prefix(b"e").or_else(|| t.strip_prefix(b"E")) {
        let rest = rest
            .strip_prefix(b"+")
            .or_else(|| rest.strip_prefix(b"-"))
            .unwrap_or(rest);
        let exp = digits(rest);
        if exp == 0 {
            return false;
        }
        t = &rest[exp..];
    }
    t.is_empty()
}

// ------------------------------------------------------------------- routes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetpointRequest {
    #[serde(default)]
    setpoint_c: Option<f64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_c: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_c: Option<i32>,
}

#[derive(Serialize)]
struct SetpointAccepted {
    ok: bool,
    setpoint_c: i32,
}

#[derive(Serialize)]
struct ResetAccepted {
    ok: bool,
    reset_requested: bool,
}

fn setpoint(body: &[u8], out: &mut [u8]) -> Reply {
    const NOT_WHOLE: &str = "setpoint_c must be a whole number (°C)";
    const EXPECTED: &str = "expected a JSON object {\"setpoint_c\": <whole number of °C>}";
    if body.iter().all(u8::is_ascii_whitespace) {
        return reply_error(out, 400, EXPECTED);
    }
    if !json_numbers_valid(body) {
        return reply_error(
            out,
            400,
            "invalid JSON number (no leading zeros or '+'; digits on both sides of '.')",
        );
    }
    // Parsed as a number, then checked to be whole, so `250.5` gets a clear message.
    let value = match serde_json_core::from_slice::<SetpointRequest>(body) {
        Ok((SetpointRequest { setpoint_c: Some(v) }, _)) => v,
        Ok((SetpointRequest { setpoint_c: None }, _)) => {
            return reply_error(out, 400, "missing field setpoint_c");
        }
        Err(serde_json_core::de::Error::InvalidNumber) => return reply_error(out, 400, NOT_WHOLE),
        Err(serde_json_core::de::Error::CustomError) => {
            return reply_error(out, 400, "unknown or repeated field; expected only setpoint_c");
        }
        Err(_) => return reply_error(out, 400, EXPECTED),
    };
    // `as` saturates; a whole number in range survives the round trip unchanged.
    let whole = value as i32;
    if f64::from(whole) != value && value.is_finite() && value.abs() < 1e9 {
        return reply_error(out, 400, NOT_WHOLE);
    }
    if f64::from(whole) != value || !(SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&whole) {
        let body = ErrorBody {
            error: "setpoint_c out of range",
            min_c: Some(SETPOINT_MIN_C),
            max_c: Some(SETPOINT_MAX_C),
        };
        return reply_json(out, 400, &body, None);
    }
    let value = whole;
    let accepted = SetpointAccepted {
        ok: true,
        setpoint_c: value,
    };
    reply_json(out, 202, &accepted, Some(Command::SetSetpoint(value)))
}

/// The body of a reset: nothing, or an empty JSON object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

fn reset_cutoff(snapshot: &Snapshot, body: &[u8], out: &mut [u8]) -> Reply {
    if !body.iter().all(u8::is_ascii_whitespace) && serde_json_core::from_slice::<NoFields>(body).is_err() {
        return reply_error(out, 400, "expected an empty body or {}");
    }
    if !snapshot.overheat_latched {
        return reply_error(out, 409, "the overheat cutoff is not latched");
    }
    let body = ResetAccepted {
        ok: true,
        reset_requested: true,
    };
    reply_json(out, 202, &body, Some(Command::ResetCutoff))
}

struct HistoryJson<'a, const H: usize>(&'a History<H>);

impl<const H: usize> Serialize for HistoryJson<'_, H> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for sample in self.0.iter() {
            seq.serialize_element(&sample.temp().map(Temp::as_f32))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct StateJson<'a, const H: usize> {
    temp_c: Option<f32>,
    setpoint_c: i32,
    element: &'static str,
    cutoff_relay: &'static str,
    overheat_latched: bool,
    mode: &'static str,
    bank_reason: Option<&'static str>,
    bank_remaining_s: Option<u64>,
    fault: Option<&'static str>,
    link: &'static str,
    uptime_s: u64,
    cycles: u32,
    trips: u32,
    last_command: Option<&'static str>,
    setpoint_min_c: i32,
    setpoint_max_c: i32,
    history_period_s: f32,
    history_c: HistoryJson<'a, H>,
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn cutoff_name(s: &Snapshot) -> &'static str {
    if s.outputs.supply_enabled {
        "closed"
    } else {
        "open"
    }
}

fn state<const H: usize>(view: &View<'_, H>, out: &mut [u8]) -> Reply {
    let s = view.snapshot;
    let body = StateJson {
        temp_c: s.temperature.map(Temp::as_f32),
        setpoint_c: s.setpoint.whole_c(),
        element: on_off(s.outputs.element_on),
        cutoff_relay: cutoff_name(s),
        overheat_latched: s.overheat_latched,
        mode: s.mode.name(),
        bank_reason: s.bank_reason.map(|r| r.name()),
        bank_remaining_s: s.bank_ends_ms.map(|end| end.saturating_sub(s.uptime_ms) / 1000),
        fault: s.fault.map(|f| f.name()),
        link: link_name(s.link),
        uptime_s: s.uptime_ms / 1000,
        cycles: s.cycles,
        trips: s.trips,
        last_command: s.last_command.map(CommandOutcome::name),
        setpoint_min_c: SETPOINT_MIN_C,
        setpoint_max_c: SETPOINT_MAX_C,
        history_period_s: view.history.period_ms() as f32 / 1000.0,
        history_c: HistoryJson(view.history),
    };
    reply_json(out, 200, &body, None)
}

// ------------------------------------------------------------------- the page

/// Chart geometry (matches the SVG in the template and its script).
const CHART_W: i64 = 600;
const CHART_TOP: i64 = 10;
const CHART_H: i64 = 200;

/// The chart's temperature range in whole °C: 10 °C of margin around the history and
/// the setpoint, rounded out to tens.
fn chart_range<const H: usize>(view: &View<'_, H>) -> (i64, i64) {
    let sp = view.snapshot.setpoint;
    let (lo, hi) = view.history.range().unwrap_or((sp, sp));
    let (lo, hi) = (i64::from(lo.min(sp).quarters()), i64::from(hi.max(sp).quarters()));
    let lo_c = (lo - 40).div_euclid(40) * 10;
    let hi_c = -((-(hi + 40)).div_euclid(40)) * 10;
    (lo_c, hi_c.max(lo_c + 10))
}

/// The y coordinate of `t` in tenths of a pixel, for a range in whole °C.
fn chart_y(t: Temp, (lo_c, hi_c): (i64, i64)) -> i64 {
    let (lo, hi) = (lo_c * 4, hi_c * 4);
    let q = i64::from(t.quarters()).clamp(lo, hi);
    CHART_TOP * 10 + (hi - q) * CHART_H * 10 / (hi - lo)
}

/// A coordinate in tenths of a pixel as `12.3`.
struct Tenths(i64);

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{}", a / 10, a % 10)
    }
}

fn chart_path<const H: usize>(view: &View<'_, H>, range: (i64, i64), w: &mut Cursor<'_>) {
    let n = view.history.len() as i64;
    let mut pen = false;
    for (i, sample) in view.history.iter().enumerate() {
        let Some(t) = sample.temp() else {
            pen = false;
            continue;
        };
        let x = if n <= 1 {
            CHART_W * 10
        } else {
            i as i64 * CHART_W * 10 / (n - 1)
        };
        let cmd = if pen { 'L' } else { 'M' };
        let _ = write!(w, "{cmd}{},{}", Tenths(x), Tenths(chart_y(t, range)));
        pen = true;
    }
}

fn page<const H: usize>(view: &View<'_, H>, out: &mut [u8]) -> Reply {
    reply_with(out, 200, "text/html; charset=utf-8", None, true, None, |w| {
        render_template(PAGE_TEMPLATE, w, |name, w| fill(view, name, w));
    })
}

/// Write `template`, replacing each `{{name}}` with what `value` writes.
fn render_template(template: &str, w: &mut Cursor<'_>, mut value: impl FnMut(&str, &mut Cursor<'_>)) {
    let mut parts = template.split("{{");
    if let Some(first) = parts.next() {
        w.put(first);
    }
    for part in parts {
        match part.split_once("}}") {
            Some((name, rest)) => {
                value(name, w);
                w.put(rest);
            }
            None => w.put(part),
        }
    }
}

fn fill<const H: usize>(view: &View<'_, H>, name: &str, w: &mut Cursor<'_>) {
    let s = view.snapshot;
    let range = chart_range(view);
    let _ = match name {
        "temp" => match s.temperature {
            Some(t) => write!(w, "{t}"),
            None => w.write_str("—"),
        },
        "setpoint" => write!(w, "{}", s.setpoint),
        "setpoint_c" => write!(w, "{}", s.setpoint.whole_c()),
        "mode" => match s.bank_reason {
            Some(r) => write!(w, "{} ({})", s.mode.name(), r.name()),
            None => w.write_str(s.mode.name()),
        },
        "fault" => w.write_str(s.fault.map_or("ok", |f| f.name())),
        "fault_class" => w.write_str(if s.fault.is_some() { "bad" } else { "ok" }),
        "element" => w.write_str(on_off(s.outputs.element_on)),
        "element_class" => w.write_str(on_off(s.outputs.element_on)),
        "cutoff" => w.write_str(match (s.overheat_latched, s.outputs.supply_enabled) {
            (true, _) => "TRIPPED (latched)",
            (false, true) => "closed (supply on)",
            (false, false) => "open (supply cut)",
        }),
        "cutoff_class" => w.write_str(match (s.overheat_latched, s.outputs.supply_enabled) {
            (true, _) => "bad",
            (false, true) => "ok",
            (false, false) => "off",
        }),
        "link" => w.write_str(link_name(s.link)),
        "uptime" => {
            let t = s.uptime_ms / 1000;
            write!(w, "{}h {:02}m {:02}s", t / 3600, t / 60 % 60, t % 60)
        }
        "cycles" => write!(w, "{}", s.cycles),
        "hi" => write!(w, "{}", range.1),
        "lo" => write!(w, "{}", range.0),
        "sp_y" => write!(w, "{}", Tenths(chart_y(s.setpoint, range))),
        "path" => {
            chart_path(view, range, w);
            Ok(())
        }
        "span" => {
            let s = view.history.len() as u64 * u64::from(view.history.period_ms()) / 1000;
            if s >= 3600 {
                write!(w, "{}.{} h", s / 3600, s % 3600 / 360)
            } else {
                write!(w, "{} min", (s + 30) / 60)
            }
        }
        "min" => write!(w, "{SETPOINT_MIN_C}"),
        "max" => write!(w, "{SETPOINT_MAX_C}"),
        "last_command" => w.write_str(s.last_command.map_or("", CommandOutcome::name)),
        _ => Ok(()),
    };
}

// ------------------------------------------------------------------- responses

/// A response as built: total length and where the headers end (for HEAD).
struct Reply {
    status: u16,
    len: usize,
    head_len: usize,
    command: Option<Command>,
}

/// A `core::fmt::Write` into a byte slice that never fails: it remembers overflow.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Cursor {
            buf,
            len: 0,
            overflow: false,
        }
    }

    fn put(&mut self, s: &str) {
        let bytes = s.as_bytes();
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s);
        Ok(())
    }
}

const fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// The page's policy: inline script and style only, fetches to this origin only.
const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'";

/// Build a response: the body is written after a reserve, then the head in front of
/// it, then both are moved to the start of `out`.
fn reply_with(
    out: &mut [u8],
    status: u16,
    content_type: &str,
    allow: Option<&str>,
    csp: bool,
    command: Option<Command>,
    body: impl FnOnce(&mut Cursor<'_>),
) -> Reply {
    let body_len = match out.get_mut(HEADER_RESERVE..) {
        Some(room) => {
            let mut w = Cursor::new(room);
            body(&mut w);
            (!w.overflow).then_some(w.len)
        }
        None => None,
    };
    let Some(body_len) = body_len else {
        return internal_error(out);
    };
    let mut head_buf = [0u8; HEADER_RESERVE];
    let mut head = Cursor::new(&mut head_buf);
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reason(status)
    );
    if let Some(allow) = allow {
        let _ = write!(head, "Allow: {allow}\r\n");
    }
    if csp {
        let _ = write!(head, "Content-Security-Policy: {CSP}\r\n");
    }
    head.put("\r\n");
    if head.overflow {
        return internal_error(out);
    }
    let head_len = head.len;
    let start = HEADER_RESERVE - head_len;
    out[start..HEADER_RESERVE].copy_from_slice(&head_buf[..head_len]);
    out.copy_within(start..HEADER_RESERVE + body_len, 0);
    Reply {
        status,
        len: head_len + body_len,
        head_len,
        command,
    }
}

fn reply_json<T: Serialize>(out: &mut [u8], status: u16, value: &T, command: Option<Command>) -> Reply {
    reply_with(
        out,
        status,
        "application/json",
        None,
        false,
        command,
        |w| match serde_json_core::to_slice(value, &mut w.buf[w.len..]) {
            Ok(n) => w.len += n,
            Err(_) => w.overflow = true,
        },
    )
}

fn reply_error(out: &mut [u8], status: u16, msg: &str) -> Reply {
    let body = ErrorBody {
        error: msg,
        min_c: None,
        max_c: None,
    };
    reply_json(out, status, &body, None)
}

fn not_allowed(out: &mut [u8], allow: &str) -> Reply {
    let body = ErrorBody {
        error: "method not allowed",
        min_c: None,
        max_c: None,
    };
    reply_with(
        out,
        405,
        "application/json",
        Some(allow),
        false,
        None,
        |w| match serde_json_core::to_slice(&body, &mut w.buf[w.len..]) {
            Ok(n) => w.len += n,
            Err(_) => w.overflow = true,
        },
    )
}

fn error(out: &mut [u8], status: u16, msg: &str) -> Response {
    let r = reply_error(out, status, msg);
    Response {
        status: r.status,
        len: r.len,
        command: None,
    }
}

/// 500 with a fixed body written straight to the start of `out`; length 0 when
/// even that does not fit.
fn internal_error(out: &mut [u8]) -> Reply {
    const RESPONSE: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
Content-Length: 41\r\nConnection: close\r\n\r\n{\"error\":\"response too large for buffer\"}";
    let len = match out.get_mut(..RESPONSE.len()) {
        Some(dst) => {
            dst.copy_from_slice(RESPONSE);
            RESPONSE.len()
        }
        None => 0,
    };
    Reply {
        status: 500,
        len,
        head_len: len.saturating_sub(41),
        command: None,
    }
}
