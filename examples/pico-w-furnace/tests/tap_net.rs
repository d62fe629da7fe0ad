//! The firmware's web server (`pico_w_furnace::net`: embassy-net, netpool's leased
//! acceptor and `AsyncPool`) on the host: `furnace-net-host` on a TAP device in a network
//! namespace this test creates, driven by real clients inside the namespace over the
//! kernel's TCP:
//!
//! - curl (GET the page and the state, POST a setpoint);
//! - headless Chromium loading the UI and polling `/api/state` (its refreshes are
//!   seen in the DOM and in the server's request log);
//! - a client that resets (RST) after reading each response;
//! - a client that asks for the page and never reads (small receive window): the
//!   reaper gives up on it (stall grace) and its slot comes back;
//! - a client that connects and never sends: 408 at the request deadline;
//! - a client that reads its response and the server's FIN but never closes its side:
//!   while the background closer still waits for that client's FIN (`closer_closing`
//!   in the report), the slot is free and every web task is back in `accept`; the
//!   closer resets it at its linger deadline and the client sees the reset;
//! - bursts of 6 parallel connections (more than the 4 web tasks) while a poller asks
//!   for the state every 250 ms: every connection is served at its first attempt —
//!   none refused at SYN (smoltcp has no SYN queue: the accept backlog keeps enough
//!   sockets listening while the tasks serve), none reset before its response;
//!
//! then: every slot free, every web task back in `accept` having served, every
//! accepted connection accounted for in exactly one outcome and taken from the backlog
//! (none expired there, none turned away), every written response
//! closed through the closer (finished, reset, or reset at once when it was full),
//! and the control loop's watchdog fed throughout (the binary's watchdog model exits
//! the process if not).
//!
//! Needs root, iproute2, curl, /dev/net/tun and chromium, so it is `#[ignore]`d unless
//! asked for with `--ignored` (CI's "TAP tests" section does); asked for, it fails,
//! saying what is missing, when they are not there — never a silent pass:
//!
//! ```text
//! sudo -E cargo test -p pico-w-furnace --features net-host --test tap_net -- --ignored --nocapture
//! ```
//!
//! Two more tests, one fault phase each, each on a host of its own in a namespace of
//! its own (issue 23; run one alone by naming it: `-- --ignored halfopen` or `loss`).
//! Every request in them is one attempt, counted as served (at the first attempt, or
//! only after a SYN retransmission), refused, reset, timed out or other:
//!
//! - `halfopen` (~40 s): half-open handshakes, raw SYNs from addresses of the TAP subnet
//!   that answer no ARP (`netns::halfopen`): 24 at once (3 × the [`BACKLOG`] accepts
//!   armed on the listener: the web tasks take their connections from the backlog and
//!   arm none of their own), then 20 per second for 10 s, while an ordinary client
//!   asks for the state every 250 ms; at least 99.5 % of its requests are served at
//!   the first attempt in each window (before, burst, sustained, after).
//! - `loss` (~40 s): 5 % of the packets dropped each way on the TAP device (nft netdev
//!   ingress and egress hooks, `numgen random`: lost as on the air, see `netns::nft`)
//!   under the burst load: 20 bursts of 6 parallel connections beside a poller every
//!   250 ms; nothing refused, nothing reset, every request served (long
//!   client timeouts, so only a refusal or a reset can fail). The server's counters
//!   before and after (closer resets, reaps, backlog expiries, failed writes) say who
//!   reset what.
//!
//! There is no vanishing-download phase here: the furnace's largest response (the
//! page, 6.4 KB) is smaller than the 8 KiB a vanishing download reads first.
//!
//! `loss` needs nftables (`nft`); missing, it FAILS saying so. `TAP_CAPTURE=DIR` makes
//! each fault phase write a packet capture `DIR/<phase>.pcap` (tcpdump in the
//! namespace). The tests of this file run one at a time (`netns::serial`).
//!
//! ```text
//! sudo -E cargo test -p pico-w-furnace --features net-host --test tap_net -- --ignored --nocapture loss
//! ```
//!
//! Every wait is bounded; nothing asserts on durations.

#[path = "netns/mod.rs"]
mod netns;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use netns::capture::Capture;
use netns::host::{num, Host};
use netns::poll::{self, Outcome, Timeouts};
use netns::{halfopen, nft, Netns};
use netpool_testkit::browser::{CHROMIUM, HEADLESS_ARGS};
use netpool_testkit::http::parse_closed;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

const HOST_IP: &str = "10.77.0.1";
const DEVICE_IP: &str = "10.77.0.2";
/// The web tasks (and slots) of `pico_w_furnace::net`.
const WEB_TASKS: usize = 4;

/// `furnace-net-host` in the namespace, once it reports the network up.
fn start_host(ns: &Netns) -> Host {
    let mut command = ns.command(env!("CARGO_BIN_EXE_furnace-net-host"));
    command.args(["--tap", &ns.tap, "--address", &format!("{DEVICE_IP}/24")]);
    Host::start("furnace-net-host", command, "network up")
}

/// Request-log lines (`web[N]: GET /api/state HTTP/1.1 -> 200 (…)`) from `from` on.
fn requests_since(host: &mut Host, from: usize, what: &str) -> usize {
    host.drain();
    host.log()[from..]
        .iter()
        .filter(|l| l.contains("web[") && l.contains(what))
        .count()
}

fn device() -> SocketAddr {
    format!("{DEVICE_IP}:80").parse().unwrap()
}

/// One request on a new connection; the whole response (the server closes).
fn http(request: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&device(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_closed(&buf).map(|r| (r.status, r.body))
}

/// The status of a whole response.
fn status_of(response: &[u8]) -> std::io::Result<u16> {
    parse_closed(response).map(|r| r.status)
}

fn curl(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .command("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Headless Chromium in the namespace; killed (by its handle) if it overruns 120 s.
fn chromium(ns: &Netns, args: &[&str]) -> String {
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tap-net-chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let mut child = ns
        .command(CHROMIUM)
        .args(HEADLESS_ARGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().expect("chromium output");
            assert!(
                out.status.success(),
                "chromium failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output();
            panic!("chromium did not finish in 120 s: {out:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A browser's request on a new connection, one attempt: the status, or the error
/// (a refused connection, a reset before the response...).
fn get_once(path: &str) -> std::io::Result<u16> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {DEVICE_IP}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n\
         Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en\r\nConnection: keep-alive\r\n\r\n"
    );
    http(&request).map(|(status, _)| status)
}

/// Bursts of parallel connections.
const BURSTS: usize = 10;
/// Connections opened at once in a burst: a browser's six per host.
const BURST: usize = 6;
/// The poller's period, and the pause between bursts.
const POLL_MS: u64 = 250;
/// The poller's requests at most (it stops when the bursts are done).
const MAX_POLLS: usize = 200;

/// `BURSTS` bursts of `BURST` connections opened at once, beside a poller asking for
/// the state every `POLL_MS`: every request's outcome (bursts', then the poller's).
fn bursts_with_a_poller() -> (Vec<std::io::Result<u16>>, Vec<std::io::Result<u16>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut polls = Vec::new();
            while polls.len() < MAX_POLLS && !stop.load(Ordering::Acquire) {
                polls.push(get_once("/api/state"));
                thread::sleep(Duration::from_millis(POLL_MS));
            }
            polls
        })
    };
    let mut served = Vec::new();
    for round in 0..BURSTS {
        let start = Arc::new(Barrier::new(BURST));
        let clients: Vec<_> = (0..BURST)
            .map(|c| {
                let start = start.clone();
                let path = if (round + c) % 3 == 0 { "/" } else { "/api/state" };
                thread::spawn(move || {
                    start.wait();
                    get_once(path)
                })
            })
            .collect();
        served.extend(clients.into_iter().map(|c| c.join().expect("client")));
        thread::sleep(Duration::from_millis(POLL_MS));
    }
    stop.store(true, Ordering::Release);
    (served, poller.join().expect("poller"))
}

/// Whether every web task is in `accept` (the report's `tasks`).
fn all_accepting(r: &HashMap<String, String>) -> bool {
    r["tasks"].split(',').all(|t| t.starts_with("accepting:"))
}

/// A client that reads its whole response, sees the server's FIN and never closes:
/// the closer keeps waiting for the client's FIN while the web task that served it is
/// already back in `accept` with its slot free. The observation is made while the
/// closer's linger runs, so on a machine too slow to ask within it the client is
/// retried (at most 3 clients); then the closer resets every one of them.
fn closer_finishes_while_tasks_accept(host: &mut Host) {
    // Earlier clients' closes first (bounded wait), so what closes now is ours.
    let mut before = host.report();
    for _ in 0..80 {
        if num(&before, "closer_closing") == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(250));
        before = host.report();
    }
    assert_eq!(num(&before, "closer_closing"), 0, "{before:?}");
    let mut held = Vec::new();
    let mut seen = None;
    for _ in 0..3 {
        let mut s = TcpStream::connect_timeout(&device(), Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        // To the server's FIN (end of stream); the client's side stays open.
        s.read_to_end(&mut buf).expect("response and FIN");
        assert_eq!(status_of(&buf).unwrap(), 200);
        held.push(s);
        // The closer's counters are published after each close and every tick: ask
        // until they show this client closing with every task back in accept, or the
        // closer has already reset it (too late to see; try another client).
        let ours_reset = |r: &HashMap<String, String>| {
            num(r, "closer_reset") >= num(&before, "closer_reset") + held.len() as u64
        };
        for _ in 0..40 {
            let r = host.report();
            let ours_handed = num(&r, "closer_handed") >= num(&before, "closer_handed") + held.len() as u64;
            if ours_handed && num(&r, "closer_closing") >= 1 && all_accepting(&r) && !ours_reset(&r) {
                seen = Some(r);
                break;
            }
            if ours_reset(&r) {
                println!("the closer reset the client before it was seen closing: {r:?}");
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if seen.is_some() {
            break;
        }
    }
    let seen = seen.expect(
        "never saw the closer closing the client that keeps its side open with every web task back in accept",
    );
    println!("while the closer waits for the client's FIN: {seen:?}");
    assert_eq!(
        num(&seen, "free_slots"),
        WEB_TASKS as u64,
        "the slot is free while its socket is still closing: {seen:?}"
    );
    assert!(
        num(&seen, "closer_handed") > num(&before, "closer_handed"),
        "{seen:?}"
    );
    // The closer gives up at its linger deadline: RST, counted.
    let mut after = host.report();
    for _ in 0..80 {
        if num(&after, "closer_reset") >= num(&before, "closer_reset") + held.len() as u64
            && num(&after, "closer_closing") == 0
        {
            break;
        }
        thread::sleep(Duration::from_millis(250));
        after = host.report();
    }
    println!("after the closer's deadline: {after:?}");
    assert_eq!(
        num(&after, "closer_reset"),
        num(&before, "closer_reset") + held.len() as u64,
        "the closer reset every client that kept its side open: {after:?}"
    );
    assert_eq!(num(&after, "closer_closing"), 0, "{after:?}");
    assert_eq!(
        num(&after, "closer_overflow"),
        num(&before, "closer_overflow"),
        "{after:?}"
    );
    // The clients see the reset: their next write fails (the first may still be
    // queued if the RST is in flight; bounded retries).
    for mut s in held {
        let mut failed = false;
        for _ in 0..10 {
            if s.write_all(b"x").is_err() {
                failed = true;
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        assert!(failed, "the client holding its side open was never reset");
    }
}

#[test]
#[ignore = "needs root, iproute2, /dev/net/tun, chromium; opt in with --ignored (CI runs it in its TAP section)"]
fn furnace_web_server_on_embassy_net_over_tap() {
    let _serial = netns::serial();
    if !Path::new(CHROMIUM).exists() {
        panic!("{CHROMIUM} not found: this test drives the UI with it (apt-get install chromium)");
    }
    let ns = Netns::create("furnace", HOST_IP);
    let mut host = start_host(&ns);
    // From here on this thread, and every thread it starts, is inside the namespace.
    ns.enter();
    let start = host.report();
    println!("start: {start:?}");

    // --- curl: the page, the state, a command.
    let code = curl(
        &ns,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{DEVICE_IP}/"),
        ],
    );
    assert_eq!(code, "200");
    // The state the control loop publishes shows the link once it has cycled since
    // the link task saw the network up (bounded wait).
    let mut state = serde_json::Value::Null;
    for _ in 0..40 {
        state = serde_json::from_str(&curl(&ns, &[&format!("http://{DEVICE_IP}/api/state")]))
            .expect("state JSON");
        if state["link"] == "up" {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(state["link"], "up", "{state}");
    let posted = curl(
        &ns,
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"setpoint_c":300}"#,
            "-w",
            " %{http_code}",
            &format!("http://{DEVICE_IP}/api/setpoint"),
        ],
    );
    assert!(posted.ends_with(" 202"), "{posted}");
    let code = curl(
        &ns,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{DEVICE_IP}/nowhere"),
        ],
    );
    assert_eq!(code, "404");

    // --- Chromium: the UI and its polling (virtual time: ~5 refreshes at 2 s).
    host.drain();
    let mark = host.log().len();
    let dom = chromium(
        &ns,
        &[
            "--virtual-time-budget=10000",
            "--dump-dom",
            &format!("http://{DEVICE_IP}/"),
        ],
    );
    assert!(dom.contains(r#"id="temp""#), "no UI in the DOM:\n{dom}");
    assert!(
        dom.contains("data-refreshed="),
        "the page's refresh never ran:\n{dom}"
    );
    assert!(
        !dom.contains(r#"id="link">unreachable"#),
        "the page's refresh failed:\n{dom}"
    );
    let page_loads = requests_since(&mut host, mark, "GET / HTTP/1.1 -> 200");
    let polls = requests_since(&mut host, mark, "GET /api/state HTTP/1.1 -> 200");
    println!("chromium: {page_loads} page load(s), {polls} poll(s) of /api/state");
    assert!(
        page_loads >= 1 && polls >= 2,
        "chromium's requests: {page_loads} page, {polls} polls"
    );
    assert!(
        dom.contains(r#"id="setpoint">300"#) || dom.contains("300"),
        "the posted setpoint is shown"
    );

    // --- A client that resets after each response.
    for _ in 0..5 {
        let mut s = TcpStream::connect_timeout(&device(), Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("response");
        assert_eq!(status_of(&buf).unwrap(), 200);
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s); // RST
    }

    // --- A client that never reads and one that never sends, at once.
    let before = host.report();
    let non_reader = {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.set_recv_buffer_size(1024).unwrap(); // before connecting: a small window
        s.connect_timeout(&device().into(), Duration::from_secs(5))
            .unwrap();
        let mut s: TcpStream = s.into();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s
    };
    let mute = thread::spawn(|| {
        let mut s = TcpStream::connect_timeout(&device(), Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("the server answers and closes");
        status_of(&buf).expect("an HTTP response")
    });
    assert_eq!(mute.join().unwrap(), 408, "a client that never sends gets 408");
    // The reaper: bounded wait for it to give up on the non-reader.
    let mut after = host.report();
    for _ in 0..60 {
        if num(&after, "reaped") > num(&before, "reaped") && num(&after, "free_slots") == WEB_TASKS as u64 {
            break;
        }
        thread::sleep(Duration::from_millis(500));
        after = host.report();
    }
    println!("after the non-reader and the mute client: {after:?}");
    assert!(
        num(&after, "reaped") > num(&before, "reaped"),
        "the reaper gave up on the non-reader: {after:?}"
    );
    assert!(
        num(&after, "write_failed") > num(&before, "write_failed"),
        "{after:?}"
    );
    assert!(
        num(&after, "request_timed_out") > num(&before, "request_timed_out"),
        "{after:?}"
    );
    assert_eq!(num(&after, "free_slots"), WEB_TASKS as u64, "{after:?}");
    drop(non_reader);

    closer_finishes_while_tasks_accept(&mut host);

    // --- Bursts of 6 parallel connections and a 250 ms poller: all served at once.
    let (bursts, polls) = bursts_with_a_poller();
    let failed: Vec<String> = bursts
        .iter()
        .chain(&polls)
        .filter(|o| !matches!(o, Ok(200)))
        .map(|o| format!("{o:?}"))
        .collect();
    println!(
        "{BURSTS} bursts of {BURST} parallel connections and {} polls: {} not served at the first attempt {failed:?}",
        polls.len(),
        failed.len()
    );
    assert!(!polls.is_empty(), "the poller never asked");
    assert!(
        failed.is_empty(),
        "every connection is served at its first attempt (nothing refused at SYN, nothing reset before its response): {failed:?}"
    );

    // --- Afterwards: slots free, tasks back in accept, everything accounted for.
    let mut end = host.report();
    for _ in 0..80 {
        if num(&end, "free_slots") == WEB_TASKS as u64
            && all_accepting(&end)
            && num(&end, "closer_closing") == 0
        {
            break;
        }
        thread::sleep(Duration::from_millis(250));
        end = host.report();
    }
    println!("end: {end:?}");
    assert_eq!(
        num(&end, "free_slots"),
        WEB_TASKS as u64,
        "every slot free: {end:?}"
    );
    assert_eq!(num(&end, "in_use"), 0);
    assert_eq!(end["slots"], "free,free,free,free");
    let tasks: Vec<&str> = end["tasks"].split(',').collect();
    assert_eq!(tasks.len(), WEB_TASKS);
    for t in &tasks {
        let mut f = t.split(':');
        assert_eq!(
            f.next(),
            Some("accepting"),
            "a web task is not back in accept: {tasks:?}"
        );
        let connections: u64 = f.nth(1).unwrap().parse().unwrap();
        assert!(connections > 0, "a web task never served: {tasks:?}");
    }
    // Every accepted connection ended in exactly one outcome.
    let responded =
        num(&end, "responded_ok") + num(&end, "responded_client_error") + num(&end, "responded_server_error");
    assert_eq!(
        num(&end, "accepted"),
        responded + num(&end, "read_failed"),
        "{end:?}"
    );
    assert_eq!(
        responded - num(&end, "empty_response"),
        num(&end, "written") + num(&end, "write_failed"),
        "{end:?}"
    );
    assert_eq!(
        num(&end, "rejected"),
        0,
        "the pool never turned a connection away: {end:?}"
    );
    assert_eq!(num(&end, "accept_failed"), 0, "{end:?}");
    // Every connection came through the backlog; none waited there too long.
    assert_eq!(num(&end, "backlog_served"), num(&end, "accepted"), "{end:?}");
    assert_eq!(num(&end, "backlog_parked"), num(&end, "accepted"), "{end:?}");
    assert_eq!(num(&end, "backlog_expired"), 0, "{end:?}");
    assert_eq!(num(&end, "backlog_refused"), 0, "{end:?}");
    // Every response written was closed through the closer, and every close it took
    // ended (FIN completed, or reset at the linger deadline).
    assert_eq!(
        num(&end, "written"),
        num(&end, "closer_handed") + num(&end, "closer_overflow"),
        "{end:?}"
    );
    assert_eq!(num(&end, "closer_closing"), 0, "{end:?}");
    assert_eq!(
        num(&end, "closer_handed"),
        num(&end, "closer_finished") + num(&end, "closer_reset"),
        "{end:?}"
    );
    assert!(num(&end, "closer_finished") > 0, "{end:?}");
    // A close that found the closer full waited for a place (netpool's policy) and
    // got one: no response was cut short by a reset for want of room.
    assert_eq!(num(&end, "closer_overflow"), 0, "{end:?}");
    assert!(num(&end, "closer_waited") <= num(&end, "written"), "{end:?}");
    // The control loop kept cycling and feeding the watchdog through all of it.
    assert!(num(&end, "feeds") > num(&start, "feeds"), "{end:?}");
    assert_eq!(
        num(&end, "feeds"),
        num(&end, "cycles"),
        "a feed after every cycle"
    );
    host.assert_alive();
    println!(
        "control: {} cycles, longest gap between watchdog feeds {} ms (firmware timeout 2000 ms)",
        num(&end, "cycles"),
        num(&end, "max_feed_gap_ms")
    );
}

// ------------------------------------------------------------------ fault phases

use pico_w_furnace::net::BACKLOG;

const STATE_REQUEST: &str = "GET /api/state HTTP/1.1\r\nHost: furnace\r\n\r\n";
const PAGE_REQUEST: &str = "GET / HTTP/1.1\r\nHost: furnace\r\n\r\n";

fn device_v4() -> std::net::SocketAddrV4 {
    format!("{DEVICE_IP}:80").parse().unwrap()
}

fn state_once(timeouts: Timeouts) -> Outcome {
    poll::get(device(), STATE_REQUEST, timeouts, false)
}

/// The counters that say who ended a connection, as `key before→after`.
const WHO_ENDED: [&str; 14] = [
    "accepted",
    "rejected",
    "reaped",
    "idle_closed",
    "aborted",
    "read_failed",
    "request_timed_out",
    "write_failed",
    "write_timed_out",
    "closer_reset",
    "closer_finished",
    "closer_overflow",
    "backlog_expired",
    "backlog_refused",
];

fn counters_moved(before: &HashMap<String, String>, after: &HashMap<String, String>) -> String {
    WHO_ENDED
        .iter()
        .map(|k| format!("{k} {}", num(after, k) - num(before, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
#[ignore = "needs root, iproute2, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn furnace_tap_halfopen_handshakes_lock_no_client_out() {
    let _serial = netns::serial();
    let ns = Netns::create("fu-ho", HOST_IP);
    let mut host = start_host(&ns);
    ns.enter();
    let _capture = Capture::start(&ns, "furnace-halfopen");
    let before = host.report();
    let started = Instant::now();
    let result = halfopen::run(&ns, device_v4(), BACKLOG, || state_once(Timeouts::ORDINARY));
    let after = host.report();
    println!(
        "furnace-net-host (embassy-net, AsyncPool + Backlog of {BACKLOG}): {result}\n  server: {}\n  \
         tasks {}; phase {:.0} s",
        counters_moved(&before, &after),
        after["tasks"],
        started.elapsed().as_secs_f64()
    );
    host.assert_alive();
    result.assert_served("furnace-net-host");
}

/// Packets dropped each way on the TAP device in the loss phase, in percent.
const LOSS_PERCENT: u32 = 5;
/// Bursts of the loss phase (twice the burst phase's: the resets are rare).
const LOSS_BURSTS: usize = 20;

#[test]
#[ignore = "needs root, iproute2, nftables, /dev/net/tun; opt in with --ignored (CI runs it in its TAP section)"]
fn furnace_tap_loss_resets_nothing() {
    let _serial = netns::serial();
    let ns = Netns::create("fu-loss", HOST_IP);
    nft::require(&ns);
    let mut host = start_host(&ns);
    ns.enter();
    let _capture = Capture::start(&ns, "furnace-loss");
    let before = host.report();
    let started = Instant::now();
    nft::start_loss(&ns, LOSS_PERCENT);
    let (bursts, polls) = poll::bursts_with_a_poller(
        LOSS_BURSTS,
        BURST,
        Duration::from_millis(POLL_MS),
        MAX_POLLS * 2,
        |round, c| {
            let request = if (round + c) % 3 == 0 {
                PAGE_REQUEST
            } else {
                STATE_REQUEST
            };
            poll::get(device(), request, Timeouts::LOSSY, false)
        },
        || state_once(Timeouts::LOSSY),
    );
    let (dropped_in, dropped_out) = nft::loss_counters(&ns);
    nft::stop_loss(&ns);
    // Closes still under way finish (bounded) before the counters are read.
    let mut after = host.report();
    for _ in 0..40 {
        if num(&after, "closer_closing") == 0 && all_accepting(&after) {
            break;
        }
        thread::sleep(Duration::from_millis(250));
        after = host.report();
    }
    let mut all = bursts.clone();
    all.merge(&polls);
    println!(
        "furnace-net-host under {LOSS_PERCENT} % loss each way ({dropped_in} frames lost from the device, \
         {dropped_out} to it): {LOSS_BURSTS} bursts of {BURST}: {bursts}; poller: {polls}\n  \
         failures: {:?}\n  server: {}\n  phase {:.0} s",
        all.failures,
        counters_moved(&before, &after),
        started.elapsed().as_secs_f64()
    );
    host.assert_alive();
    assert!(dropped_in > 0 && dropped_out > 0, "the loss rules took frames");
    assert_eq!(all.refused, 0, "refused under loss: {all}");
    assert_eq!(all.reset, 0, "reset under loss: {:?}", all.failures);
    assert_eq!(
        all.answered(),
        all.total(),
        "every request served under loss (a SYN retransmission allowed): {:?}",
        all.failures
    );
}
