//! Request framing: where a request's head ends and how long its body is, strictly
//! (RFC 9112), before anything looks at what the request asks for.
//!
//! - The head is parsed with `httparse` (at most [`MAX_HEADERS`] fields, else 431);
//!   anything it rejects is 400. One leading empty line is skipped (RFC 9112 §2.2);
//!   more than one is 400 at once ([`blank_lines_only`]).
//! - `Content-Length`: digits only; repeated with a different value 400; larger than
//!   [`MAX_BODY`] 413; bytes beyond it 400 (one request per connection).
//! - A body without `Content-Length` in a POST: 411; bytes after the head of any
//!   other request without one: 400.
//! - `Transfer-Encoding` ([`transfer_coding_error`]): never decoded, always refused,
//!   with the status RFC 9112 gives each case — the same table as the ESP8266 bridge
//!   example's simulated board.

use super::MAX_BODY;

/// Most header fields in a request (431 beyond).
pub const MAX_HEADERS: usize = 32;

/// A request the framing accepts: its head parsed, its body complete.
pub struct Framed<'h, 'r> {
    /// The method, e.g. `GET`.
    pub method: &'r str,
    /// The request target as sent (path and query).
    pub target: &'r str,
    /// The header fields.
    pub headers: &'h [httparse::Header<'r>],
    /// Exactly `Content-Length` bytes (empty without one).
    pub body: &'r [u8],
}

/// A framing error: status and message.
pub type Refusal = (u16, &'static str);

/// Frame `request` (every byte received so far): `Ok(None)` while incomplete.
pub fn frame<'h, 'r>(
    request: &'r [u8],
    headers: &'h mut [httparse::Header<'r>; MAX_HEADERS],
) -> Result<Option<Framed<'h, 'r>>, Refusal> {
    const MALFORMED: Refusal = (400, "malformed HTTP request");
    if blank_lines_only(request) {
        return Err((400, "empty lines instead of a request line"));
    }
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(request) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err((431, "too many header fields")),
        Err(_) => return Err(MALFORMED),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(MALFORMED);
    };
    let headers: &'h [httparse::Header<'r>] = req.headers;
    if let Some(refusal) = transfer_coding_error(headers, version) {
        return Err(refusal);
    }
    let received = request.get(head_len..).unwrap_or(&[]);
    Ok(body_of(headers, received, method)?.map(|body| Framed {
        method,
        target,
        headers,
        body,
    }))
}

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

/// What a request with `Transfer-Encoding` gets (`None` without one). No transfer
/// coding is decoded here: every request body has a `Content-Length`.
///
/// | Request | Status | Why |
/// |---|---|---|
/// | HTTP/1.0 with `Transfer-Encoding` | 400 | RFC 9112 §6.1: faulty framing |
/// | `Transfer-Encoding` and `Content-Length` | 400 | RFC 9112 §6.3: a request smuggling attempt, refused |
/// | the final coding is not `chunked` (`gzip`, an empty list, `chunked, chunked`) | 400 | RFC 9112 §6.3: the body's length cannot be known; §6.1: chunked at most once |
/// | another coding before the final `chunked` (`gzip, chunked`) | 501 | RFC 9112 §6.1: a transfer coding the server does not understand |
/// | `chunked` alone | 411 | RFC 9110 §15.5.12: this server takes a body only with a declared length; the client's remedy is to send `Content-Length` |
///
/// Several `Transfer-Encoding` fields are one list, in order (RFC 9110 §5.3).
/// Hand-written (a few lines over the fields `httparse` found): `httparse` frames the
/// head only.
pub fn transfer_coding_error(headers: &[httparse::Header<'_>], version: u8) -> Option<Refusal> {
    let is = |h: &&httparse::Header<'_>, name: &str| h.name.eq_ignore_ascii_case(name);
    let mut fields = headers.iter().filter(|h| is(h, "transfer-encoding")).peekable();
    fields.peek()?;
    // Short messages: they are flash on the board.
    const BAD: Refusal = (400, "invalid Transfer-Encoding (send Content-Length)");
    if version == 0 || headers.iter().any(|h| is(&h, "content-length")) {
        return Some(BAD);
    }
    // The codings' names, parameters and empty list elements dropped.
    let codings = fields
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|c| c.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii())
        .filter(|c| !c.is_empty());
    let (mut chunked, mut other, mut last_chunked) = (0usize, false, false);
    // Bounded by the head's length (at most REQUEST_BUF bytes of field values).
    for c in codings {
        last_chunked = c.eq_ignore_ascii_case(b"chunked");
        if last_chunked {
            chunked += 1;
        } else {
            other = true;
        }
    }
    Some(if !last_chunked || chunked > 1 {
        (
            400,
            "Transfer-Encoding must end in chunked, once: the body's length is unknown",
        )
    } else if other {
        (501, "transfer codings are not implemented: send a Content-Length")
    } else {
        (411, "chunked bodies are not accepted: send a Content-Length")
    })
}

/// The body, `None` while incomplete, or an error status.
fn body_of<'r>(
    headers: &[httparse::Header<'_>],
    received: &'r [u8],
    method: &str,
) -> Result<Option<&'r [u8]>, Refusal> {
    let mut length: Option<usize> = None;
    for h in headers {
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

/// The value of the first field called `name` (case-insensitive).
pub fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// How many fields are called `name` (case-insensitive).
pub fn header_count(headers: &[httparse::Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .count()
}

#[cfg(test)]
mod tests {
    use std::format;

    use super::*;

    /// The status `frame` gives a complete head, or 0 when it accepts it.
    fn status(head: &str) -> u16 {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match frame(head.as_bytes(), &mut headers) {
            Ok(Some(_)) => 0,
            Ok(None) => panic!("incomplete: {head:?}"),
            Err((status, _)) => status,
        }
    }

    /// The transfer-coding table; the ESP8266 bridge example's `host::http` tests the
    /// same cases against its framing.
    #[test]
    fn transfer_codings_get_the_rfc_9112_answers() {
        for (te, want) in [
            ("Transfer-Encoding: chunked\r\n", 411),
            ("Transfer-Encoding: CHUNKED\r\n", 411),
            ("Transfer-Encoding: chunked;foo=bar\r\n", 411),
            ("Transfer-Encoding: ,chunked,\r\n", 411),
            ("Transfer-Encoding: gzip, chunked\r\n", 501),
            ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501),
            ("Transfer-Encoding: gzip\r\n", 400),
            ("Transfer-Encoding: identity\r\n", 400),
            ("Transfer-Encoding: chunked, gzip\r\n", 400),
            ("Transfer-Encoding: chunked, chunked\r\n", 400),
            ("Transfer-Encoding: \r\n", 400),
            ("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400),
        ] {
            let head = format!("POST /api/setpoint HTTP/1.1\r\n{te}\r\n");
            assert_eq!(status(&head), want, "{te:?}");
        }
        let head = "POST /api/setpoint HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(head), 400);
        assert_eq!(
            status("GET / HTTP/1.1\r\nX-Transfer-Encoding: chunked\r\n\r\n"),
            0
        );
    }
}
