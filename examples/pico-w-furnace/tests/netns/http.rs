//! Reading a whole HTTP/1.1 response (the server closed after it) in the TAP tests,
//! with httparse: the status, and the body, checked against `Content-Length` when
//! the response has one.

use std::io;

/// Status and body of a complete response.
pub fn parse(buf: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(bad(format!("incomplete response head ({} bytes)", buf.len())))
        }
        Err(e) => {
            return Err(bad(format!(
                "not an HTTP response ({e}): {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(64)])
            )))
        }
    };
    let status = response.code.ok_or_else(|| bad("no status".into()))?;
    let body = buf[head..].to_vec();
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| bad("bad Content-Length".into()))
        })
        .transpose()?;
    match length {
        Some(n) if n != body.len() => Err(bad(format!("body of {} bytes, Content-Length {n}", body.len()))),
        _ => Ok((status, body)),
    }
}
