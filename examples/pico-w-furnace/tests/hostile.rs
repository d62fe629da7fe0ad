//! Hostile and sloppy clients against `furnace-sim`, which serves through the
//! firmware's web server (`pico_w_furnace::net`: netpool's `AsyncPool`, the accept
//! backlog and the closer), over kernel TCP on 127.0.0.1.
//!
//! One test per case: cross-site requests cannot change state (a form POST from
//! another page, a foreign `Origin`, a `Content-Type` that is not exactly JSON),
//! invalid JSON numbers, escape sequences in the log, blank lines, an oversized
//! header, transfer codings, and what connections beyond the web tasks get. Every wait is bounded; no
//! test passes or fails on how fast the machine is.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::Sim;
use netpool_testkit::http::{read_response, Response};

/// A response's status and body text, or no status and what went wrong (for messages).
fn describe(response: std::io::Result<Response>) -> (Option<u16>, String) {
    match response {
        Ok(r) => (Some(r.status), String::from_utf8_lossy(&r.body).into_owned()),
        Err(e) => (None, e.to_string()),
    }
}

/// The simulator, once it serves (bounded retries in `Sim::state`).
fn started(extra: &[&str]) -> Sim {
    let sim = Sim::start(extra);
    let _ = sim.state();
    sim
}

/// Send `raw` on a new connection and read the response (bounded).
fn exchange(sim: &Sim, raw: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect_timeout(&sim.addr, Duration::from_secs(5)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(raw);
    describe(read_response(&mut s, Duration::from_secs(15), false))
}

fn post(sim: &Sim, path: &str, extra_headers: &str, body: &str) -> (Option<u16>, String) {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        sim.addr,
        body.len()
    );
    exchange(sim, raw.as_bytes())
}

/// Poll the state until `pred` holds (bounded); the last state either way.
fn state_until(sim: &Sim, tries: usize, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut s = sim.state();
    for _ in 0..tries {
        if pred(&s) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
        s = sim.state();
    }
    s
}

/// A simulator whose cutoff has tripped and latched, with the furnace back below the
/// reset threshold (a reset would be honoured).
fn latched_sim() -> Sim {
    let sim = Sim::start(&[
        "--speed",
        "1000",
        "--duration-s",
        "120",
        "--runaway-at-s",
        "1200",
        "--runaway-for-s",
        "1500",
    ]);
    let s = state_until(&sim, 1200, |s| {
        s["overheat_latched"] == true && s["temp_c"].as_f64().is_some_and(|t| t < 800.0)
    });
    assert_eq!(s["overheat_latched"], true, "the cutoff never latched: {s}");
    sim
}

#[test]
fn a_cross_site_form_post_cannot_reset_the_latched_cutoff() {
    let sim = latched_sim();
    // What an HTML form on another page makes the browser send.
    let form = "Origin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let (status, text) = post(&sim, "/api/reset-cutoff", form, "x=1");
    assert!(matches!(status, Some(403 | 415)), "{text}");
    // The same form without an Origin (older browsers, some privacy settings).
    let no_origin = "Content-Type: application/x-www-form-urlencoded\r\n";
    let (status, text) = post(&sim, "/api/reset-cutoff", no_origin, "x=1");
    assert_eq!(status, Some(415), "{text}");
    // text/plain is a "simple" type too: no preflight, so it must not work either.
    let (status, text) = post(&sim, "/api/reset-cutoff", "Content-Type: text/plain\r\n", "{}");
    assert_eq!(status, Some(415), "{text}");
    let (status, text) = post(&sim, "/api/reset-cutoff", "", "");
    assert_eq!(status, Some(415), "no Content-Type: {text}");
    // A JSON request from a foreign origin.
    let foreign = "Origin: http://evil.example\r\nContent-Type: application/json\r\n";
    let (status, text) = post(&sim, "/api/reset-cutoff", foreign, "{}");
    assert_eq!(status, Some(403), "{text}");
    // Several control cycles later the latch still holds and no reset was seen.
    let cycles = sim.state()["cycles"].as_u64().unwrap();
    let s = state_until(&sim, 400, |s| s["cycles"].as_u64().unwrap() >= cycles + 5);
    assert_eq!(s["overheat_latched"], true, "{s}");
    assert_ne!(s["last_command"], "cutoff-reset", "{s}");
    // The page's own request (same origin, JSON) still works.
    let own = format!(
        "Origin: http://{}\r\nContent-Type: application/json\r\n",
        sim.addr
    );
    let (status, text) = post(&sim, "/api/reset-cutoff", &own, "");
    assert_eq!(status, Some(202), "{text}");
    let s = state_until(&sim, 400, |s| s["overheat_latched"] == false);
    assert_eq!(s["overheat_latched"], false, "{s}");
}

#[test]
fn the_setpoint_takes_only_json_from_this_origin() {
    let sim = started(&["--speed", "50", "--duration-s", "60"]);
    let body = r#"{"setpoint_c":300}"#;
    for ct in [
        "",
        "Content-Type: application/jsonx\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/json-seq\r\n",
    ] {
        let (status, text) = post(&sim, "/api/setpoint", ct, body);
        assert_eq!(status, Some(415), "{ct:?}: {text}");
    }
    for origin in ["http://evil.example", "null", "http://127.0.0.1.evil.example"] {
        let h = format!("Origin: {origin}\r\nContent-Type: application/json\r\n");
        let (status, text) = post(&sim, "/api/setpoint", &h, body);
        assert_eq!(status, Some(403), "{origin}: {text}");
    }
    let s = sim.state();
    assert_eq!(s["setpoint_c"], 250, "{s}");
    // JSON with parameters, any case, from the page's own origin: accepted.
    let own = format!(
        "Origin: http://{}\r\nContent-Type: Application/JSON; charset=utf-8\r\n",
        sim.addr
    );
    let (status, text) = post(&sim, "/api/setpoint", &own, body);
    assert_eq!(status, Some(202), "{text}");
}

#[test]
fn invalid_json_numbers_are_refused() {
    let sim = started(&["--speed", "50", "--duration-s", "60"]);
    let json = "Content-Type: application/json\r\n";
    for body in [
        r#"{"setpoint_c":0300}"#,
        r#"{"setpoint_c":+300}"#,
        r#"{"setpoint_c":-0300}"#,
        r#"{"setpoint_c":300.}"#,
        r#"{"setpoint_c":.5e3}"#,
        r#"{"setpoint_c":3e}"#,
        r#"{"setpoint_c":00}"#,
    ] {
        let (status, text) = post(&sim, "/api/setpoint", json, body);
        assert_eq!(status, Some(400), "{body}: {text}");
    }
    let (status, text) = post(&sim, "/api/setpoint", json, r#"{"setpoint_c":3.0e2}"#);
    assert_eq!(status, Some(202), "{text}");
}

#[test]
fn request_bytes_are_escaped_in_the_log() {
    let mut sim = started(&["--speed", "50", "--duration-s", "60", "--print-every-s", "100"]);
    // A terminal escape (clear screen, set title) in the request line.
    let (status, _) = exchange(&sim, b"GET /\x1b[2J\x1b]0;pwned\x07 HTTP/1.1\r\n\r\n");
    assert_eq!(status, Some(400));
    let (status, _) = exchange(&sim, b"POST /\x1b[31mred HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, Some(400));
    assert!(
        sim.wait_for_line(Duration::from_secs(10), |l| l.contains("red")),
        "{:#?}",
        sim.output()
    );
    let web: Vec<&String> = sim.output().iter().filter(|l| l.starts_with("[web]")).collect();
    assert!(
        web.iter().all(|l| !l.bytes().any(|b| b < 0x20 || b == 0x7f)),
        "{web:#?}"
    );
    assert!(web.iter().any(|l| l.contains(r"\x1b[31mred")), "{web:#?}");
}

#[test]
fn blank_lines_alone_get_400_at_once() {
    let sim = started(&["--speed", "50", "--duration-s", "60"]);
    // Without waiting for the request deadline (408): nothing more will make it valid.
    let (status, text) = exchange(&sim, b"\r\n\r\n");
    assert_eq!(status, Some(400), "{text}");
    let (status, text) = exchange(&sim, b"\n\n");
    assert_eq!(status, Some(400), "{text}");
    // One leading blank line is tolerated (RFC 9112 2.2).
    let (status, text) = exchange(&sim, b"\r\nGET /api/state HTTP/1.1\r\n\r\n");
    assert_eq!(status, Some(200), "{text}");
}

#[test]
fn an_oversized_header_gets_431() {
    let sim = started(&["--speed", "50", "--duration-s", "60"]);
    let mut raw = b"GET /api/state HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(raw.len() + 64 * 1024, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    let mut s = TcpStream::connect_timeout(&sim.addr, Duration::from_secs(5)).unwrap();
    let mut w = s.try_clone().unwrap();
    // The server answers before it has all of it; the rest may meet a reset.
    let writer = thread::spawn(move || {
        let _ = w.set_write_timeout(Some(Duration::from_secs(10)));
        let _ = w.write_all(&raw);
    });
    let (status, text) = describe(read_response(&mut s, Duration::from_secs(15), false));
    let _ = writer.join();
    assert_eq!(status, Some(431), "{text}");
}

#[test]
fn transfer_codings_are_refused_as_rfc_9112_says() {
    // The same answers as the ESP8266 bridge example's simulated board.
    let sim = started(&["--speed", "50", "--duration-s", "60"]);
    let json = "Content-Type: application/json\r\n";
    for (coding, want) in [("chunked", 411), ("gzip, chunked", 501), ("gzip", 400)] {
        let raw = format!(
            "POST /api/setpoint HTTP/1.1\r\nHost: {}\r\n{json}Transfer-Encoding: {coding}\r\n\r\n\
             13\r\n{{\"setpoint_c\": 300}}\r\n0\r\n\r\n",
            sim.addr
        );
        let (status, text) = exchange(&sim, raw.as_bytes());
        assert_eq!(status, Some(want), "{coding}: {text}");
    }
    assert_eq!(sim.state()["setpoint_c"], 250);
}

#[test]
fn connections_beyond_the_web_tasks_wait_for_one_and_are_not_hung() {
    // Measured and documented (README, "Hostile clients"): 4 web tasks serve; up to 8
    // more connections wait in the accept backlog for a task (at most 5 s, then they
    // are reset), so a browser's parallel connections are served, not refused.
    let sim = started(&["--speed", "50", "--duration-s", "60"]);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect_timeout(&sim.addr, Duration::from_secs(5)).unwrap())
        .collect();
    // Time for the tasks to take them (should one not have, the fifth below gets
    // that task and the test still holds).
    thread::sleep(Duration::from_millis(300));
    // A fifth while every task holds an idle connection: it waits ...
    let mut fifth = TcpStream::connect_timeout(&sim.addr, Duration::from_secs(5)).unwrap();
    fifth.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    fifth.write_all(b"GET /api/state HTTP/1.1\r\n\r\n").unwrap();
    // ... until an idle client leaves (its task sees it gone and is free at once).
    drop(idle.remove(0));
    let (status, text) = describe(read_response(&mut fifth, Duration::from_secs(15), false));
    assert_eq!(status, Some(200), "the fifth connection was not served: {text}");
    // The idle ones still held are answered 408 at the request deadline.
    for mut s in idle {
        let (status, text) = describe(read_response(&mut s, Duration::from_secs(15), false));
        assert_eq!(status, Some(408), "{text}");
    }
    assert_eq!(sim.get("/api/state").map(|r| r.0), Some(200));
}
