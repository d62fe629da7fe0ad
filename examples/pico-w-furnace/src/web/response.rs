//! Responses: a status line, the headers every response carries, a body rendered
//! into the caller's buffer without allocation; a 500 when it does not fit.
//!
//! Every response has `Content-Length`, `Cache-Control: no-store`,
//! `X-Content-Type-Options: nosniff` and `Connection: close`: one request per
//! connection, so the driver closes after writing.

use core::fmt::{self, Write as _};

use serde::Serialize;

use super::Response;
use crate::control::Command;

/// Room kept in front of the body for the status line and headers.
const HEADER_RESERVE: usize = 320;

/// The body of every error: `{"error": "..."}` (and the setpoint range when a
/// setpoint was out of it).
#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_c: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_c: Option<i32>,
}

/// A response as built: total length and where the headers end (for HEAD).
pub(super) struct Reply {
    pub status: u16,
    pub len: usize,
    pub head_len: usize,
    pub command: Option<Command>,
}

/// A `core::fmt::Write` into a byte slice that never fails: it remembers overflow.
pub(super) struct Cursor<'a> {
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

    /// Append `value` as JSON, or remember that it did not fit.
    fn put_json<T: Serialize>(&mut self, value: &T) {
        let rest = self.buf.get_mut(self.len..).unwrap_or(&mut []);
        match serde_json_core::to_slice(value, rest) {
            Ok(n) => self.len += n,
            Err(_) => self.overflow = true,
        }
    }

    /// Append `s`, or remember that it did not fit.
    pub fn put(&mut self, s: &str) {
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
        501 => "Not Implemented",
        _ => "Internal Server Error",
    }
}

/// The page's policy: inline script and style only, fetches to this origin only.
const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'";

/// Build a response: the body is written after a reserve, then the head in front of
/// it, then both are moved to the start of `out`.
pub(super) fn reply_with(
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
    // The head to the start of `out`, then the body right after it (it only moves
    // towards the start: the head is at most the reserve). Copied byte by byte with
    // `get`: nothing here can panic.
    for (i, &b) in head_buf.iter().take(head_len).enumerate() {
        if let Some(dst) = out.get_mut(i) {
            *dst = b;
        }
    }
    for i in 0..body_len {
        let b = out.get(HEADER_RESERVE + i).copied().unwrap_or(0);
        if let Some(dst) = out.get_mut(head_len + i) {
            *dst = b;
        }
    }
    Reply {
        status,
        len: head_len + body_len,
        head_len,
        command,
    }
}

pub(super) fn reply_json<T: Serialize>(
    out: &mut [u8],
    status: u16,
    value: &T,
    command: Option<Command>,
) -> Reply {
    reply_with(out, status, "application/json", None, false, command, |w| {
        w.put_json(value)
    })
}

pub(super) fn reply_error(out: &mut [u8], status: u16, msg: &str) -> Reply {
    let body = ErrorBody {
        error: msg,
        min_c: None,
        max_c: None,
    };
    reply_json(out, status, &body, None)
}

pub(super) fn not_allowed(out: &mut [u8], allow: &str) -> Reply {
    let body = ErrorBody {
        error: "method not allowed",
        min_c: None,
        max_c: None,
    };
    reply_with(out, 405, "application/json", Some(allow), false, None, |w| {
        w.put_json(&body)
    })
}

/// An error response for the driver (no command).
pub(super) fn error(out: &mut [u8], status: u16, msg: &str) -> Response {
    let r = reply_error(out, status, msg);
    Response {
        status: r.status,
        len: r.len,
        command: None,
    }
}

/// 500 with a fixed body written straight to the start of `out`; length 0 when
/// even that does not fit.
pub(super) fn internal_error(out: &mut [u8]) -> Reply {
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
