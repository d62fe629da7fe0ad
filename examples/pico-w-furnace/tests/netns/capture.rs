//! An optional packet capture for diagnosing a phase: with `TAP_CAPTURE=DIR` set,
//! tcpdump runs in the namespace on the TAP device for the phase and writes
//! `DIR/<name>.pcap` (headers only: 128 bytes a packet). Without it nothing runs.
//! Asked for and missing, it fails the test (apt-get install tcpdump).

use std::process::{Child, Stdio};
use std::time::Duration;

use super::Netns;

/// A running capture, stopped (by its handle) when dropped.
pub struct Capture {
    child: Option<Child>,
}

impl Capture {
    /// Start one when `TAP_CAPTURE` names a directory.
    pub fn start(ns: &Netns, name: &str) -> Capture {
        let Some(dir) = std::env::var_os("TAP_CAPTURE") else {
            return Capture { child: None };
        };
        std::fs::create_dir_all(&dir).expect("TAP_CAPTURE directory");
        let file = std::path::Path::new(&dir).join(format!("{name}.pcap"));
        let child = ns
            .command("tcpdump")
            .args(["-i", &ns.tap, "-U", "-s", "128", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("TAP_CAPTURE is set but tcpdump does not run (apt-get install tcpdump): {e}")
            });
        // Let it open the device before the phase starts.
        std::thread::sleep(Duration::from_millis(500));
        println!("capturing {} to {}", ns.tap, file.display());
        Capture { child: Some(child) }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: tcpdump flushes and closes the file (-U wrote each packet anyway).
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}
