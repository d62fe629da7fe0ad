//! A child program's stdout, read line by line on a thread of its own, so a test can
//! wait for a line with a deadline instead of blocking on the pipe.
//!
//! Shared by the simulator tests (`common::Sim`) and the TAP tests' device programs
//! (`netns::host::Host`, which the esp8266-bridge tests include by `#[path]`).

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Lines printed so far (`log`) and the ones still to come.
pub struct Output {
    lines: Receiver<String>,
    /// Every line taken so far, in order.
    pub log: Vec<String>,
}

impl Output {
    /// Read `stdout` (a child's piped stdout) line by line until it closes.
    pub fn capture(stdout: impl Read + Send + 'static) -> Output {
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Output {
            lines,
            log: Vec::new(),
        }
    }

    /// Take lines until one matches (true) or `timeout` passes (false).
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.log.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Take every line already printed.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// Take lines until none comes for `quiet` (after the program exited: the rest).
    pub fn drain_until_quiet(&mut self, quiet: Duration) {
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            self.log.push(line);
        }
    }
}
