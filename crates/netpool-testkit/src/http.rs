//! Reading HTTP/1.1 responses in tests of the servers built on netpool (the
//! simulators, the firmware's web handlers on a TAP link), with httparse.
//!
//! One framing for every test: the head is parsed by httparse (a malformed head is an
//! error, not a guess), and the body is `Content-Length` bytes. A response without
//! `Content-Length` ends when the server closes ([`parse_closed`]); a response with one
//! is complete once that many body bytes are in ([`complete`]), and bytes beyond it
//! are never taken as its body.
//!
//! ```
//! use netpool_testkit::http::{complete, parse_closed};
//!
//! let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
//! let r = parse_closed(wire).unwrap();
//! assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
//! assert_eq!(r.header("content-type"), Some("text/plain"));
//!
//! // Half a body: not complete yet; a truncated body after the close is an error.
//! assert!(complete(&wire[..wire.len() - 1]).unwrap().is_none());
//! assert!(parse_closed(&wire[..wire.len() - 1]).is_err());
//! ```

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Most header lines a response may have.
const MAX_HEADERS: usize = 32;

/// A parsed response: status, header lines, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines in order: name as sent, value trimmed (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body: `Content-Length` bytes, or with no such header everything up to the
    /// close (empty from [`parse_head`]).
    pub body: Vec<u8>,
    /// Bytes the head took, the blank line included.
    pub head_len: usize,
    /// The `Content-Length` header's value, if the response had one.
    pub content_length: Option<usize>,
}

impl Response {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The response head at the start of `buf` (body left empty), or `None` while it is
/// incomplete. An error if the bytes are not an HTTP/1.x response head or
/// `Content-Length` is not a number.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<Response>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(invalid(format!(
                "not an HTTP response ({e}): {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(64)])
            )))
        }
    };
    let status = response.code.ok_or_else(|| invalid("no status".to_string()))?;
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let content_length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| {
            v.parse::<usize>()
                .map_err(|_| invalid(format!("bad Content-Length {v:?}")))
        })
        .transpose()?;
    Ok(Some(Response {
        status,
        headers,
        body: Vec::new(),
        head_len,
        content_length,
    }))
}

/// The response at the start of `buf` once its `Content-Length` body is in (`None`
/// before that, and always `None` for a response without `Content-Length`, whose end
/// only the close tells).
pub fn complete(buf: &[u8]) -> io::Result<Option<Response>> {
    let Some(mut response) = parse_head(buf)? else {
        return Ok(None);
    };
    let Some(length) = response.content_length else {
        return Ok(None);
    };
    let body = &buf[response.head_len..];
    if body.len() < length {
        return Ok(None);
    }
    response.body = body[..length].to_vec();
    Ok(Some(response))
}

/// The whole response in `buf`, read until the server closed: with `Content-Length`
/// the body must be exactly that long, without it the body is the rest.
///
/// A close before the head or the body is complete (nothing at all included) is
/// [`io::ErrorKind::UnexpectedEof`]; bytes that are not a response, or more body than
/// `Content-Length` says, are [`io::ErrorKind::InvalidData`].
pub fn parse_closed(buf: &[u8]) -> io::Result<Response> {
    let eof = |m: String| io::Error::new(io::ErrorKind::UnexpectedEof, m);
    let mut response = parse_head(buf)?
        .ok_or_else(|| eof(format!("closed within the response head ({} bytes)", buf.len())))?;
    let body = &buf[response.head_len..];
    match response.content_length {
        Some(n) if body.len() < n => {
            return Err(eof(format!("closed after {} of {n} body bytes", body.len())))
        }
        Some(n) if body.len() > n => {
            return Err(invalid(format!("{} bytes after a body of {n}", body.len() - n)))
        }
        _ => response.body = body.to_vec(),
    }
    Ok(response)
}

/// Read one response from `stream`, for at most `timeout`: until its `Content-Length`
/// body is in, or the server closes (then as [`parse_closed`]). `head_only` stops at
/// the head (for a response to `HEAD`). An error if the time runs out
/// ([`io::ErrorKind::TimedOut`]), the connection ends first (`UnexpectedEof`, or the
/// stream's error, e.g. a reset), or the bytes are not a response (`InvalidData`).
pub fn read_response(stream: &mut TcpStream, timeout: Duration, head_only: bool) -> io::Result<Response> {
    let end = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        if head_only {
            if let Some(head) = parse_head(&buf)? {
                return Ok(head);
            }
        } else if let Some(response) = complete(&buf)? {
            return Ok(response);
        }
        let left = end.checked_duration_since(Instant::now()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no whole response in {timeout:?} ({} bytes)", buf.len()),
            )
        })?;
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match stream.read(&mut chunk) {
            Ok(0) => return parse_closed(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`read_response`] for a server that may refuse by closing or resetting: `Ok(None)`
/// when the connection ends or the time runs out before a whole response, an error
/// only when the bytes are not a response ([`io::ErrorKind::InvalidData`]), which a
/// test should fail on.
pub fn read_response_or_end(
    stream: &mut TcpStream,
    timeout: Duration,
    head_only: bool,
) -> io::Result<Option<Response>> {
    match read_response(stream, timeout, head_only) {
        Ok(response) => Ok(Some(response)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(e),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn a_body_is_content_length_bytes_and_no_more() {
        let mut wire = OK.to_vec();
        wire.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let r = complete(&wire).unwrap().unwrap();
        assert_eq!(r.body, b"hello");
        let e = parse_closed(&wire).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidData,
            "bytes after the body are not its body"
        );
    }

    #[test]
    fn every_prefix_is_incomplete_and_never_an_error() {
        for n in 0..OK.len() {
            assert_eq!(complete(&OK[..n]).unwrap(), None, "prefix of {n} bytes");
        }
    }

    #[test]
    fn without_content_length_the_close_ends_the_body() {
        let wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it";
        assert_eq!(complete(wire).unwrap(), None);
        assert_eq!(parse_closed(wire).unwrap().body, b"all of it");
    }

    #[test]
    fn a_close_too_early_is_unexpected_eof_and_extra_bytes_are_invalid() {
        for early in [&b""[..], b"HTTP/1.1 200 OK\r\n", &OK[..OK.len() - 1]] {
            let e = parse_closed(early).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        }
        let e = parse_closed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn malformed_heads_are_errors() {
        for bad in [
            &b"HTTP/1.1 abc OK\r\n\r\n"[..],
            b"hello world\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(complete(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn headers_are_found_in_any_case() {
        let r = parse_head(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
        assert_eq!(r.content_length, None);
    }
}
