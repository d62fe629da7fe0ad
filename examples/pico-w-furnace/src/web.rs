//! The web UI's request handlers: pure functions from request bytes and a snapshot
//! to response bytes. The firmware's web tasks ([`crate::net`], on netpool's
//! `AsyncPool`) call them, on the board and in the host simulator `furnace-sim`.
//!
//! | Route | Method | Response |
//! |---|---|---|
//! | `/` (`/index.html`) | GET, HEAD | 200 HTML page: live values server-rendered, an inline SVG chart of the history, a script that refreshes from `/api/state` (backing off up to 30 s when the controller is unreachable). No external resources; a CSP forbids them. |
//! | `/api/state` | GET, HEAD | 200 JSON: [`Snapshot`] fields and `history_c` (oldest first, `null` for fault samples) |
//! | `/api/setpoint` | POST | body `{"setpoint_c": N}`, `N` an integer in [`SETPOINT_MIN_C`](crate::control::SETPOINT_MIN_C)`..=`[`SETPOINT_MAX_C`](crate::control::SETPOINT_MAX_C) °C → 202 and [`Command::SetSetpoint`] |
//! | `/api/reset-cutoff` | POST | body empty or `{}`; 202 and [`Command::ResetCutoff`] when the cutoff is latched, else 409. The control loop honours the reset only below [`Config::reset_below`](crate::control::Config::reset_below); the result shows up as `last_command` in the state. |
//!
//! One module per job:
//!
//! | Module | Job |
//! |---|---|
//! | `framing` | where the request ends: head (`httparse`), `Content-Length`, `Transfer-Encoding`, blank lines |
//! | `api` | the routes, and **what the device accepts from a browser** (the cross-site rules: read its docs) |
//! | `json_number` | the RFC 8259 number grammar `serde-json-core` does not check |
//! | `page` | the HTML page and its SVG chart |
//! | `response` | status line, headers, body into the caller's buffer |
//!
//! # Errors
//!
//! Errors are JSON `{"error": "..."}`: 400 malformed request (also blank lines
//! alone), malformed JSON or an invalid JSON number (`0300`, `+300`), missing or
//! unknown field, setpoint not a whole number or out of range (the body then also has
//! `min_c`/`max_c`), bytes beyond `Content-Length`, `Transfer-Encoding` with
//! `Content-Length` or not ending in `chunked`; 403 a foreign `Origin`; 404 unknown
//! path; 405 wrong method (with `Allow`); 408 request not completed in time; 411 body
//! without `Content-Length` (also `Transfer-Encoding: chunked`); 413 body too large
//! (limit [`MAX_BODY`]); 415 a state-changing request without a JSON `Content-Type`;
//! 431 too many headers, or a request head too large for the request buffer; 500
//! response larger than the caller's buffer; 501 a transfer coding other than
//! `chunked`.
//!
//! Drivers that log requests print [`request_line`] with
//! [`escape_ascii`](slice::escape_ascii), never the raw bytes (a request could carry
//! terminal escape sequences).
//!
//! Every response has `Content-Length` and `Connection: close`: one request per
//! connection, so the driver closes after writing and a slot is busy for one exchange.
//! Requests are parsed with `httparse` and JSON with `serde-json-core`. No handler
//! panics, allocates or loops without bound on any input.

use crate::control::Command;
use crate::history::History;
use crate::state::Snapshot;

mod api;
mod framing;
mod json_number;
mod page;
mod response;

pub use page::PAGE_TEMPLATE;
use response::error;

/// Largest request body accepted.
pub const MAX_BODY: usize = 256;
/// A request buffer of this size holds any request a browser sends here.
pub const REQUEST_BUF: usize = 2048;
/// A response buffer of this size holds every response (the page is the largest).
pub const RESPONSE_BUF: usize = 12 * 1024;
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
    let mut headers = [httparse::EMPTY_HEADER; framing::MAX_HEADERS];
    let req = match framing::frame(request, &mut headers) {
        Ok(Some(req)) => req,
        Ok(None) => return Handled::NeedMore,
        Err((status, msg)) => return Handled::Respond(error(out, status, msg)),
    };
    let reply = api::route(req.method, req.target, req.headers, req.body, view, out);
    // A response to HEAD is the head alone.
    let len = if req.method == "HEAD" {
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
