//! The JSON number grammar of RFC 8259 §6, checked before `serde-json-core` parses a
//! body: it hands any run of `[0-9+-.eE]` to Rust's float parser, which takes `0300`
//! and `+300`, numbers no JSON text has.

/// Whether every number in a JSON text follows RFC 8259 §6 (`-? (0 | [1-9][0-9]*)
/// (. [0-9]+)? ([eE] [+-]? [0-9]+)?`). Hand-written because `serde-json-core` hands
/// any run of `[0-9+-.eE]` to Rust's float parser, which takes `0300` and `+300`.
/// Only the number grammar is checked here; the rest is `serde-json-core`'s job.
pub fn json_numbers_valid(text: &[u8]) -> bool {
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
                let rest = text.get(i..).unwrap_or(&[]);
                let len = rest
                    .iter()
                    .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(rest.len());
                if !json_number(rest.get(..len).unwrap_or(&[])) {
                    return false;
                }
                i += len;
            }
            _ => i += 1,
        }
    }
    true
}

/// One number token, RFC 8259 §6. (No indexing: nothing here can panic.)
fn json_number(t: &[u8]) -> bool {
    /// How many digits `t` starts with, and what follows them.
    fn digits(t: &[u8]) -> (usize, &[u8]) {
        let n = t.iter().take_while(|b| b.is_ascii_digit()).count();
        (n, t.get(n..).unwrap_or(&[]))
    }
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let (int, mut rest) = digits(t);
    if int == 0 || (int > 1 && t.first() == Some(&b'0')) {
        return false;
    }
    if let Some(after) = rest.strip_prefix(b".") {
        let (frac, after) = digits(after);
        if frac == 0 {
            return false;
        }
        rest = after;
    }
    if let Some(after) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let after = after
            .strip_prefix(b"+")
            .or_else(|| after.strip_prefix(b"-"))
            .unwrap_or(after);
        let (exp, after) = digits(after);
        if exp == 0 {
            return false;
        }
        rest = after;
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::json_numbers_valid;

    #[test]
    fn numbers_follow_rfc_8259() {
        for ok in [
            &b"[0, -0, 0.5, -1.25e-3, 10, 3E+2, 30000e-2]"[..],
            b"{}",
            b"\"0300\"",
        ] {
            assert!(json_numbers_valid(ok), "{}", ok.escape_ascii());
        }
        // Digits inside strings are not numbers.
        assert!(json_numbers_valid(br#"{"a\"01":"+0300"}"#));
        for bad in [
            &b"[01]"[..],
            b"0300",
            b"+300",
            b"-0300",
            b"00",
            b"300.",
            b".3e3",
            b"3e",
            b"3e+",
            b"3-0",
            b"--300",
        ] {
            assert!(!json_numbers_valid(bad), "{}", bad.escape_ascii());
        }
    }
}
