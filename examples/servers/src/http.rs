//! The HTTP every example speaks, so that the examples differ only in their stack:
//! one request per connection, framed by `httparse`, answered and closed.
//!
//! - `GET /` answers `200` with the pool's slots in use, as JSON.
//! - Any other path is `404`; any other method `405` (nothing here changes state, so a
//!   page on another origin can change nothing either).
//! - A head that is not HTTP is `400`; one larger than [`MAX_REQUEST`] is `431`.
//! - A request not complete within [`REQUEST_DEADLINE`] of its accept is `408`: a
//!   client that sends nothing holds its slot that long at most.

use core::fmt::Write;

use netpool::Duration;

/// The longest request head read.
pub const MAX_REQUEST: usize = 512;
/// A request must be complete this long after its connection was accepted.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Room for any response (head and body).
pub const MAX_RESPONSE: usize = 256;

/// A response, whole.
pub type Response = heapless::Vec<u8, MAX_RESPONSE>;

/// The answer to `request` (the bytes read so far, at most [`MAX_REQUEST`]), given the
/// pool's `in_use` and `slots`; `None` while the head is incomplete and may still grow.
pub fn answer(request: &[u8], in_use: usize, slots: usize) -> Option<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(request) {
        Ok(httparse::Status::Partial) if request.len() >= MAX_REQUEST => Some(error(431)),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(error(400)),
        Ok(httparse::Status::Complete(_)) => Some(match (req.method, req.path) {
            (Some("GET"), Some("/")) => {
                let mut body = heapless::String::<64>::new();
                // 64 bytes hold the longest body: two usize values and the braces.
                let _ = write!(body, "{{\"in_use\":{in_use},\"slots\":{slots}}}");
                response(200, "application/json", body.as_bytes())
            }
            (Some("GET"), _) => error(404),
            _ => error(405),
        }),
    }
}

/// The answer to a request that was not complete in time.
pub fn timed_out() -> Response {
    error(408)
}

fn error(status: u16) -> Response {
    response(status, "text/plain", reason(status).as_bytes())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Request Header Fields Too Large",
    }
}

fn response(status: u16, content_type: &str, body: &[u8]) -> Response {
    let mut head = heapless::String::<{ MAX_RESPONSE }>::new();
    // The head is at most about 130 bytes and the longest body 64: both fit.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let mut out = Response::new();
    let _ = out.extend_from_slice(head.as_bytes());
    let _ = out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: &Response) -> &[u8] {
        &r[9..12]
    }

    #[test]
    fn get_root_is_the_pools_slots_as_json() {
        let r = answer(b"GET / HTTP/1.1\r\nHost: d\r\n\r\n", 2, 4).unwrap();
        assert_eq!(status(&r), b"200");
        assert!(r.ends_with(b"\r\n\r\n{\"in_use\":2,\"slots\":4}"));
    }

    #[test]
    fn framing_is_strict_and_every_answer_fits() {
        assert_eq!(answer(b"GET / HTTP/1.1\r\nHost", 0, 4), None, "incomplete");
        assert_eq!(status(&answer(b"GET /x HTTP/1.1\r\n\r\n", 0, 4).unwrap()), b"404");
        assert_eq!(status(&answer(b"POST / HTTP/1.1\r\n\r\n", 0, 4).unwrap()), b"405");
        assert_eq!(
            status(&answer(b"\x16\x03\x01 hello\r\n\r\n", 0, 4).unwrap()),
            b"400"
        );
        assert_eq!(status(&answer(&[b'a'; MAX_REQUEST], 0, 4).unwrap()), b"431");
        assert_eq!(status(&timed_out()), b"408");
        let big = answer(b"GET / HTTP/1.1\r\n\r\n", usize::MAX, usize::MAX).unwrap();
        assert!(big.ends_with(b"}"), "the longest body fits whole");
    }
}
