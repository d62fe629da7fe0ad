//! Start `furnace-sim` as a child process and talk HTTP to it over 127.0.0.1.
//! Every wait is bounded; the child is killed (by its own handle) when dropped.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use netpool_testkit::http::read_response_or_end;

mod output;
use output::Output;

/// A running `furnace-sim` and what it printed.
pub struct Sim {
    child: Child,
    out: Output,
    pub addr: SocketAddr,
}

impl Sim {
    /// Start the simulator on an ephemeral port with extra arguments.
    pub fn start(extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_furnace-sim"))
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start furnace-sim");
        let mut out = Output::capture(child.stdout.take().expect("piped stdout"));
        assert!(
            out.wait_for(Duration::from_secs(30), |_| true),
            "furnace-sim prints its address first"
        );
        let first = &out.log[0];
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Sim { child, out, addr }
    }

    /// Every line the simulator printed so far (that a wait has taken).
    pub fn output(&self) -> &[String] {
        &self.out.log
    }

    /// Collect output lines until `pred` matches one (true) or `timeout` passes (false).
    pub fn wait_for_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.out.wait_for(timeout, pred)
    }

    /// Wait (bounded) for the process to exit by itself; collect the rest of its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            self.out.drain();
            if let Ok(Some(status)) = self.child.try_wait() {
                self.out.drain_until_quiet(Duration::from_millis(200));
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// One HTTP exchange: status and body. `None` if the connection fails or ends
    /// before a whole response; a malformed response fails the test.
    pub fn request(&self, raw: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(raw.as_bytes()).ok()?;
        let response = read_response_or_end(&mut s, Duration::from_secs(10), false)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))?;
        Some((
            response.status,
            String::from_utf8_lossy(&response.body).into_owned(),
        ))
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: furnace\r\n\r\n"))
    }

    pub fn post_json(&self, path: &str, body: &str) -> Option<(u16, String)> {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: furnace\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// GET /api/state as JSON, retried (bounded) while the server is not up yet.
    pub fn state(&self) -> serde_json::Value {
        for _ in 0..100 {
            if let Some((200, body)) = self.get("/api/state") {
                return serde_json::from_str(&body).expect("state JSON");
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("no /api/state from {}", self.addr);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
