//! The host simulator end to end: real sockets on 127.0.0.1, the firmware's web
//! server (`pico_w_furnace::net`: netpool's `AsyncPool`, accept backlog and closer),
//! the shared state between the control thread and the web tasks, link flaps.

mod common;

use std::thread;
use std::time::Duration;

use common::Sim;

#[test]
fn state_setpoint_and_errors_over_http() {
    let sim = Sim::start(&["--speed", "50", "--duration-s", "60"]);
    // Before the first control cycle the controller is idle and everything is off.
    let mut s = sim.state();
    for _ in 0..100 {
        if s["mode"] != "idle" {
            break;
        }
        assert_eq!(
            (s["cutoff_relay"].as_str(), s["element"].as_str()),
            (Some("open"), Some("off"))
        );
        thread::sleep(Duration::from_millis(20));
        s = sim.state();
    }
    assert_eq!(s["mode"], "regulating");
    assert_eq!(s["setpoint_c"], 250);
    assert_eq!(s["cutoff_relay"], "closed");

    let (status, body) = sim.post_json("/api/setpoint", r#"{"setpoint_c": 320}"#).unwrap();
    assert_eq!((status, body.as_str()), (202, r#"{"ok":true,"setpoint_c":320}"#));
    // The control loop applies it at its next cycle (bounded wait).
    let mut applied = false;
    for _ in 0..100 {
        let s = sim.state();
        if s["setpoint_c"] == 320 {
            assert_eq!(s["last_command"], "setpoint-applied");
            applied = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(applied, "setpoint never applied");

    let (status, body) = sim.post_json("/api/setpoint", r#"{"setpoint_c": 5000}"#).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("out of range"));
    let (status, _) = sim.post_json("/api/setpoint", "{oops").unwrap();
    assert_eq!(status, 400);
    let (status, _) = sim.post_json("/api/reset-cutoff", "").unwrap();
    assert_eq!(status, 409);
    assert_eq!(sim.get("/nope").unwrap().0, 404);
    assert_eq!(sim.get("/api/setpoint").unwrap().0, 405);
    let (status, page) = sim.get("/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="chart-line""#));
    // A request that never completes is answered by its deadline.
    let (status, _) = sim
        .request("POST /api/setpoint HTTP/1.1\r\nContent-Length: 40\r\n\r\n{")
        .unwrap();
    assert_eq!(status, 408);
}

#[test]
fn control_keeps_cycling_while_the_link_is_down() {
    let mut sim = Sim::start(&[
        "--speed",
        "20",
        "--link-flap-s",
        "2.5",
        "--print-every-s",
        "0.1",
        "--duration-s",
        "30",
    ]);
    assert!(
        sim.wait_for_line(Duration::from_secs(20), |l| l.starts_with("[wifi] link down")),
        "no link drop: {:#?}",
        sim.output()
    );
    // While down: the web server sees it (read from the driver) and new connections
    // are reset ...
    assert!(sim.wait_for_line(Duration::from_secs(10), |l| l.starts_with("[web] network down")));
    let refused = sim.get("/api/state").is_none();
    // ... and the control loop keeps printing a growing cycle count.
    assert!(sim.wait_for_line(Duration::from_secs(20), |l| l.starts_with("[wifi] link up")));
    let out = sim.output().join("\n");
    let down = out.find("[wifi] link down").unwrap();
    let up = out.find("[wifi] link up").unwrap();
    let cycles: Vec<u32> = out[down..up]
        .lines()
        .filter(|l| l.contains("link down") && l.starts_with("[control] cycle "))
        .filter_map(|l| l["[control] cycle ".len()..].split(' ').next()?.parse().ok())
        .collect();
    assert!(
        cycles.len() >= 2,
        "control status lines while down: {cycles:?}\n{out}"
    );
    assert!(cycles.windows(2).all(|w| w[0] < w[1]), "{cycles:?}");
    assert!(refused, "the UI should not be served while the link is down");
    // Back up: served again.
    assert!(sim.wait_for_line(Duration::from_secs(10), |l| l.starts_with("[web] network up")));
    // The snapshot shows the link the control loop last read (bounded retries: the
    // next cycle publishes it; the link may flap again meanwhile).
    let shown_up = (0..100).any(|_| {
        let up = sim.state()["link"] == "up";
        thread::sleep(Duration::from_millis(20));
        up
    });
    assert!(shown_up, "the UI never showed the link up again");
}

#[test]
fn runs_for_its_duration_and_exits_cleanly() {
    let mut sim = Sim::start(&["--speed", "1000", "--duration-s", "2", "--print-every-s", "0.5"]);
    let status = sim.wait_exit(Duration::from_secs(30)).expect("exits by itself");
    assert!(status.success(), "{status:?}\n{:#?}", sim.output());
    let last = sim.output().last().unwrap();
    assert!(last.starts_with("furnace-sim: done after"), "{last}");
    assert!(!sim.output().iter().any(|l| l.contains("[watchdog]")));
}

#[test]
fn the_firmware_web_server_answers() {
    // The request log is the firmware's (`net`): task, escaped request line, status.
    let mut sim = Sim::start(&["--speed", "50", "--duration-s", "60"]);
    let _ = sim.state();
    assert!(
        sim.wait_for_line(Duration::from_secs(10), |l| {
            l.starts_with("[web] web[") && l.contains("]: GET /api/state HTTP/1.1 -> 200 (")
        }),
        "{:#?}",
        sim.output()
    );
}
