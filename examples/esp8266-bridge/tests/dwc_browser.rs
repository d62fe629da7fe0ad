//! Duet Web Control itself — a real DWC build, copied onto the simulated card's
//! `0:/www/` — loaded by headless Chromium (Debian's `chromium`) from `bridge-sim`'s
//! simulated board over kernel TCP on 127.0.0.1. DWC must connect once and then stay
//! connected: exactly one `rr_connect`, then object-model polls (`rr_model` with the
//! live-values flag `f`) that go on through the whole watch, every `rr_` request
//! answered 200 (but `rr_download` of a file not on the card: 404, as from RRF), and
//! no `rr_disconnect`. Checked from the board's side, in its request log
//! (`SamShared::request_log`); and DWC's console (Chromium's log) shows no script
//! error, such as a model value of the wrong shape.
//!
//! `#[ignore]`d: it needs a DWC build, which the repository does not contain. Run it
//! with the build's directory (the one holding `index.html.gz`) in `DWC_DIST`:
//!
//! ```sh
//! DWC_DIST=/path/to/dwc/dist cargo test -p esp8266-bridge --test dwc_browser -- --ignored --nocapture
//! ```
//!
//! Asked for (`--ignored`) without `DWC_DIST`, or without `/usr/bin/chromium`, it
//! fails saying what is missing; it never passes without having run the browser.
//! The example's README says how to build DWC.
//!
//! Bounded in time: at most [`LOAD_LIMIT`] for DWC to load and start polling, then
//! [`WATCH`] of polling watched in [`SLICE`]s; Chromium is then killed by its own
//! handle. No assertion is about how fast anything was: each slice must merely see
//! a poll (DWC polls every 250 ms by default).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::start;
use esp8266_bridge::host::sam::RequestRecord;
use esp8266_bridge::host::{card, demo_files, www_files, SimConfig, Simulator};
use netpool_testkit::browser::{CHROMIUM, HEADLESS_ARGS};

/// How long DWC may take to load and send its first live poll.
const LOAD_LIMIT: Duration = Duration::from_secs(90);
/// How long the steady polling is watched after that.
const WATCH: Duration = Duration::from_secs(36);
/// Each slice of the watch must see at least one live poll.
const SLICE: Duration = Duration::from_secs(6);

/// The DWC build to serve: `DWC_DIST`, which must hold `index.html(.gz)`.
fn dwc_dist() -> PathBuf {
    let dist = std::env::var_os("DWC_DIST")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "DWC_DIST is not set: this test needs a Duet Web Control build. Build one \
                 (examples/esp8266-bridge/README.md, \"Duet Web Control in a browser\") and run \
                 DWC_DIST=/path/to/dist cargo test -p esp8266-bridge --test dwc_browser -- --ignored"
            )
        });
    assert!(
        dist.join("index.html.gz").is_file() || dist.join("index.html").is_file(),
        "DWC_DIST={}: no index.html(.gz) there; point it at the build's output directory (dist/)",
        dist.display()
    );
    dist
}

/// Where Chromium's stderr goes: its own messages and the page's console
/// (`--enable-logging=stderr`), one `CONSOLE` line per message.
fn chromium_log() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dwc-chromium.log")
}

/// Chromium, headless, on `url`, until killed (a fresh profile under the target
/// directory's tmp; stderr to [`chromium_log`]).
fn chromium(url: &str) -> Child {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: this test drives Debian's Chromium (apt-get install -y chromium)"
    );
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dwc-chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    Command::new(CHROMIUM)
        .args(HEADLESS_ARGS)
        .args(["--window-size=1280,900", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(chromium_log()).expect("create the chromium log"))
        .spawn()
        .expect("start chromium")
}

fn is_live_poll(r: &RequestRecord) -> bool {
    r.path == "/rr_model"
        && r.param("key").unwrap_or("").is_empty()
        && r.param("flags").is_some_and(|f| f.contains('f'))
}

fn show(log: &[RequestRecord], from: Instant) -> String {
    log.iter()
        .map(|r| {
            format!(
                "{:7.2} s  {r}",
                r.at.saturating_duration_since(from).as_secs_f64()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wait (bounded by `limit`) until `done` holds for the request log; the browser
/// must stay up meanwhile.
fn wait_log(
    sim: &Simulator,
    browser: &mut Child,
    limit: Duration,
    done: impl Fn(&[RequestRecord]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    loop {
        if done(&sim.board().request_log()) {
            return true;
        }
        if let Ok(Some(status)) = browser.try_wait() {
            let err = std::fs::read_to_string(chromium_log()).unwrap_or_default();
            panic!("chromium exited early ({status}): {err}");
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs a Duet Web Control build in DWC_DIST and /usr/bin/chromium (see the example's README)"]
fn dwc_connects_once_and_keeps_polling_the_model() {
    let dist = dwc_dist();
    let mut files = demo_files();
    files.extend(www_files(&dist).expect("read the DWC build"));
    let sim = start(SimConfig {
        files,
        card_capacity: 256 << 20,
        ..SimConfig::default()
    });
    let url = format!("http://{}/", sim.addr());
    eprintln!("serving {} on {url}", dist.display());
    let t0 = Instant::now();
    let mut browser = chromium(&url);

    // DWC loads, connects, reads the whole model key by key, then polls live values.
    let loaded = wait_log(&sim, &mut browser, LOAD_LIMIT, |log| log.iter().any(is_live_poll));
    let log = sim.board().request_log();
    if !loaded {
        let _ = browser.kill();
        let _ = browser.wait();
        panic!(
            "DWC sent no live rr_model poll within {} s; requests:\n{}",
            LOAD_LIMIT.as_secs(),
            show(&log, t0)
        );
    }
    let first_poll = log.iter().find(|r| is_live_poll(r)).unwrap().at;

    // The watch: the browser must stay up throughout.
    let slices = (WATCH.as_secs() / SLICE.as_secs()) as u32;
    wait_log(
        &sim,
        &mut browser,
        WATCH.saturating_sub(first_poll.elapsed()),
        |_| false,
    );
    let _ = browser.kill();
    let _ = browser.wait();
    let log = sim.board().request_log();
    let text = show(&log, t0);
    let rr: Vec<&RequestRecord> = log.iter().filter(|r| r.path.starts_with("/rr_")).collect();
    let connects = rr.iter().filter(|r| r.path == "/rr_connect").count();
    let live: Vec<Instant> = log.iter().filter(|r| is_live_poll(r)).map(|r| r.at).collect();
    eprintln!(
        "{} requests, {} of them rr_: {connects} rr_connect, {} live rr_model polls in {:.1} s",
        log.len(),
        rr.len(),
        live.len(),
        live.last()
            .unwrap()
            .saturating_duration_since(live[0])
            .as_secs_f64()
    );

    assert!(
        log.len() < esp8266_bridge::host::sam::REQUEST_LOG,
        "the request log overflowed: {} requests",
        log.len()
    );
    assert_eq!(connects, 1, "DWC must connect exactly once; requests:\n{text}");
    let first_rr = rr.first().expect("rr_ requests");
    assert_eq!(
        (first_rr.path.as_str(), first_rr.param("sessionKey")),
        ("/rr_connect", Some("yes")),
        "DWC's first rr_ request is its login, asking for a session key; requests:\n{text}"
    );
    assert!(
        rr.iter().all(|r| r.path != "/rr_disconnect"),
        "DWC disconnected; requests:\n{text}"
    );
    // DWC probes for its settings and plugin files with rr_download; a file not on
    // the card is 404, as from RRF, and DWC takes that as "none saved".
    let absent = |r: &RequestRecord| {
        let files = sim.board().files.lock().unwrap();
        r.path == "/rr_download"
            && r.status == 404
            && r.param("name")
                .and_then(|n| card::normalise(n, false).ok())
                .is_some_and(|n| !files.contains_key(&n))
    };
    let bad: Vec<String> = rr
        .iter()
        .filter(|r| r.status != 200 && !absent(r))
        .map(|r| r.to_string())
        .collect();
    assert!(
        bad.is_empty(),
        "rr_ requests not answered 200: {bad:?}; requests:\n{text}"
    );
    // DWC met nothing in the answers it could not digest: no script error on its
    // console (a model key `null` where DWC expects an array, say, is a TypeError
    // it logs and goes on from). Rejections that are not script errors are left
    // alone: the SD-card package of DWC 3.5.3 lacks `robots.txt`, which its service
    // worker's precache list names, so the precache may log a 404 for it.
    let console = std::fs::read_to_string(chromium_log()).expect("the chromium log");
    let script_errors: Vec<&str> = console
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .filter(|l| {
            ["TypeError", "ReferenceError", "SyntaxError", "RangeError"]
                .iter()
                .any(|e| l.contains(e))
        })
        .collect();
    assert!(
        script_errors.is_empty(),
        "script errors on DWC's console:\n{}",
        script_errors.join("\n")
    );
    for n in 0..slices {
        let (from, to) = (first_poll + SLICE * n, first_poll + SLICE * (n + 1));
        let polls = live.iter().filter(|&&t| t >= from && t < to).count();
        assert!(
            polls > 0,
            "no live rr_model poll between {} s and {} s after the first one: DWC stopped polling; requests:\n{text}",
            (SLICE * n).as_secs(),
            (SLICE * (n + 1)).as_secs()
        );
    }
}
