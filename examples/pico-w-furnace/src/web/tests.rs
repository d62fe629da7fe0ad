//! Tests of the request handlers: good and bad requests, and arbitrary bytes.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::*;
use crate::control::{CommandOutcome, Mode, Outputs, SETPOINT_MAX_C, SETPOINT_MIN_C};
use crate::max6675::Max6675Error;
use crate::temp::Temp;

const H: usize = 32;

fn history() -> History<H> {
    let mut h = History::new(10_000);
    for i in 0..40 {
        let t = if i == 20 {
            None
        } else {
            Some(Temp::from_quarters(960 + i * 3))
        };
        h.push(crate::history::Sample::new(t));
    }
    h
}

fn snapshot() -> Snapshot {
    Snapshot {
        temperature: Some(Temp::from_quarters(1005)),
        setpoint: Temp::from_c(250),
        outputs: Outputs {
            element_on: true,
            supply_enabled: true,
        },
        mode: Mode::Regulating,
        uptime_ms: 3_723_000,
        cycles: 7446,
        link: netpool::LinkState::Up,
        ..Snapshot::BOOT
    }
}

struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    command: Option<Command>,
}

impl Parsed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().expect("error field").into()
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Parse a response the way a client would, checking its framing.
fn parse(bytes: &[u8], command: Option<Command>) -> Parsed {
    parse_as(bytes, command, false)
}

/// `head`: the response to a HEAD request (no body, Content-Length of the GET).
fn parse_as(bytes: &[u8], command: Option<Command>, head: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(bytes).expect("valid HTTP response") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("incomplete response"),
    };
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| (h.name.into(), String::from_utf8(h.value.to_vec()).unwrap()))
        .collect();
    let status = resp.code.unwrap();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "Content-Length")
        .expect("Content-Length")
        .1
        .parse()
        .unwrap();
    if head {
        // Headers only, unless the request could not be parsed as HEAD at all.
        assert!(bytes.len() == n || bytes.len() - n == len, "HEAD: no body");
    } else {
        assert_eq!(bytes.len() - n, len, "Content-Length matches the body");
    }
    assert!(headers.iter().any(|(n, v)| n == "Connection" && v == "close"));
    Parsed {
        status,
        headers,
        body: bytes[n..].to_vec(),
        command,
    }
}

fn run_with(req: &[u8], snap: &Snapshot) -> Parsed {
    let hist = history();
    let view = View {
        snapshot: snap,
        history: &hist,
    };
    let mut out = vec![0u8; RESPONSE_BUF];
    match handle(req, &view, &mut out) {
        Handled::Respond(r) => {
            let p = parse(&out[..r.len], r.command);
            assert_eq!(p.status, r.status);
            if r.command.is_some() {
                assert_eq!(r.status, 202);
            }
            p
        }
        Handled::NeedMore => panic!("NeedMore for {:?}", String::from_utf8_lossy(req)),
    }
}

fn run(req: &[u8]) -> Parsed {
    run_with(req, &snapshot())
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: furnace\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn need_more(req: &[u8]) -> bool {
    let hist = history();
    let snap = snapshot();
    let view = View {
        snapshot: &snap,
        history: &hist,
    };
    handle(req, &view, &mut vec![0u8; RESPONSE_BUF]) == Handled::NeedMore
}

// ----------------------------------------------------------------- GET

#[test]
fn page_shows_live_values_and_a_chart() {
    let p = run(b"GET / HTTP/1.1\r\nHost: furnace\r\n\r\n");
    assert_eq!(p.status, 200);
    assert_eq!(p.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(p
        .header("Content-Security-Policy")
        .unwrap()
        .contains("default-src 'none'"));
    let html = p.text();
    assert!(!html.contains("{{"), "every placeholder is filled");
    assert!(html.contains(r#"<span id="temp" class="big">251.25</span>"#));
    assert!(html.contains(r#"<span id="setpoint" class="big">250</span>"#));
    assert!(html.contains(r#"id="element">on</div>"#));
    assert!(html.contains(r#"id="cutoff">closed (supply on)</div>"#));
    assert!(html.contains(r#"id="mode">regulating</div>"#));
    assert!(html.contains(r#"id="link">up</div>"#));
    assert!(html.contains("1h 02m 03s · 7446"));
    assert!(html.contains(r#"<tspan id="chart-span">5 min</tspan>"#)); // 32 × 10 s
                                                                       // The chart: 32 samples (the last 32 of 40), one gap → two runs.
    let d = html.split(r#"<path id="chart-line" d=""#).nth(1).unwrap();
    let d = &d[..d.find('"').unwrap()];
    assert_eq!(d.matches('M').count(), 2, "{d}");
    assert_eq!(d.matches('L').count(), 29, "{d}");
    assert!(d.starts_with("M0.0,"));
    assert!(d.contains("L600.0,"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    assert!(html.len() + 400 < RESPONSE_BUF);
}

#[test]
fn page_before_the_first_reading_and_when_tripped() {
    let mut snap = Snapshot::BOOT;
    let html = run_with(b"GET / HTTP/1.0\r\n\r\n", &snap).text();
    assert!(html.contains(r#"<span id="temp" class="big">—</span>"#));
    assert!(html.contains(r#"id="cutoff">open (supply cut)</div>"#));
    assert!(html.contains(r#"id="mode">idle</div>"#));
    snap.overheat_latched = true;
    snap.mode = Mode::Overheat;
    snap.fault = Some(Max6675Error::OpenThermocouple);
    let html = run_with(b"GET /index.html HTTP/1.1\r\n\r\n", &snap).text();
    assert!(html.contains(r#"id="cutoff">TRIPPED (latched)</div>"#));
    assert!(html.contains(r#"<div class="v bad" id="fault">open-thermocouple</div>"#));
}

#[test]
fn head_sends_the_headers_only() {
    let get = run(b"GET / HTTP/1.1\r\n\r\n");
    let hist = history();
    let snap = snapshot();
    let view = View {
        snapshot: &snap,
        history: &hist,
    };
    let mut out = vec![0u8; RESPONSE_BUF];
    let Handled::Respond(r) = handle(b"HEAD / HTTP/1.1\r\n\r\n", &view, &mut out) else {
        panic!()
    };
    let head = std::str::from_utf8(&out[..r.len]).unwrap();
    assert!(head.ends_with("\r\n\r\n"));
    assert!(head.contains(&format!("Content-Length: {}\r\n", get.body.len())));
}

#[test]
fn state_json() {
    let p = run(b"GET /api/state?t=1 HTTP/1.1\r\nAccept: application/json\r\n\r\n");
    assert_eq!(p.status, 200);
    assert_eq!(p.header("Content-Type"), Some("application/json"));
    let j = p.json();
    assert_eq!(j["temp_c"], 251.25);
    assert_eq!(j["setpoint_c"], 250);
    assert_eq!(j["element"], "on");
    assert_eq!(j["cutoff_relay"], "closed");
    assert_eq!(j["overheat_latched"], false);
    assert_eq!(j["mode"], "regulating");
    assert_eq!(j["fault"], serde_json::Value::Null);
    assert_eq!(j["link"], "up");
    assert_eq!(j["uptime_s"], 3723);
    assert_eq!(j["cycles"], 7446);
    assert_eq!(j["setpoint_min_c"], SETPOINT_MIN_C);
    assert_eq!(j["setpoint_max_c"], SETPOINT_MAX_C);
    assert_eq!(j["history_period_s"], 10.0);
    let hist = j["history_c"].as_array().unwrap();
    assert_eq!(hist.len(), H);
    assert_eq!(hist[0], 246.0); // sample 8: (960 + 24) / 4
    assert_eq!(hist[12], serde_json::Value::Null); // sample 20: the fault
    assert_eq!(hist[31], 269.25);
}

#[test]
fn state_json_while_banking_and_faulted() {
    let mut snap = snapshot();
    snap.mode = Mode::Banking;
    snap.bank_reason = Some(crate::control::BankReason::Dying);
    snap.bank_ends_ms = Some(snap.uptime_ms + 90_000);
    snap.temperature = None;
    snap.fault = Some(Max6675Error::BadFrame(0xFFFF));
    snap.last_command = Some(CommandOutcome::CutoffResetRefused);
    let j = run_with(b"GET /api/state HTTP/1.1\r\n\r\n", &snap).json();
    assert_eq!(j["temp_c"], serde_json::Value::Null);
    assert_eq!(j["bank_reason"], "dying");
    assert_eq!(j["bank_remaining_s"], 90);
    assert_eq!(j["fault"], "bad-frame");
    assert_eq!(j["last_command"], "cutoff-reset-refused");
}

// ----------------------------------------------------------------- POST

#[test]
fn setpoint_accepted() {
    let p = run(&post("/api/setpoint", r#"{"setpoint_c": 300}"#));
    assert_eq!(p.status, 202);
    assert_eq!(p.command, Some(Command::SetSetpoint(300)));
    assert_eq!(p.json()["setpoint_c"], 300);
    for body in [
        r#"{"setpoint_c":100}"#,
        " {\n\"setpoint_c\" : 800 }\n",
        r#"{"setpoint_c": 300.0}"#,
        r#"{"setpoint_c": 3e2}"#,
    ] {
        let p = run(&post("/api/setpoint", body));
        assert_eq!(p.status, 202, "{body}: {}", p.text());
    }
    // No Content-Type is refused (a cross-site form could send that); a JSON one with
    // parameters is fine.
    let req = b"POST /api/setpoint HTTP/1.1\r\nContent-Length: 18\r\n\r\n{\"setpoint_c\":120}";
    assert_eq!(run(req).status, 415);
    let req = b"POST /api/setpoint HTTP/1.1\r\ncontent-type: Application/JSON; charset=utf-8\r\ncontent-length: 18\r\n\r\n{\"setpoint_c\":120}";
    assert_eq!(run(req).command, Some(Command::SetSetpoint(120)));
}

const INVALID_NUMBER: &str = "invalid JSON number (no leading zeros or '+'; digits on both sides of '.')";
const SHAPE: &str = "expected a JSON object {\"setpoint_c\": <whole number of °C>}";

#[test]
fn setpoint_bad_json_is_a_clear_400() {
    let cases: &[(&str, &str)] = &[
        ("{\"setpoint_c\": 99}", "setpoint_c out of range"),
        ("{\"setpoint_c\": 801}", "setpoint_c out of range"),
        ("{\"setpoint_c\": -5}", "setpoint_c out of range"),
        (
            "{\"setpoint_c\": 250.5}",
            "setpoint_c must be a whole number (°C)",
        ),
        ("{\"setpoint_c\": 1e3}", "setpoint_c out of range"),
        ("{\"setpoint_c\": 1e999}", "setpoint_c out of range"),
        ("{\"setpoint_c\": -1e999}", "setpoint_c out of range"),
        ("{\"setpoint_c\": 99999999999}", "setpoint_c out of range"),
        ("{\"setpoint_c\": 99999999999.5}", "setpoint_c out of range"),
        ("{\"setpoint_c\": 1.}", INVALID_NUMBER),
        (
            "{\"setpoint_c\": \"300\"}",
            "setpoint_c must be a whole number (°C)",
        ),
        ("{\"setpoint_c\": true}", "setpoint_c must be a whole number (°C)"),
        ("[300]", SHAPE),
        ("300", SHAPE),
        ("{\"setpoint_c\": 1-2}", INVALID_NUMBER),
        ("{\"setpoint_c\": null}", "missing field setpoint_c"),
        ("{}", "missing field setpoint_c"),
        (
            "{\"setpoint\": 300}",
            "unknown or repeated field; expected only setpoint_c",
        ),
        (
            "{\"setpoint_c\": 300, \"x\": 1}",
            "unknown or repeated field; expected only setpoint_c",
        ),
        (
            "{\"setpoint_c\": 300, \"setpoint_c\": 301}",
            "unknown or repeated field; expected only setpoint_c",
        ),
        ("{\"setpoint_c\": 300", SHAPE),
        ("{\"setpoint_c\": 300}}", SHAPE),
        ("setpoint_c=300", SHAPE),
        ("  ", SHAPE),
        ("", SHAPE),
    ];
    for (body, msg) in cases {
        let p = run(&post("/api/setpoint", body));
        assert_eq!((p.status, p.error().as_str()), (400, *msg), "{body}");
        assert_eq!(p.command, None);
    }
    let p = run(&post("/api/setpoint", "{\"setpoint_c\": 2000}"));
    let j = p.json();
    assert_eq!((j["min_c"].as_i64(), j["max_c"].as_i64()), (Some(100), Some(800)));
}

#[test]
fn framing_errors() {
    let body = r#"{"setpoint_c": 300}"#;
    // Longer than announced.
    let req = format!("POST /api/setpoint HTTP/1.1\r\nContent-Length: 5\r\n\r\n{body}");
    let p = run(req.as_bytes());
    assert_eq!(
        (p.status, p.error().as_str()),
        (400, "more bytes than Content-Length announced")
    );
    // Shorter than announced: wait for more, and if it never comes, 400.
    let req = format!("POST /api/setpoint HTTP/1.1\r\nContent-Length: 50\r\n\r\n{body}");
    assert!(need_more(req.as_bytes()));
    let mut out = [0u8; 512];
    let r = respond_incomplete(Incomplete::Truncated, &mut out);
    assert_eq!(parse(&out[..r.len], None).status, 400);
    let r = respond_incomplete(Incomplete::TimedOut, &mut out);
    assert_eq!(parse(&out[..r.len], None).status, 408);
    let r = respond_incomplete(Incomplete::TooLarge, &mut out);
    assert_eq!(parse(&out[..r.len], None).status, 431);
    // No Content-Length with a body.
    let req = format!("POST /api/setpoint HTTP/1.1\r\n\r\n{body}");
    assert_eq!(run(req.as_bytes()).status, 411);
    let req = format!("GET / HTTP/1.1\r\n\r\n{body}");
    assert_eq!(run(req.as_bytes()).status, 400);
    // Bad, signed, conflicting Content-Length; chunked.
    for cl in ["abc", "-1", "+19", "", "1 9", "99999999999999999999999"] {
        let req = format!("POST /api/setpoint HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n{body}");
        assert_eq!(run(req.as_bytes()).error(), "invalid Content-Length", "{cl:?}");
    }
    let req =
        format!("POST /api/setpoint HTTP/1.1\r\nContent-Length: 19\r\nContent-Length: 20\r\n\r\n{body}");
    assert_eq!(run(req.as_bytes()).error(), "conflicting Content-Length headers");
    let req =
        format!("POST /api/setpoint HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 19\r\nContent-Length: 19\r\n\r\n{body}");
    assert_eq!(run(req.as_bytes()).status, 202);
    // Chunked: 411 (the full table is in `framing`'s tests).
    let req = "POST /api/setpoint HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n13\r\n{\"setpoint_c\": 300}\r\n0\r\n\r\n";
    assert_eq!(run(req.as_bytes()).status, 411);
    // Too large a body.
    let big = format!("{{\"setpoint_c\": 300{}}}", " ".repeat(300));
    assert_eq!(run(&post("/api/setpoint", &big)).status, 413);
    // Not JSON.
    let req = format!(
        "POST /api/setpoint HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n{body}"
    );
    assert_eq!(run(req.as_bytes()).status, 415);
}

#[test]
fn reset_cutoff() {
    let p = run(&post("/api/reset-cutoff", ""));
    assert_eq!((p.status, p.command), (409, None));
    let mut snap = snapshot();
    snap.overheat_latched = true;
    snap.mode = Mode::Overheat;
    let p = run_with(
        b"POST /api/reset-cutoff HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n",
        &snap,
    );
    assert_eq!((p.status, p.command), (202, Some(Command::ResetCutoff)));
    let p = run_with(
        b"POST /api/reset-cutoff HTTP/1.1\r\nContent-Type: application/json\r\n\r\n",
        &snap,
    );
    assert_eq!(p.status, 202);
    let p = run_with(&post("/api/reset-cutoff", " {} "), &snap);
    assert_eq!(p.status, 202);
    let p = run_with(&post("/api/reset-cutoff", r#"{"now":1}"#), &snap);
    assert_eq!((p.status, p.command), (400, None));
}

// ----------------------------------------------------------------- cross-site requests

fn post_with(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: furnace.local\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn state_changes_need_a_json_content_type() {
    let mut snap = snapshot();
    snap.overheat_latched = true;
    for ct in [
        "",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/jsonx\r\n",
        "Content-Type: application/json-patch+json\r\n",
        "Content-Type: application/json\r\nContent-Type: text/plain\r\n",
    ] {
        for (path, body) in [
            ("/api/setpoint", r#"{"setpoint_c":300}"#),
            ("/api/reset-cutoff", ""),
        ] {
            let p = run_with(&post_with(path, ct, body), &snap);
            assert_eq!((p.status, p.command), (415, None), "{path} {ct:?}");
        }
    }
    for ct in [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        "application/json ;charset=UTF-8",
    ] {
        let h = format!("Content-Type: {ct}\r\n");
        let p = run_with(&post_with("/api/setpoint", &h, r#"{"setpoint_c":300}"#), &snap);
        assert_eq!(p.status, 202, "{ct}");
        let p = run_with(&post_with("/api/reset-cutoff", &h, ""), &snap);
        assert_eq!(p.status, 202, "{ct}");
    }
}

#[test]
fn state_changes_from_a_foreign_origin_are_forbidden() {
    let mut snap = snapshot();
    snap.overheat_latched = true;
    let json = "Content-Type: application/json\r\n";
    for origin in [
        "http://evil.example",
        "null",
        "https://furnace.local",
        "http://furnace.local.evil.example",
        "http://furnace.local:8080",
        "",
    ] {
        let h = format!("Origin: {origin}\r\n{json}");
        for (path, body) in [
            ("/api/setpoint", r#"{"setpoint_c":300}"#),
            ("/api/reset-cutoff", ""),
        ] {
            let p = run_with(&post_with(path, &h, body), &snap);
            assert_eq!((p.status, p.command), (403, None), "{path} {origin:?}");
            assert_eq!(p.error(), "requests from another origin are not accepted");
        }
    }
    // Two Origin headers, or an Origin without a Host to compare it with.
    let h = format!("Origin: http://furnace.local\r\nOrigin: http://evil.example\r\n{json}");
    assert_eq!(
        run_with(&post_with("/api/reset-cutoff", &h, ""), &snap).status,
        403
    );
    let req = b"POST /api/reset-cutoff HTTP/1.1\r\nOrigin: http://furnace.local\r\nContent-Type: application/json\r\n\r\n";
    assert_eq!(run_with(req, &snap).status, 403);
    // Its own origin (any case), or none: accepted.
    for h in [
        "Origin: http://furnace.local\r\n",
        "Origin: HTTP://Furnace.Local\r\n",
        "",
    ] {
        let h = format!("{h}{json}");
        let p = run_with(&post_with("/api/reset-cutoff", &h, ""), &snap);
        assert_eq!((p.status, p.command), (202, Some(Command::ResetCutoff)), "{h:?}");
    }
}

#[test]
fn invalid_json_numbers_are_a_400() {
    for body in [
        r#"{"setpoint_c":0300}"#,
        r#"{"setpoint_c":+300}"#,
        r#"{"setpoint_c":-0300}"#,
        r#"{"setpoint_c":00}"#,
        r#"{"setpoint_c":300.}"#,
        r#"{"setpoint_c":.3e3}"#,
        r#"{"setpoint_c":3e}"#,
        r#"{"setpoint_c":3e+}"#,
        r#"{"setpoint_c":3-0}"#,
        r#"{"setpoint_c":--300}"#,
    ] {
        let p = run(&post("/api/setpoint", body));
        assert_eq!((p.status, p.command), (400, None), "{body}");
    }
    for (body, c) in [
        (r#"{"setpoint_c":300}"#, 300),
        (r#"{"setpoint_c":3.0e2}"#, 300),
        (r#"{"setpoint_c":3E+2}"#, 300),
        (r#"{"setpoint_c":30000e-2}"#, 300),
        (r#"{"setpoint_c":100}"#, 100),
    ] {
        let p = run(&post("/api/setpoint", body));
        assert_eq!(p.command, Some(Command::SetSetpoint(c)), "{body}");
    }
}

#[test]
fn blank_lines_alone_are_a_400_at_once() {
    for req in [&b"\r\n\r\n"[..], b"\n\n", b"\r\n\n", b"\n\r\n", b"\r\n\r"] {
        assert_eq!(run(req).status, 400, "{req:?}");
    }
    // One leading empty line is skipped (RFC 9112 2.2); a lone CR may become one.
    assert_eq!(run(b"\r\nGET /api/state HTTP/1.1\r\n\r\n").status, 200);
    let hist = history();
    let snap = snapshot();
    let view = View {
        snapshot: &snap,
        history: &hist,
    };
    let mut out = vec![0u8; RESPONSE_BUF];
    for partial in [&b"\r"[..], b"\r\n", b"\n"] {
        assert_eq!(handle(partial, &view, &mut out), Handled::NeedMore, "{partial:?}");
    }
}

#[test]
fn a_full_request_buffer_is_a_431() {
    let mut out = vec![0u8; RESPONSE_BUF];
    let r = respond_incomplete(Incomplete::TooLarge, &mut out);
    assert_eq!(parse(&out[..r.len], None).status, 431);
}

#[test]
fn the_request_line_for_the_log() {
    assert_eq!(
        request_line(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        b"GET / HTTP/1.1"
    );
    assert_eq!(request_line(b"\r\nPOST /a HTTP/1.1\n"), b"POST /a HTTP/1.1");
    assert_eq!(request_line(&[b'a'; 200]).len(), 80);
    let esc = request_line(b"GET /\x1b[2J\x07 HTTP/1.1\r\n")
        .escape_ascii()
        .to_string();
    assert_eq!(esc, r"GET /\x1b[2J\x07 HTTP/1.1");
}

// ----------------------------------------------------------------- routing

#[test]
fn not_found_and_wrong_methods() {
    assert_eq!(run(b"GET /nope HTTP/1.1\r\n\r\n").status, 404);
    assert_eq!(run(b"GET /favicon.ico HTTP/1.1\r\n\r\n").status, 404);
    assert_eq!(
        run(b"POST /elsewhere HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status,
        404
    );
    let p = run(b"GET /api/setpoint HTTP/1.1\r\n\r\n");
    assert_eq!((p.status, p.header("Allow")), (405, Some("POST")));
    let p = run(b"PUT /api/reset-cutoff HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((p.status, p.header("Allow")), (405, Some("POST")));
    let p = run(&post("/", "{}"));
    assert_eq!((p.status, p.header("Allow")), (405, Some("GET, HEAD")));
    let p = run(b"DELETE /api/state HTTP/1.1\r\n\r\n");
    assert_eq!((p.status, p.header("Allow")), (405, Some("GET, HEAD")));
}

#[test]
fn malformed_and_partial_requests() {
    assert!(need_more(b""));
    assert!(need_more(b"GET / HT"));
    assert!(need_more(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    assert_eq!(run(b"GET / HTTP/1.1\n\n").status, 200); // bare LF is tolerated by httparse
    assert_eq!(run(b"\x00\x01\x02 / HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(run(b"GET / SPDY/3\r\n\r\n").status, 400);
    assert_eq!(run(b"GET\r\n\r\n").status, 400);
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(run(req.as_bytes()).status, 431);
}

#[test]
fn small_buffers_never_panic() {
    let hist = history();
    let snap = snapshot();
    let view = View {
        snapshot: &snap,
        history: &hist,
    };
    for size in [0, 10, 100, 200, 400, 1000, 4000] {
        let mut out = vec![0u8; size];
        for req in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /api/state HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\n\r\n",
        ] {
            match handle(req, &view, &mut out) {
                Handled::Respond(r) if r.len == 0 => assert!(size < 130),
                Handled::Respond(r) => {
                    let p = parse(&out[..r.len], None);
                    assert!(p.status == 500 || size >= 400, "{size} {}", p.status);
                }
                Handled::NeedMore => panic!(),
            }
        }
    }
}

// ----------------------------------------------------------------- properties

fn check_any(req: &[u8]) -> Result<(), TestCaseError> {
    let hist = history();
    let snap = snapshot();
    let view = View {
        snapshot: &snap,
        history: &hist,
    };
    let mut out = vec![0u8; RESPONSE_BUF];
    if let Handled::Respond(r) = handle(req, &view, &mut out) {
        prop_assert!(r.len > 0 && r.len <= out.len());
        let p = parse_as(&out[..r.len], r.command, req.starts_with(b"HEAD "));
        prop_assert_eq!(p.status, r.status);
        if let Some(Command::SetSetpoint(c)) = r.command {
            prop_assert!((SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&c));
        }
        prop_assert!(r.command.is_none() || r.status == 202);
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(req in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_any(&req)?;
    }

    #[test]
    fn arbitrary_requests_never_panic(
        method in prop_oneof![
            Just("GET".to_string()), Just("POST".to_string()), Just("HEAD".to_string()), "[A-Z]{1,8}"
        ],
        path in prop_oneof![
            Just("/".to_string()),
            Just("/api/state".to_string()),
            Just("/api/setpoint".to_string()),
            Just("/api/reset-cutoff".to_string()),
            "/[ -~]{0,20}",
        ],
        headers in proptest::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,30}"), 0..6),
        content_length in proptest::option::of(0usize..400),
        body in "[ -~]{0,300}",
        cut in any::<prop::sample::Index>(),
    ) {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        for (n, v) in &headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(cl) = content_length {
            req.push_str(&format!("Content-Length: {cl}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        check_any(req.as_bytes())?;
        // Every prefix too (a request arriving in pieces).
        let n = cut.index(req.len() + 1);
        check_any(&req.as_bytes()[..n])?;
    }

    #[test]
    fn arbitrary_setpoint_bodies(body in prop_oneof![
        "[ -~]{0,100}",
        any::<i64>().prop_map(|v| format!("{{\"setpoint_c\": {v}}}")),
        any::<f64>().prop_map(|v| format!("{{\"setpoint_c\": {v}}}")),
    ]) {
        let p = run(&post("/api/setpoint", &body));
        match p.command {
            Some(Command::SetSetpoint(c)) => {
                prop_assert_eq!(p.status, 202);
                prop_assert!((SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&c));
                let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
                prop_assert_eq!(parsed["setpoint_c"].as_f64(), Some(f64::from(c)));
            }
            _ => prop_assert!(p.status == 400 || p.status == 413, "{}", p.status),
        }
    }
}
