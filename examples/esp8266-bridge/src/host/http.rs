//! HTTP/1.1 request framing for the simulated board: one request per connection,
//! parsed with `httparse`, framed strictly (RFC 9112).
//!
//! - The head is complete when `httparse` says so, with CRLF or bare LF line endings
//!   (RFC 9112 §2.2 lets a server accept a bare LF; `httparse` does).
//! - A head longer than [`MAX_HEAD`], or with more than [`MAX_HEADERS`] fields: 431.
//! - Anything `httparse` rejects: 400.
//! - `Content-Length`: digits only; repeated with different values: 400.
//! - `Transfer-Encoding` is never decoded (`transfer_coding_error`): with
//!   `Content-Length` too 400 (request smuggling); `chunked` alone 411 (send a
//!   length); another coding before the final `chunked` 501; a final coding other
//!   than `chunked`, or HTTP/1.0, 400 — the same table as the pico-w-furnace
//!   example's framing.
//! - The body is exactly `Content-Length` bytes; bytes after it are ignored (one
//!   request per connection, `Connection: close`).
//!
//! What a route allows (methods, body sizes) is decided by the board once the head is
//! complete, before it reads the body ([`Exchange::head`]).

use std::string::{String, ToString};
use std::time::Instant;
use std::vec::Vec;

/// Longest request head accepted (431 beyond).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields accepted (431 beyond).
pub const MAX_HEADERS: usize = 48;

/// An HTTP error: the status and a message for the JSON body.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The status code.
    pub status: u16,
    /// What was wrong, for the client.
    pub message: &'static str,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl HttpError {
    /// An error without `Allow`.
    pub const fn new(status: u16, message: &'static str) -> Self {
        HttpError {
            status,
            message,
            allow: None,
        }
    }
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    /// The query's pairs, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// The `Content-Length`, if there was one.
    pub content_length: Option<usize>,
    /// The header fields as sent, names lower-cased (at most [`MAX_HEADERS`]).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name` (lower case) if the request has exactly one such
    /// field; `Err(())` if it has several (no more to say: the caller refuses it).
    #[allow(clippy::result_unit_err)]
    pub fn header(&self, name: &str) -> Result<Option<&str>, ()> {
        let mut found = self.headers.iter().filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some((_, v)), None) => Ok(Some(v.as_str())),
            _ => Err(()),
        }
    }

    /// The body length the request announced (0 without `Content-Length`).
    pub fn body_len(&self) -> usize {
        self.content_length.unwrap_or(0)
    }
}

/// One connection's request as it arrives.
#[derive(Debug, Default)]
pub struct Exchange {
    head: Vec<u8>,
    request: Option<Request>,
    body: Vec<u8>,
    /// When the head was complete.
    pub head_done_at: Option<Instant>,
    /// When body bytes last arrived (or the head completed).
    pub body_moved_at: Option<Instant>,
}

impl Exchange {
    /// Take received bytes. The head is parsed as soon as it is complete; body bytes
    /// are kept up to the announced length. An `Err` is final: answer it and close.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Result<(), HttpError> {
        if self.request.is_some() {
            self.take_body(data, now);
            return Ok(());
        }
        let room = (MAX_HEAD + 1).saturating_sub(self.head.len());
        let appended = data.len().min(room);
        self.head.extend_from_slice(&data[..appended]);
        let Some((request, head_len)) = parse_head(&self.head)? else {
            if self.head.len() > MAX_HEAD {
                return Err(HttpError::new(431, "request head too long"));
            }
            return Ok(());
        };
        self.request = Some(request);
        self.head_done_at = Some(now);
        self.body_moved_at = Some(now);
        // What followed the head is body.
        let mut rest = self.head.split_off(head_len);
        rest.extend_from_slice(&data[appended..]);
        self.take_body(&rest, now);
        Ok(())
    }

    fn take_body(&mut self, data: &[u8], now: Instant) {
        let want = self.request.as_ref().map_or(0, Request::body_len);
        let take = data.len().min(want.saturating_sub(self.body.len()));
        if take > 0 {
            self.body.extend_from_slice(&data[..take]);
            self.body_moved_at = Some(now);
        }
    }

    /// The request head, once complete.
    pub fn head(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// Body bytes received so far.
    pub fn body_received(&self) -> usize {
        self.body.len()
    }

    /// Whether any byte arrived at all.
    pub fn started(&self) -> bool {
        !self.head.is_empty() || self.request.is_some()
    }

    /// The whole request, once head and body are complete (taken once).
    pub fn take_complete(&mut self) -> Option<(Request, Vec<u8>)> {
        let done = self
            .request
            .as_ref()
            .is_some_and(|r| self.body.len() >= r.body_len());
        if !done {
            return None;
        }
        let r = self.request.take()?;
        Some((r, std::mem::take(&mut self.body)))
    }
}

/// Parse a head with `httparse`: `Ok(None)` while incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::new(431, "too many header fields")),
        Err(_) => return Err(HttpError::new(400, "malformed request")),
    };
    let malformed = HttpError::new(400, "malformed request");
    let method = req.method.ok_or(malformed)?.to_string();
    let target = req.path.ok_or(malformed)?;
    if let Some(e) = transfer_coding_error(req.headers, req.version.unwrap_or(1)) {
        return Err(e);
    }
    let mut content_length: Option<usize> = None;
    let mut fields = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        // A value that is not UTF-8 is kept as an empty value: no rule here reads one.
        fields.push((
            h.name.to_ascii_lowercase(),
            std::str::from_utf8(h.value).unwrap_or("").trim().to_string(),
        ));
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(HttpError::new(400, "bad Content-Length"))?;
            if content_length.is_some_and(|l| l != n) {
                return Err(HttpError::new(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let bad_escape = HttpError::new(400, "bad percent escape or not UTF-8");
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((
            percent_decode(k).ok_or(bad_escape)?,
            percent_decode(v).ok_or(bad_escape)?,
        ));
    }
    let request = Request {
        method,
        path: percent_decode(path).ok_or(bad_escape)?,
        query: params,
        content_length,
        headers: fields,
    };
    Ok(Some((request, len)))
}

/// What a request with `Transfer-Encoding` gets (`None` without one); no transfer
/// coding is decoded. RFC 9112: HTTP/1.0 with it 400 (§6.1, faulty framing); with
/// `Content-Length` too 400 (§6.3, smuggling); a final coding other than `chunked`,
/// or `chunked` twice, 400 (§6.3, §6.1); another coding before the final `chunked`
/// 501 (§6.1, not understood); `chunked` alone 411 (RFC 9110 §15.5.12: a body only
/// with a declared length). Several fields are one list. Hand-written: a few lines
/// over the fields `httparse` found.
fn transfer_coding_error(headers: &[httparse::Header<'_>], version: u8) -> Option<HttpError> {
    let is = |h: &&httparse::Header<'_>, name: &str| h.name.eq_ignore_ascii_case(name);
    let mut fields = headers.iter().filter(|h| is(h, "transfer-encoding")).peekable();
    fields.peek()?;
    if version == 0 {
        return Some(HttpError::new(400, "Transfer-Encoding in an HTTP/1.0 request"));
    }
    if headers.iter().any(|h| is(&h, "content-length")) {
        return Some(HttpError::new(400, "both Transfer-Encoding and Content-Length"));
    }
    let codings = fields
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|c| c.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii())
        .filter(|c| !c.is_empty());
    let (mut chunked, mut other, mut last_chunked) = (0usize, false, false);
    for c in codings {
        last_chunked = c.eq_ignore_ascii_case(b"chunked");
        if last_chunked {
            chunked += 1;
        } else {
            other = true;
        }
    }
    Some(if !last_chunked || chunked > 1 {
        HttpError::new(400, "Transfer-Encoding must end in chunked, once")
    } else if other {
        HttpError::new(501, "transfer codings are not implemented: send Content-Length")
    } else {
        HttpError::new(411, "chunked bodies are not supported: send Content-Length")
    })
}

/// Decode `%XX` escapes and `+` (form encoding, as DWC's query strings use it).
/// Hand-written: a dozen lines, and `httparse` leaves the target as sent.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
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
    String::from_utf8(out).ok()
}

/// A response with `Content-Length` and `Connection: close`, plus the `extra` header
/// fields (name, value); for `HEAD` the head alone (with the length the body would
/// have).
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    head_only: bool,
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Error",
    };
    let mut out = std::format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, no-store\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&std::format!("{name}: {value}\r\n"));
    }
    if status == 503 {
        out.push_str("Retry-After: 1\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(bytes: &[u8]) -> (Exchange, Result<(), HttpError>) {
        let mut x = Exchange::default();
        let r = x.feed(bytes, Instant::now());
        (x, r)
    }

    #[test]
    fn bare_lf_heads_are_complete() {
        let (mut x, r) = feed_all(b"GET /rr_connect?password= HTTP/1.1\nHost: a\n\n");
        assert_eq!(r, Ok(()));
        let (req, body) = x.take_complete().expect("complete");
        assert_eq!((req.path.as_str(), body.len()), ("/rr_connect", 0));
    }

    #[test]
    fn framing_errors() {
        let cases: &[(&[u8], u16)] = &[
            (
                b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                400,
            ),
            (b"POST /x HTTP/1.1\r\nContent-Length: +3\r\n\r\n", 400),
            (b"POST /x HTTP/1.1\r\nContent-Length: 3 4\r\n\r\n", 400),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
            // The pico-w-furnace framing's table.
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n", 411),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked;foo=bar\r\n\r\n",
                411,
            ),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: ,chunked,\r\n\r\n", 411),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
            ),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                400,
            ),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", 400),
            (b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
            ),
            (b"GET /%zz HTTP/1.1\r\n\r\n", 400),
            (b"GARBAGE\x00 x\r\n\r\n", 400),
        ];
        for (bytes, status) in cases {
            let (_, r) = feed_all(bytes);
            assert_eq!(r.map_err(|e| e.status), Err(*status), "{}", bytes.escape_ascii());
        }
        let (x, r) = feed_all(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(r, Ok(()));
        assert_eq!(x.body_received(), 3);
    }

    #[test]
    fn long_heads_and_many_fields_are_431() {
        let mut long = b"GET /".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(feed_all(&long).1.map_err(|e| e.status), Err(431));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend_from_slice(std::format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(feed_all(&many).1.map_err(|e| e.status), Err(431));
    }

    #[test]
    fn the_body_arrives_in_pieces_and_stops_at_its_length() {
        let mut x = Exchange::default();
        let t = Instant::now();
        x.feed(b"POST /u HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", t)
            .unwrap();
        assert_eq!(x.head().map(Request::body_len), Some(5));
        assert!(x.take_complete().is_none());
        x.feed(b"cdefgh", t).unwrap();
        let (_, body) = x.take_complete().unwrap();
        assert_eq!(body, b"abcde");
    }

    #[test]
    fn head_responses_carry_the_length_but_no_body() {
        let r = response(200, "text/plain", b"hello", &[], true);
        let text = String::from_utf8(r).unwrap();
        assert!(text.contains("Content-Length: 5\r\n") && text.ends_with("\r\n\r\n"));
        let r = response(405, "application/json", b"{}", &[("Allow", "GET, HEAD")], false);
        assert!(String::from_utf8(r).unwrap().contains("Allow: GET, HEAD\r\n"));
    }
}
