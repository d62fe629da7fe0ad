//! `bridge-tap-host`: the bridge's network path as the ESP32-C3 image builds it —
//! smoltcp, netpool's `SmoltcpStack` (14 TCP sockets of 2048 + 2048 bytes, 30 s socket
//! timeout, its defaults: closing sockets reclaimed on demand, listeners armed to the
//! pool's room) and a `Pool` of 8 slots, 4 listeners and
//! 512 coalescing bytes under the [`Bridge`] service loop — on a Linux TAP device
//! (smoltcp's `TunTapInterface`) instead of esp-radio's WiFi interface, with the
//! simulated RepRapFirmware board ([`Sam`]) on the other end of a virtual SPI bus.
//!
//! Only the board differs from the C3 image: a TAP device and a static address
//! instead of WiFi and DHCP, the virtual SPI bus instead of SPI2, and the
//! `networkStartClient` the board sends completing at once.
//!
//! The service loop is the C3 image's pass: poll the interface, `Bridge::service`,
//! handle a mode request, forward diagnostics (to the simulated board's UART, which
//! serves them as `/rr_diag`), then wait up to 1 ms for a frame on the TAP device.
//!
//! Diagnostics: each `report` line on stdin prints one line `report key=value ...`
//! (the board's counters, the CRC-32 of the file named by `--report-file` if the
//! board has it, SPI transactions, service passes and the longest gap between two).
//!
//! ```text
//! ip tuntap add dev tap-bridge mode tap && ip addr add 10.78.0.1/24 dev tap-bridge && ip link set tap-bridge up
//! bridge-tap-host --tap tap-bridge --address 10.78.0.2/24     # then http://10.78.0.2/
//! ```
//! (Root or CAP_NET_ADMIN; the test `tap_bridge` does this inside a network namespace.)

use std::io::{BufRead, Write as _};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant as StdInstant;

use esp8266_bridge::host::bus::{BusCs, BusReady, BusRequest, BusSpi, VirtualBus};
use esp8266_bridge::host::sam::{Sam, SamConfig, SamShared};
use esp8266_bridge::host::{default_http_queue, DiagMessage, HTTP_MAX_CONNS};
use esp8266_bridge::protocol::{ip_to_wire, set_c_str, WiFiState};
use esp8266_bridge::{pool_config, Bridge, ModeRequest};
use netpool::stack::smoltcp::SmoltcpStack;
use netpool::stack::PcbCounters;
use netpool::LinkState;
use netpool::{Duration, Instant, Pool};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

// The ESP32-C3 image's configuration (boards/esp32c3/src/main.rs).
/// TCP sockets: the pool's 8 connections, the listening sockets the pool's room on each
/// port asks for, and closing connections held until a socket is needed (reclaimed
/// then, TIME-WAIT first).
const TCP_SOCKETS: usize = 14;
/// Receive and transmit buffer of each TCP socket.
const TCP_BUFFER: usize = 2048;
/// Listener slots of the pool: HTTP, FTP, Telnet, FTP data.
const LISTENERS: usize = 4;
/// Coalescing bytes per pool slot.
const COALESCE: usize = 512;
/// A peer that vanishes mid-handshake or mid-close does not hold a socket longer.
const SOCKET_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(30);
/// The pool's stall grace (the C3 image's; `--stall-grace-ms` changes it).
const STALL_GRACE_MS: u64 = 10_000;

type Stack = SmoltcpStack<'static, TCP_SOCKETS>;
type TapBridge = Bridge<Stack, BusSpi, BusCs, BusReady, BusRequest, LISTENERS, COALESCE>;

const USAGE: &str = "\
bridge-tap-host: the ESP32-C3 bridge's network path (smoltcp + netpool) on a TAP device,
with the simulated RepRapFirmware board behind it

USAGE: bridge-tap-host --tap NAME [OPTIONS]

  --tap NAME            an existing TAP device (ip tuntap add dev NAME mode tap)
  --address CIDR        the bridge's address (default 10.78.0.2/24)
  --stall-grace-ms N    the pool's stall grace (default 10000, the C3 image's)
  --http-max-conns N    HTTP connections the board serves at once (1..=8, default 4)
  --http-queue N        more it holds waiting for a turn (max-conns + queue <= 8;
                        default 8 - max-conns: the board asks for all 8 sockets)
  --file NAME=LEN:SEED  a file of LEN deterministic bytes on the board's SD card
  --report-file NAME    `report` includes this file's CRC-32
  -h, --help            this text

stdin: `report` prints one `report key=value ...` line.
";

struct Args {
    tap: String,
    address: Ipv4Cidr,
    stall_grace_ms: u64,
    http_max_conns: u16,
    http_queue: Option<u16>,
    files: Vec<(String, Vec<u8>)>,
    report_file: Option<String>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        tap: String::new(),
        address: Ipv4Cidr::new(Ipv4Addr::new(10, 78, 0, 2), 24),
        stall_grace_ms: STALL_GRACE_MS,
        http_max_conns: HTTP_MAX_CONNS,
        http_queue: None,
        files: Vec::new(),
        report_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: bad value {value}");
        match flag.as_str() {
            "--tap" => a.tap = value.clone(),
            "--address" => {
                let (ip, prefix) = value.split_once('/').ok_or_else(bad)?;
                let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
                let prefix: u8 = prefix
                    .parse()
                    .ok()
                    .filter(|p| (1..=32).contains(p))
                    .ok_or_else(bad)?;
                a.address = Ipv4Cidr::new(ip, prefix);
            }
            "--stall-grace-ms" => {
                a.stall_grace_ms = value
                    .parse()
                    .ok()
                    .filter(|ms| (100..=600_000).contains(ms))
                    .ok_or_else(bad)?
            }
            "--http-max-conns" => {
                a.http_max_conns = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=8).contains(n))
                    .ok_or_else(bad)?
            }
            "--http-queue" => a.http_queue = Some(value.parse().ok().filter(|n| *n <= 7).ok_or_else(bad)?),
            "--file" => {
                let (name, spec) = value.split_once('=').ok_or_else(bad)?;
                let (len, seed) = spec.split_once(':').ok_or_else(bad)?;
                let len: usize = len.parse().ok().filter(|l| *l <= 64 << 20).ok_or_else(bad)?;
                let seed: u32 = seed.parse().map_err(|_| bad())?;
                a.files.push((name.to_string(), pattern(len, seed)));
            }
            "--report-file" => a.report_file = Some(value.clone()),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.tap.is_empty() {
        return Err("--tap is required".into());
    }
    if a.http_max_conns + a.http_queue.unwrap_or(0) > 8 {
        return Err("--http-queue plus --http-max-conns must be at most 8 (the pool's slots)".into());
    }
    Ok(Some(a))
}

/// Deterministic bytes (xorshift32), the same as the tests' `pattern`.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn crc32(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data)
}

/// Service passes, and the longest time between two (milliseconds).
static PASSES: AtomicU64 = AtomicU64::new(0);
static MAX_PASS_GAP_MS: AtomicU64 = AtomicU64::new(0);
/// The most sockets seen closing (FIN handshake or TIME-WAIT) at once.
static MAX_CLOSING: AtomicU64 = AtomicU64::new(0);
/// The stack's own counters (reclaims by state, passes that left a listener short
/// with none listening), as of the last pass.
static PCBS: Mutex<Option<PcbCounters>> = Mutex::new(None);

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bridge-tap-host: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut phy = match TunTapInterface::new(&args.tap, Medium::Ethernet) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "bridge-tap-host: cannot open TAP device {}: {e} (needs /dev/net/tun and CAP_NET_ADMIN)",
                args.tap
            );
            return ExitCode::FAILURE;
        }
    };

    let epoch = StdInstant::now();
    let now = move || Instant::from_millis(epoch.elapsed().as_millis() as u64);
    let smol_now = move || smoltcp::time::Instant::from_millis(epoch.elapsed().as_millis() as i64);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);

    // --- the C3 image's smoltcp interface and sockets, over the TAP device.
    let mac = [0x02, 0x4E, 0x50, 0x00, 0x00, 0x02];
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    iface_config.random_seed = seed;
    let mut iface = Interface::new(iface_config, &mut phy, smol_now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::Ipv4(args.address));
    });
    let storage: &'static mut [SocketStorage<'static>] = (0..TCP_SOCKETS + 1)
        .map(|_| SocketStorage::EMPTY)
        .collect::<Vec<_>>()
        .leak();
    let mut sockets = SocketSet::new(storage);
    for _ in 0..TCP_SOCKETS {
        let rx = tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER].leak());
        let tx = tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER].leak());
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_timeout(Some(SOCKET_TIMEOUT));
        sockets.add(socket);
    }
    // As the C3 image: closing sockets reclaimed on demand, listeners armed to the
    // pool's room on their port and, as an accept queue, to the 8 connections the
    // board may ask for on one port (those beyond the room wait for a slot).
    let stack = SmoltcpStack::new(iface, sockets)
        .with_port_seed(seed as u32)
        .with_accept_queue(8);
    let pool: Pool<Stack, 8, LISTENERS, COALESCE> = Pool::new(
        stack,
        pool_config().with_stall_grace(Duration::from_millis(args.stall_grace_ms)),
    );

    // --- the simulated board on the other end of the SPI bus.
    let bus = VirtualBus::new(false);
    let (spi, cs, ready, request) = bus.bridge_side();
    let mut bridge: TapBridge = Bridge::new(pool, spi, cs, ready, request);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(SamShared::default());
    let (uart_tx, uart_rx) = channel();
    let sam = Sam::new(
        bus.sam_side(),
        SamConfig {
            http_port: 80,
            http_max_conns: args.http_max_conns,
            http_queue: args.http_queue.unwrap_or(default_http_queue(args.http_max_conns)),
            files: args.files,
            ..SamConfig::default()
        },
        shared.clone(),
        uart_rx,
    );
    let spawned = thread::Builder::new().name("sam".into()).spawn({
        let stop = stop.clone();
        move || sam.run(&stop)
    });
    if let Err(e) = spawned {
        eprintln!("bridge-tap-host: cannot start the board's thread: {e}");
        return ExitCode::FAILURE;
    }
    let report_file = args.report_file;
    let reporter = {
        let shared = shared.clone();
        let bus = bus.clone();
        let bridge_stats = Arc::new(Mutex::new(bridge.stats()));
        let stats = bridge_stats.clone();
        (
            thread::Builder::new()
                .name("stdin".into())
                .spawn(move || diagnostics(&shared, &bus, &stats, report_file.as_deref())),
            bridge_stats,
        )
    };
    let (Ok(_), bridge_stats) = reporter else {
        eprintln!("bridge-tap-host: cannot start the diagnostics thread");
        return ExitCode::FAILURE;
    };

    {
        let s = bridge.network_status_mut();
        s.mac_address = mac;
        s.flash_size = 4 << 20;
        set_c_str(&mut s.version_text, b"netpool-tap-0.1");
    }
    bridge.pool_mut().stack_mut().set_link(LinkState::Down);
    bridge.start(now());
    bridge.start(now());
    println!(
        "bridge-tap-host: bridge on http://{}/ via {} (smoltcp, pool of 8)",
        args.address.address(),
        args.tap
    );
    let _ = std::io::stdout().flush();

    let mut started = false;
    let mut last_pass = StdInstant::now();
    let fd = phy.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let pass = service(&mut bridge, &mut phy, smol_now(), now(), &uart_tx, args.address);
        let gap = last_pass.elapsed().as_millis() as u64;
        last_pass = StdInstant::now();
        MAX_PASS_GAP_MS.fetch_max(gap, Ordering::Relaxed);
        let stack = bridge.pool().stack();
        MAX_CLOSING.fetch_max(stack.counts().closing as u64, Ordering::Relaxed);
        *PCBS.lock().unwrap_or_else(|e| e.into_inner()) = Some(stack.pcb_counters());
        if PASSES.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
            *bridge_stats.lock().unwrap_or_else(|e| e.into_inner()) = bridge.stats();
        }
        if !started {
            if let Some(r) = shared.started.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                started = true;
                match r {
                    Ok(()) => println!("bridge-tap-host: the board is listening"),
                    Err(e) => {
                        println!("bridge-tap-host: the board failed to start: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                let _ = std::io::stdout().flush();
            }
        }
        if !pass {
            // Nothing to do: wait for a frame (at most 1 ms, as the C3 image's pass).
            let delay = bridge
                .pool_mut()
                .stack_mut()
                .poll_delay(smol_now())
                .map_or(smoltcp::time::Duration::from_millis(1), |d| {
                    d.min(smoltcp::time::Duration::from_millis(1))
                });
            let _ = smoltcp::phy::wait(fd, Some(delay));
        }
    }
    ExitCode::SUCCESS
}

/// One pass of the C3 image's loop. Returns whether an SPI transfer happened.
fn service(
    bridge: &mut TapBridge,
    phy: &mut TunTapInterface,
    smol_now: smoltcp::time::Instant,
    now: Instant,
    uart: &Sender<DiagMessage>,
    address: Ipv4Cidr,
) -> bool {
    bridge.pool_mut().stack_mut().poll(smol_now, phy);
    let pass = bridge.service(now);
    if let Some(mode) = bridge.take_mode_request() {
        // The "WiFi driver": joining (or starting an access point) succeeds at once
        // with the static address; stopping takes the link down.
        let (state, link) = match mode {
            ModeRequest::StartClient { ssid } => {
                set_c_str(
                    &mut bridge.network_status_mut().ssid,
                    esp8266_bridge::protocol::c_str(&ssid),
                );
                (WiFiState::Connected, LinkState::Up)
            }
            ModeRequest::StartAccessPoint => (WiFiState::RunningAsAccessPoint, LinkState::Up),
            ModeRequest::Stop => (WiFiState::Idle, LinkState::Down),
        };
        let up = link == LinkState::Up;
        let s = bridge.network_status_mut();
        s.ip_address = if up { ip_to_wire(address.address()) } else { 0 };
        s.netmask = if up { ip_to_wire(address.netmask()) } else { 0 };
        bridge.pool_mut().stack_mut().set_link(link);
        bridge.set_wifi_state(state);
        println!("bridge-tap-host: WiFi state {state:?}");
    }
    if let Some(report) = bridge.take_diagnostics() {
        let _ = uart.send(DiagMessage {
            report,
            bridge: bridge.stats(),
        });
    }
    pass.transfer.is_some()
}

fn diagnostics(
    shared: &SamShared,
    bus: &VirtualBus,
    bridge: &Mutex<esp8266_bridge::BridgeStats>,
    file: Option<&str>,
) {
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim() != "report" {
            continue;
        }
        let s = &shared.stats;
        let b = *bridge.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("report");
        let mut kv = |k: &str, v: u64| out.push_str(&format!(" {k}={v}"));
        kv("connections", s.connections.load(Ordering::Relaxed));
        kv("responses", s.responses.load(Ordering::Relaxed));
        kv("bad_requests", s.bad_requests.load(Ordering::Relaxed));
        kv("uploads_ok", s.uploads_ok.load(Ordering::Relaxed));
        kv("uploads_bad_crc", s.uploads_bad_crc.load(Ordering::Relaxed));
        kv("aborted_seen", s.aborted_seen.load(Ordering::Relaxed));
        kv("vanished", s.vanished.load(Ordering::Relaxed));
        kv("link_errors", s.link_errors.load(Ordering::Relaxed));
        kv("release_retries", s.release_retries.load(Ordering::Relaxed));
        kv("transactions", bus.transactions());
        kv("bad_format_version", b.bad_format_version.into());
        kv("bus_errors", b.bus_errors.into());
        kv("passes", PASSES.load(Ordering::Relaxed));
        kv("max_pass_gap_ms", MAX_PASS_GAP_MS.load(Ordering::Relaxed));
        kv("max_sockets_closing", MAX_CLOSING.load(Ordering::Relaxed));
        let pcbs = PCBS.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or_default();
        kv("unarmed_passes", pcbs.unarmed_passes.into());
        kv("reclaimed", pcbs.reclaimed().into());
        kv("reclaimed_time_wait", pcbs.reclaimed_time_wait.into());
        kv("reclaimed_last_ack", pcbs.reclaimed_last_ack.into());
        kv("reclaimed_closing", pcbs.reclaimed_closing.into());
        kv("reclaimed_fin_wait", pcbs.reclaimed_fin_wait.into());
        kv("half_open_expired", pcbs.half_open_expired.into());
        kv("half_open_evicted", pcbs.half_open_evicted.into());
        kv("accept_queue_expired", pcbs.accept_queue_expired.into());
        if let Some(name) = file {
            let files = shared.files.lock().unwrap_or_else(|e| e.into_inner());
            match files.get(name) {
                Some(f) => out.push_str(&format!(" file_crc32={:08x} file_len={}", crc32(f), f.len())),
                None => out.push_str(" file_crc32=none"),
            }
        }
        println!("{out}");
        let _ = std::io::stdout().flush();
    }
}
