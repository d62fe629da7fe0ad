//! Headless Chromium (Debian's `chromium`) loads the UI from the host simulator:
//! the rendered DOM must show the temperature and the chart, and a screenshot is
//! saved as `target/furnace-ui.png` (a CI artifact).
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`): without it the test
//! fails, saying so — a browser test that passes without a browser would prove
//! nothing.
//!
//! The simulator serves through the firmware's web server (`pico_w_furnace::net`),
//! so this is the shipping server under a real browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::Sim;
use netpool_testkit::browser::{CHROMIUM, HEADLESS_ARGS};

/// Run chromium with a time limit; kill it (by its own handle) if it overruns.
fn chromium(profile: &Path, extra: &[&str], url: &str) -> Output {
    let mut child = Command::new(CHROMIUM)
        .args(HEADLESS_ARGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("chromium output");
        }
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output();
            panic!("chromium did not finish in 90 s: {out:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// Chromium, or a failure that says how to install it.
fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the browser test needs Chromium (apt-get install -y chromium)"
    );
}

#[test]
fn browser_renders_temperature_and_chart() {
    require_chromium();
    let sim = Sim::start(&["--speed", "1000", "--duration-s", "120"]);
    // Let it heat up and hold for a while, for a chart worth looking at (bounded; the
    // test only needs a few samples, so it goes on after 30 s whatever the state).
    for _ in 0..300 {
        let s = sim.state();
        let samples = s["history_c"].as_array().map_or(0, Vec::len);
        if samples >= 180 && s["temp_c"].as_f64().is_some_and(|t| t >= 240.0) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let url = format!("http://{}/", sim.addr);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("furnace-chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);

    // The DOM after the page's script has run its first refresh (virtual time).
    let out = chromium(&profile, &["--virtual-time-budget=5000", "--dump-dom"], &url);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let temp = dom
        .split(r#"id="temp" class="big">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no temperature element in the DOM:\n{dom}"));
    let value: f32 = temp
        .parse()
        .unwrap_or_else(|_| panic!("temperature is not a number: {temp:?}"));
    assert!((0.0..1100.0).contains(&value), "{value}");
    let d = dom
        .split(r#"id="chart-line" d=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no chart path in the DOM:\n{dom}"));
    assert!(
        d.starts_with('M') && d.matches('L').count() >= 5,
        "chart path too short: {d}"
    );
    assert!(dom.contains(r#"id="link">up<"#), "link state shown");
    // The script fetched /api/state and re-rendered from it at least once.
    assert!(
        dom.contains("data-refreshed="),
        "the page's refresh never ran:\n{dom}"
    );
    assert!(
        !dom.contains(r#"id="link">unreachable"#),
        "the page's refresh failed:\n{dom}"
    );

    // The screenshot, kept as a CI artifact.
    let png = target_dir().join("furnace-ui.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    let out = chromium(
        &profile,
        &[&shot, "--window-size=1024,768", "--virtual-time-budget=3000"],
        &url,
    );
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 10_000,
        "suspiciously small screenshot ({} bytes)",
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());
}
