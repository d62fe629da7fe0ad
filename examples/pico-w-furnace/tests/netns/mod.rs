//! A network namespace with a TAP device in it, made by a test and removed when
//! dropped: the device's program runs in it (`ip netns exec`), and so do the clients
//! (threads that [`Netns::enter`] it, and programs started by [`Netns::command`]).
//! Nothing leaves the namespace: its only interfaces are `lo` and the TAP device.
//!
//! Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2 and `/dev/net/tun`. The
//! tests using it are `#[ignore]`d unless run with `--ignored`; run, they fail with a
//! message saying what is missing (and that it is a failure when `CI` is set).
//!
//! Shared by the pico-w-furnace and esp8266-bridge TAP tests (`#[path]`).

#![allow(dead_code)]

pub mod capture;
pub mod halfopen;
pub mod host;
pub mod nft;
#[path = "../common/output.rs"]
pub mod output;
pub mod poll;
pub mod syn;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// One TAP test at a time in a test binary: each holds this while it runs, so tests
/// of the same binary (run on parallel threads by default) do not load the machine,
/// and each other's measurements, at once.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A namespace `name` holding TAP device `tap`, with `host_ip/24` on the kernel's side.
pub struct Netns {
    pub name: String,
    pub tap: String,
    pub host_ip: &'static str,
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn missing(what: &str) -> ! {
    panic!(
        "TAP test cannot run: {what}.\n\
         It needs root (CAP_NET_ADMIN), iproute2 (`ip`) and /dev/net/tun, and creates a network \
         namespace with a TAP device. In CI (`.ci/run`, as root) these are installed; elsewhere \
         run it as root: sudo -E cargo test ... -- --ignored (see the example's README).{}",
        if std::env::var_os("CI").is_some() {
            " CI is set: this is a failure, not a skip."
        } else {
            ""
        }
    )
}

impl Netns {
    /// Create namespace `npt-<tag>-<pid>` with TAP device `tap0` (`host_ip/24`, up) and
    /// `lo` up. Fails the test, saying what is missing, when it cannot.
    pub fn create(tag: &str, host_ip: &'static str) -> Netns {
        if !Path::new("/dev/net/tun").exists() {
            missing("/dev/net/tun does not exist (no TUN/TAP support in this kernel or container)");
        }
        if Command::new("ip").arg("-V").output().is_err() {
            missing("the `ip` command (iproute2) is not installed (apt-get install iproute2)");
        }
        let name = format!("npt-{tag}-{}", std::process::id());
        let ns = Netns {
            name: name.clone(),
            tap: "tap0".into(),
            host_ip,
        };
        // A namespace left over from a killed run with the same pid: remove it first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        if let Err(e) = run(Command::new("ip").args(["netns", "add", &name])) {
            missing(&format!("cannot create a network namespace: {e}"));
        }
        let steps: [&[&str]; 4] = [
            &["tuntap", "add", "dev", "tap0", "mode", "tap"],
            &["addr", "add", &format!("{host_ip}/24"), "dev", "tap0"],
            &["link", "set", "tap0", "up"],
            &["link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = run(Command::new("ip").args(["-n", &name]).args(step)) {
                missing(&format!("cannot set up the TAP device: {e}"));
            }
        }
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Move the calling thread into the namespace; threads it spawns afterwards are in
    /// it too (sockets they open belong to the namespace).
    pub fn enter(&self) {
        let f = File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("open /run/netns/{}: {e}", self.name));
        // SAFETY: setns(2) with a valid namespace fd; it changes only this thread's
        // network namespace.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removes the TAP device with it.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}
