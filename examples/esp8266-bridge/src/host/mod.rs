//! The host simulator behind `bridge-sim` (feature `host`).
//!
//! Two threads, like the two chips of a Duet WiFi board:
//!
//! - the **bridge** thread runs [`Bridge::service`] over netpool's OS-socket backend
//!   ([`StdStack`]) and the bridge's side of a [`VirtualBus`]; between passes it
//!   waits for the ready line (at most 2 ms). It plays the WiFi driver too: a mode
//!   change the SAM asks for completes at once (`connected`, link up).
//! - the **SAM** thread runs the simulated RepRapFirmware board ([`sam::Sam`]) on the
//!   SAM's side of the bus; it sees sockets only through SPI transactions.
//!
//! The module's diagnostics output (its UART, in the real board) is a channel from
//! the bridge thread to the SAM, carrying the pool report the bridge made.
//!
//! ```no_run
//! use esp8266_bridge::host::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).unwrap();
//! println!("serving on http://{}", sim.addr());
//! sim.stop();
//! ```

mod api;
pub mod bus;
pub mod card;
mod codes;
pub mod decode;
pub mod files;
pub mod gcode;
pub mod http;
mod m122;
pub mod model;
pub mod sam;
pub mod session;
mod shared;
mod startup;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::vec::Vec;

use netpool::stack::std_net::StdStack;
use netpool::LinkState;
use netpool::{Instant, Pool, Report};
use serde_json::{json, Value};

use self::bus::VirtualBus;
use self::sam::{Sam, SamConfig, SamShared};
use crate::bridge::{Bridge, BridgeStats, ModeRequest, SOCKETS};
use crate::protocol::{ip_to_wire, set_c_str, WiFiState};

/// Listener slots of the simulated bridge (HTTP, FTP, Telnet, FTP data).
pub const LISTENERS: usize = 4;

/// The bridge as the simulator builds it.
pub type SimBridge =
    Bridge<StdStack, bus::BusSpi, bus::BusCs, bus::BusReady, bus::BusRequest, LISTENERS, 256>;

/// What the module's UART carries to the SAM after `diagnostics`.
#[derive(Copy, Clone, Debug)]
pub struct DiagMessage {
    /// The pool report made when the command was served.
    pub report: Report<SOCKETS, LISTENERS>,
    /// The bridge's counters.
    pub bridge: BridgeStats,
}

/// The `/rr_diag` JSON of a diagnostics message.
pub fn diag_json(msg: &DiagMessage) -> Value {
    let r = &msg.report;
    let slots: Vec<Value> = r
        .slots
        .iter()
        .map(|s| {
            json!({
                "slot": s.slot,
                "state": s.state.name(),
                "local_port": s.local_port,
                "remote": s.remote.map(|a| a.to_string()),
                "protocol": s.protocol,
                "age_ms": s.age.as_millis(),
                "idle_ms": s.idle.as_millis(),
                "bytes_in": s.bytes_in,
                "bytes_out": s.bytes_out,
                "close_reason": s.close_reason.map(|c| c.to_string()),
            })
        })
        .collect();
    let listeners: Vec<Value> = r
        .listeners
        .iter()
        .flatten()
        .map(|l| json!({"port": l.port, "protocol": l.params.protocol, "max_conns": l.params.max_conns, "open": l.open}))
        .collect();
    let c = &r.counters;
    let b = &msg.bridge;
    json!({
        "free_slots": r.free_slots(),
        "slots": slots,
        "listeners": listeners,
        "counters": {
            "accepted": c.accepted, "rejected": c.rejected, "reaped": c.reaped,
            "pressure_reaped": c.pressure_reaped,
            "peer_closed": c.peer_closed, "aborted": c.aborted,
            "rejected_port_cap": c.rejected_port_cap, "rejected_pool_full": c.rejected_pool_full,
            "idle_closed": c.idle_closed, "connects": c.connects, "connect_failed": c.connect_failed,
            "exhausted": c.exhausted, "abandoned": c.abandoned, "accept_errors": c.accept_errors,
            "dropped_on_close": c.dropped_on_close, "in_use": c.in_use, "high_water": c.high_water,
        },
        "bridge": {
            "transactions": b.transactions, "request_pulses": b.request_pulses, "bus_errors": b.bus_errors,
            "bytes_from_sam": b.bytes_from_sam, "bytes_to_sam": b.bytes_to_sam,
            "bytes_dropped": b.bytes_dropped, "bad_format_version": b.bad_format_version,
            "bad_data_length": b.bad_data_length, "unknown_command": b.unknown_command,
            "bad_parameter": b.bad_parameter, "diagnostics": b.diagnostics, "listen_failed": b.listen_failed,
        },
    })
}

/// The diagnostics message as text, for `M122`'s WiFi module section.
pub fn diag_text(msg: &DiagMessage) -> String {
    use std::fmt::Write;
    let r = &msg.report;
    let mut t = String::new();
    let _ = writeln!(t, "Pool: {} of {} slots free", r.free_slots(), r.slots.len());
    for s in r.slots.iter() {
        let _ = writeln!(
            t,
            "Slot {}: {}, local port {}, remote {}, protocol {}, age {} ms, idle {} ms, in {} B, out {} B, last close {}",
            s.slot,
            s.state.name(),
            s.local_port,
            s.remote.map_or_else(|| "none".to_string(), |a| a.to_string()),
            s.protocol,
            s.age.as_millis(),
            s.idle.as_millis(),
            s.bytes_in,
            s.bytes_out,
            s.close_reason.map_or_else(|| "none".to_string(), |c| c.to_string()),
        );
    }
    for l in r.listeners.iter().flatten() {
        let _ = writeln!(
            t,
            "Listener: port {}, protocol {}, max connections {}, open {}",
            l.port, l.params.protocol, l.params.max_conns, l.open
        );
    }
    let c = &r.counters;
    let _ =
        writeln!(
        t,
        "Connections: accepted {}, rejected {} (port cap {}, pool full {}), reaped {} (under pressure {}), \
         peer closed {}, aborted {}, \
         idle closed {}, connects {}, connect failed {}, exhausted {}, abandoned {}, accept errors {}, \
         dropped on close {}, in use {}, high water {}",
        c.accepted,
        c.rejected,
        c.rejected_port_cap,
        c.rejected_pool_full,
        c.reaped,
        c.pressure_reaped,
        c.peer_closed,
        c.aborted,
        c.idle_closed, c.connects, c.connect_failed, c.exhausted, c.abandoned, c.accept_errors,
        c.dropped_on_close, c.in_use, c.high_water
    );
    let b = &msg.bridge;
    let _ = writeln!(
        t,
        "SPI: transactions {}, bus errors {}, request pulses {}, bytes from SAM {}, to SAM {}, dropped {}, \
         bad format version {}, bad data length {}, unknown command {}, bad parameter {}, diagnostics {}",
        b.transactions,
        b.bus_errors,
        b.request_pulses,
        b.bytes_from_sam,
        b.bytes_to_sam,
        b.bytes_dropped,
        b.bad_format_version,
        b.bad_data_length,
        b.unknown_command,
        b.bad_parameter,
        b.diagnostics
    );
    t
}

/// HTTP connections the simulated board serves at once unless told otherwise
/// (`--http-max-conns`): the SAM's HTTP cap.
pub const HTTP_MAX_CONNS: u16 = 4;

/// HTTP connections the board holds waiting for a turn, beyond the `max_conns` it
/// serves at once, unless told otherwise (`--http-queue`): every other socket of the
/// module, so that it asks the module for all 8 on the HTTP port. A connection the
/// module holds costs it the same served or waiting (one of its 8 slots, there
/// anyway); one it resets is a failed request for the browser. So the board lets
/// the ones beyond its turns wait — a poll takes milliseconds, a turn frees soon —
/// and the module resets only a 9th.
pub const fn default_http_queue(max_conns: u16) -> u16 {
    (SOCKETS as u16).saturating_sub(max_conns)
}

/// Settings of the simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address browsers connect to (the IP binds the listener; the port is the
    /// SAM's HTTP port).
    pub listen: SocketAddr,
    /// The pool's stall grace: a connection whose queued bytes make no progress for
    /// this long is reaped.
    pub stall_grace: Duration,
    /// HTTP connections the SAM serves at once (default [`HTTP_MAX_CONNS`]).
    pub http_max_conns: u16,
    /// HTTP connections the SAM holds waiting for a turn, beyond `http_max_conns`
    /// (it asks the module for `http_max_conns + http_queue` on the HTTP port; the
    /// module resets connections beyond that at once). Default
    /// [`default_http_queue`]: 4, so the two make all 8 of the module's sockets.
    pub http_queue: u16,
    /// A request head must be complete this long after the SAM first saw the
    /// connection, queue time included (408, or 503 from the queue).
    pub request_deadline: Duration,
    /// An upload body must move at least once per this long (408) ...
    pub body_stall: Duration,
    /// ... and average at least this many bytes/s after its first `body_stall` (408).
    pub min_body_rate: u32,
    /// Bytes the simulated SD card holds (an upload that does not fit gets 507).
    pub card_capacity: usize,
    /// How long the SAM waits for the module to be ready, and for a transfer, before
    /// it gives up on the command (100 ms, as the real SAM).
    pub spi_timeout: Duration,
    /// Print every SPI transaction.
    pub verbose: bool,
    /// Files on the SAM's SD card at start.
    pub files: Vec<(String, Vec<u8>)>,
    /// The machine password (`None`: none set, any password logs in).
    pub password: Option<String>,
    /// An HTTP session ends after this long without a request (RepRapFirmware: 8 s).
    pub session_timeout: Duration,
    /// Bytes of a G-code file a simulated print gets through per second.
    pub print_rate: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            stall_grace: Duration::from_secs(10),
            http_max_conns: HTTP_MAX_CONNS,
            http_queue: default_http_queue(HTTP_MAX_CONNS),
            request_deadline: Duration::from_secs(5),
            body_stall: Duration::from_secs(5),
            min_body_rate: 1024,
            card_capacity: 64 << 20,
            spi_timeout: SamConfig::default().spi_timeout,
            verbose: false,
            files: demo_files(),
            password: None,
            session_timeout: Duration::from_secs(8),
            print_rate: 1024,
        }
    }
}

/// A setting of [`SimConfig`] out of its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting (as its command-line flag).
    pub flag: &'static str,
    /// What it must be.
    pub rule: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}", self.flag, self.rule)
    }
}

impl std::error::Error for ConfigError {}

/// Shortest stall grace, request deadline and body stall accepted: below this a
/// request cannot cross the simulated SPI link reliably.
pub const MIN_DEADLINE: Duration = Duration::from_millis(100);
/// Longest of each (an hour).
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);

impl SimConfig {
    /// Check every setting; the first one out of range is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |flag, rule: String| Err(ConfigError { flag, rule });
        let range = || {
            std::format!(
                "must be within {} ..= {} ms",
                MIN_DEADLINE.as_millis(),
                MAX_DEADLINE.as_millis()
            )
        };
        for (flag, d) in [
            ("--stall-grace-ms", self.stall_grace),
            ("--request-deadline-ms", self.request_deadline),
            ("--body-stall-ms", self.body_stall),
            ("session_timeout", self.session_timeout),
        ] {
            if !(MIN_DEADLINE..=MAX_DEADLINE).contains(&d) {
                return err(flag, range());
            }
        }
        let slots = SOCKETS as u16;
        if !(1..=slots).contains(&self.http_max_conns) {
            return err(
                "--http-max-conns",
                std::format!("must be within 1 ..= {slots} (the module's sockets)"),
            );
        }
        if self.http_max_conns.saturating_add(self.http_queue) > slots {
            return err(
                "--http-queue",
                std::format!(
                    "plus --http-max-conns must be at most {slots} (the module's sockets); {} + {} is more",
                    self.http_max_conns,
                    self.http_queue
                ),
            );
        }
        if self.min_body_rate == 0 {
            return err(
                "--min-body-rate",
                "must be at least 1 byte/s (0 would let a trickle hold a slot)".to_string(),
            );
        }
        if self.print_rate == 0 {
            return err("print_rate", "must be at least 1 byte/s".to_string());
        }
        if !(1 << 20..=4 << 30).contains(&self.card_capacity) {
            return err("--card-mib", "must be within 1 ..= 4096".to_string());
        }
        Ok(())
    }
}

/// A few files so `rr_filelist` and `rr_download` have something to show.
pub fn demo_files() -> Vec<(String, Vec<u8>)> {
    std::vec![
        (
            "0:/sys/config.g".into(),
            b"; simulated configuration\nM550 P\"duet-sim\"\nM552 S1\n".to_vec()
        ),
        (
            "0:/gcodes/cube.gcode".into(),
            b"G28\nG1 X10 Y10 Z0.2 F3000\nG1 X20 E1\nM84\n".to_vec()
        ),
        ("0:/macros/hello.g".into(), b"M117 \"hello\"\n".to_vec()),
    ]
}

/// Most files [`www_files`] reads from a directory tree.
pub const MAX_WWW_FILES: usize = 2000;
/// Deepest directory level [`www_files`] descends to.
pub const MAX_WWW_DEPTH: usize = 8;

/// The files below `dir`, named for the card's web directory (`0:/www/…`), so
/// `GET /` serves a web app (e.g. Duet Web Control's unpacked release) from it. At
/// most [`MAX_WWW_FILES`] files, [`MAX_WWW_DEPTH`] levels; a name the card cannot
/// hold is an `InvalidData` error.
pub fn www_files(dir: &std::path::Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pending = std::vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((path, rel, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| io::Error::new(io::ErrorKind::InvalidData, std::format!("{n:?}: not UTF-8")))?;
            let rel = if rel.is_empty() {
                name
            } else {
                std::format!("{rel}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if depth + 1 >= MAX_WWW_DEPTH {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        std::format!("{rel}: nested too deep"),
                    ));
                }
                pending.push((entry.path(), rel, depth + 1));
            } else if kind.is_file() {
                let card_name =
                    card::normalise(&std::format!("{}/{rel}", files::WWW), false).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, std::format!("{rel}: {}", e.message()))
                    })?;
                if out.len() >= MAX_WWW_FILES {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "too many files"));
                }
                out.push((card_name, std::fs::read(entry.path())?));
            }
        }
    }
    Ok(out)
}

/// A running simulator. Dropping it stops it too.
pub struct Simulator {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<SamShared>,
    bus: Arc<VirtualBus>,
}

impl Simulator {
    /// Start the bridge and SAM threads and wait (up to 10 s) until the SAM listens.
    /// A setting out of range ([`SimConfig::validate`]) is an `InvalidInput` error.
    pub fn start(config: SimConfig) -> io::Result<Simulator> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let bus = VirtualBus::new(config.verbose);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(SamShared::default());
        let (uart_tx, uart_rx) = channel();

        let (spi, cs, ready, request) = bus.bridge_side();
        let stack = StdStack::with_bind_ip(config.listen.ip());
        let pool_config = crate::bridge::pool_config().with_stall_grace(netpool::Duration::from_millis(
            config.stall_grace.as_millis().min(u64::MAX as u128) as u64,
        ));
        let pool = Pool::new(stack, pool_config);
        let bridge: SimBridge = Bridge::new(pool, spi, cs, ready, request);
        let ip = match config.listen.ip() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
        };

        let mut threads = Vec::new();
        {
            let stop = stop.clone();
            let bus = bus.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("bridge".into())
                    .spawn(move || bridge_thread(bridge, &bus, &stop, uart_tx, ip))?,
            );
        }
        {
            let stop = stop.clone();
            let sam_config = SamConfig {
                http_port: config.listen.port(),
                http_max_conns: config.http_max_conns,
                http_queue: config.http_queue,
                request_deadline: config.request_deadline,
                body_stall: config.body_stall,
                min_body_rate: config.min_body_rate,
                card_capacity: config.card_capacity,
                max_upload: config.card_capacity,
                files: config.files.clone(),
                password: config.password.clone(),
                session_timeout: config.session_timeout,
                print_rate: config.print_rate,
                spi_timeout: config.spi_timeout,
                ..SamConfig::default()
            };
            let sam = Sam::new(bus.sam_side(), sam_config, shared.clone(), uart_rx);
            threads.push(
                std::thread::Builder::new()
                    .name("sam".into())
                    .spawn(move || sam.run(&stop))?,
            );
        }
        let sim = Simulator {
            addr: config.listen,
            stop,
            threads,
            shared,
            bus,
        };
        match sim.shared.wait_started(Duration::from_secs(10)) {
            Some(Ok(())) => Ok(sim),
            Some(Err(e)) => Err(io::Error::other(e)),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the simulated board did not start",
            )),
        }
    }

    /// Where browsers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulated board's counters, files and messages.
    pub fn board(&self) -> &SamShared {
        &self.shared
    }

    /// SPI transactions so far.
    pub fn transactions(&self) -> u64 {
        self.bus.transactions()
    }

    /// Stop both threads and wait for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Run until either thread ends (for the binary).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn bridge_thread(
    mut bridge: SimBridge,
    bus: &VirtualBus,
    stop: &AtomicBool,
    uart: Sender<DiagMessage>,
    ip: Ipv4Addr,
) {
    let epoch = std::time::Instant::now();
    let now = || Instant::from_millis(epoch.elapsed().as_millis() as u64);
    {
        let s = bridge.network_status_mut();
        s.mac_address = [0x02, 0x4E, 0x50, 0x00, 0x00, 0x01];
        s.flash_size = 4 << 20;
        s.free_heap = 40_000;
        s.vcc = 3300;
        s.rssi = -50;
        s.netmask = ip_to_wire(Ipv4Addr::new(255, 0, 0, 0));
        s.clock_reg = 0x2001;
    }
    bridge.pool_mut().stack_mut().set_link(LinkState::Down);
    // Out of reset (the boot ROM's edge), then initialised: two rising edges.
    bridge.start(now());
    bridge.start(now());
    while !stop.load(Ordering::Relaxed) {
        let pass = bridge.service(now());
        if let Some(mode) = bridge.take_mode_request() {
            // The "WiFi driver": every mode change succeeds at once.
            let (state, link) = match mode {
                ModeRequest::StartClient { ssid } => {
                    set_c_str(
                        &mut bridge.network_status_mut().ssid,
                        crate::protocol::c_str(&ssid),
                    );
                    (WiFiState::Connected, LinkState::Up)
                }
                ModeRequest::StartAccessPoint => (WiFiState::RunningAsAccessPoint, LinkState::Up),
                ModeRequest::Stop => (WiFiState::Idle, LinkState::Down),
            };
            let s = bridge.network_status_mut();
            s.ip_address = if link == LinkState::Up { ip_to_wire(ip) } else { 0 };
            s.using_dhcpc = 1;
            bridge.pool_mut().stack_mut().set_link(link);
            bridge.set_wifi_state(state);
        }
        if let Some(report) = bridge.take_diagnostics() {
            let _ = uart.send(DiagMessage {
                report,
                bridge: bridge.stats(),
            });
        }
        if pass.transfer.is_none() {
            bus.wait_ready(Duration::from_millis(2));
        }
    }
    // Close every connection and listener: nothing is left in the kernel.
    let _ = bridge.into_pool().into_stack(now());
}
