//! The text of `M122` on the simulated board: RepRapFirmware's diagnostics sections
//! (several KiB, as the real firmware prints), ending with the WiFi module's own
//! report when the board could get it over SPI and the module's UART.

use std::format;
use std::string::{String, ToString};
use std::time::Instant;

use super::gcode::{Machine, FIRMWARE_VERSION};

/// The diagnostics of `m` at `now`, with the module's report if there is one.
pub fn report(m: &Machine, now: Instant, module_report: Option<&str>) -> String {
    let mut t = String::new();
    t.push_str("=== Diagnostics ===\n");
    t.push_str(&format!(
        "RepRapFirmware for Duet 2 WiFi/Ethernet version {FIRMWARE_VERSION} (simulated) running on Duet WiFi 1.02 or later\n"
    ));
    t.push_str("Board ID: 08DGM-9T6BU-FG3SJ-6J9F8-3S46R-SIMUL\nUsed output buffers: 3 of 26 (10 max)\n");
    t.push_str("=== RTOS ===\nStatic ram: 23460\nDynamic ram: 70360 of which 0 recycled\nNever used RAM 17972, free system stack 188 words\n");
    for (task, stack) in [
        ("NETWORK", 216),
        ("HEAT", 294),
        ("Move", 209),
        ("MAIN", 361),
        ("IDLE", 29),
    ] {
        t.push_str(&format!("Tasks: {task}(ready,13.4%,{stack}) \n"));
    }
    t.push_str("Owned mutexes: WiFi(NETWORK)\n=== Platform ===\nLast reset 00:00:01 ago, cause: power up\n");
    t.push_str("Last software reset details not available\nError status: 0x00\nMCU temperature: min 28.1, current 31.4, max 31.9\n");
    t.push_str("Supply voltage: min 24.1, current 24.2, max 24.3, under voltage events: 0, over voltage events: 0, power good: yes\n");
    for d in 0..5 {
        t.push_str(&format!(
            "Driver {d}: standstill, SG min/max not available, read errors 0, write errors 0, ifcnt 0\n"
        ));
    }
    t.push_str("Date/time: not set\nSlowest loop: 1.20ms; fastest: 0.09ms\n");
    t.push_str("=== Storage ===\nFree file entries: 10\nSD card 0 detected, interface speed: 20.0MBytes/sec\nSD card longest read time 2.1ms, write time 0.0ms, max retries 0\n");
    t.push_str("=== Move ===\nDMs created 83, segments created 0, maxWait 0ms, bed compensation in use: none, comp offset 0.000\n");
    t.push_str(&format!(
        "Position: X {:.3} Y {:.3} Z {:.3}; homed: {:?}\n",
        m.position[0], m.position[1], m.position[2], m.homed
    ));
    t.push_str("=== DDARing 0 ===\nScheduled moves 0, completed 0, hiccups 0, stepErrors 0, LaErrors 0, Underruns [0, 0, 0], CDDA state -1\n");
    t.push_str("=== Heat ===\nBed heaters 0 -1 -1 -1, chamber heaters -1 -1 -1 -1, ordering errs 0\n");
    for (i, name) in ["bed", "tool 0"].iter().enumerate() {
        let h = &m.heaters[i];
        t.push_str(&format!(
            "Heater {i} ({name}): {}, set-point {:.1}, standby {:.1}, current {:.1}\n",
            if h.on { "active" } else { "off" },
            h.active,
            h.standby,
            m.current(i, now)
        ));
    }
    t.push_str("=== GCodes ===\nSegments left: 0\nMovement lock held by null\n");
    for input in [
        "HTTP",
        "Telnet",
        "File",
        "USB",
        "Aux",
        "Trigger",
        "Queue",
        "LCD",
        "SBC",
        "Daemon",
        "Autopause",
    ] {
        let state = if input == "HTTP" {
            "is doing \"M122\""
        } else {
            "is idle"
        };
        t.push_str(&format!("{input} {state} in state(s) 0\n"));
    }
    t.push_str(&format!(
        "Code queue is empty.\nJob: {}\n",
        match &m.job {
            Some(j) => format!(
                "{} at {} of {} bytes, {}",
                j.file,
                j.position(now, m.print_rate),
                j.size,
                m.status.name()
            ),
            None => "none".to_string(),
        }
    ));
    t.push_str("=== Filament sensors ===\nNo filament sensors configured\n=== Network ===\n");
    t.push_str("Slowest loop: 3.02ms; fastest: 0.00ms\nResponder states: HTTP(0) HTTP(0) HTTP(0) HTTP(0) FTP(0) Telnet(0)\n");
    t.push_str("HTTP sessions: see rr_connect\n= WiFi =\nInterface state: active\nModule is connected to access point\n");
    t.push_str("WiFi firmware version: netpool bridge (simulated)\nSocket states: see the module's pool report below\n");
    t.push_str("=== WiFi module ===\n");
    match module_report {
        Some(r) => t.push_str(r),
        None => t.push_str("The WiFi module sent no diagnostics report\n"),
    }
    t
}
