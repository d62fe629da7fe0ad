//! The device program of a TAP test (`furnace-net-host`, `bridge-tap-host`), run in the
//! test's namespace: its stdout read line by line into a log, `report` lines asked for
//! on stdin, killed (by its handle) when dropped.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::output::Output;

/// A running device program and everything it printed so far.
pub struct Host {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    out: Output,
}

impl Host {
    /// Start `command` (built with [`Netns::command`](super::Netns::command)) and wait
    /// (at most 30 s) for a line containing `ready`.
    pub fn start(name: &'static str, mut command: Command, ready: &str) -> Host {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let out = Output::capture(child.stdout.take().expect("piped stdout"));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut host = Host {
            name,
            child,
            stdin,
            out,
        };
        assert!(
            host.wait_for(Duration::from_secs(30), |l| l.contains(ready)),
            "{name} never printed {ready:?}:\n{}",
            host.log().join("\n")
        );
        host
    }

    /// Every line read so far.
    pub fn log(&self) -> &[String] {
        &self.out.log
    }

    /// Collect output until a line matches (true) or `timeout` passes (false).
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.out.wait_for(timeout, pred)
    }

    /// Move everything printed so far into the log.
    pub fn drain(&mut self) {
        self.out.drain();
    }

    /// Fail the test, with the log, if the program has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.drain();
            panic!("{} exited ({status}):\n{}", self.name, self.log().join("\n"));
        }
    }

    /// The program's `report` line (asked for on stdin), parsed into key → value.
    pub fn report(&mut self) -> HashMap<String, String> {
        self.assert_alive();
        writeln!(self.stdin, "report").unwrap_or_else(|e| panic!("write to {}: {e}", self.name));
        self.stdin.flush().expect("flush");
        assert!(
            self.wait_for(Duration::from_secs(10), |l| l.starts_with("report ")),
            "{}: no report line",
            self.name
        );
        let line = self
            .log()
            .iter()
            .rev()
            .find(|l| l.starts_with("report "))
            .unwrap();
        line.split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number under `key` in a report.
pub fn num(r: &HashMap<String, String>, key: &str) -> u64 {
    r.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in report {r:?}"))
}
