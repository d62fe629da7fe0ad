//! `furnace-net-host`: the Pico W firmware's web server — [`pico_w_furnace::net`], the
//! module the firmware runs — over embassy-net on a Linux TAP device, with embassy's
//! std executor and time driver. Only the board differs: a TAP device and a static
//! address instead of the CYW43 and DHCP.
//!
//! Two executors, as on the chip:
//!
//! - **control** — its own thread and executor (the firmware's is an interrupt
//!   executor that preempts the network side; a thread is the host's equivalent):
//!   the firmware's control cycle (`ControlLoop::cycle`) every 500 ms against a
//!   simulated furnace ([`Furnace`]), and after each completed cycle a *feed* of the
//!   watchdog model. It meets the network side only in [`Shared`] and the critical
//!   sections both take, as on the chip.
//! - **network** — the main thread's executor: embassy-net's runner over the TAP
//!   device, [`net::link_and_reaper`], [`WEB_TASKS`] tasks running
//!   [`net::web_server`] and the closer task running [`net::closer_task`].
//!
//! The **watchdog model** (a plain thread) checks every 50 ms that the control loop
//! fed it within the firmware's watchdog timeout (four control periods); if not, it
//! prints why and exits with status 3, as the RP2040 would reset.
//!
//! Diagnostics: each line `report` on stdin prints one line
//! `report key=value ...` (the pool's counters and slots, what the web tasks did,
//! each task's phase, the closer's counters `closer_*`, the leased acceptor's
//! `lease_*` (half-open connections reset at the deadline or evicted), the control
//! loop's cycles and feeds). Request lines are logged
//! at debug level (`web[N]: GET / -> 200 (6400 B)`).
//!
//! ```text
//! ip tuntap add dev tap-furnace mode tap && ip addr add 10.77.0.1/24 dev tap-furnace && ip link set tap-furnace up
//! furnace-net-host --tap tap-furnace --address 10.77.0.2/24     # then http://10.77.0.2/
//! ```
//! (Root or CAP_NET_ADMIN; the test `tap_net` does this inside a network namespace.)

use std::io::{BufRead, Write as _};
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, Stack, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Ticker};
use netpool::asynch::Timer as _;
use pico_w_furnace::control::{Config, Controller, Outputs};
use pico_w_furnace::cycle::{ControlLoop, CONTROL_PERIOD_MS};
use pico_w_furnace::net::embassy::{self as board, Acceptor, Resources, Socket, TcpBuffers};
use pico_w_furnace::net::{self, EmbassyTimer, WebBacklog, WebCloser, WEB_TASKS};
use pico_w_furnace::shared::Shared;
use pico_w_furnace::thermal::{Furnace, FurnaceParams};
use static_cell::{ConstStaticCell, StaticCell};

/// The firmware's history: 120 samples, one every 10 s.
const HISTORY_LEN: usize = 120;
const HISTORY_PERIOD_MS: u32 = 10_000;
/// The firmware's watchdog timeout: four control periods.
const WATCHDOG_TIMEOUT_MS: u64 = 4 * CONTROL_PERIOD_MS;

static SHARED: Shared<HISTORY_LEN> = Shared::new(HISTORY_PERIOD_MS);

const USAGE: &str = "\
furnace-net-host: the Pico W furnace's web server (embassy-net, netpool) on a TAP device

USAGE: furnace-net-host --tap NAME [--address A.B.C.D/N]

  --tap NAME          an existing TAP device (ip tuntap add dev NAME mode tap)
  --address CIDR      the controller's address (default 10.77.0.2/24)
  -h, --help          this text

stdin: `report` prints one `report key=value ...` line.
";

fn parse_args() -> Result<Option<(String, Ipv4Cidr)>, String> {
    let mut tap = None;
    let mut address = Ipv4Cidr::new(Ipv4Addr::new(10, 77, 0, 2), 24);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tap" => tap = Some(value),
            "--address" => {
                let (ip, prefix) = value
                    .split_once('/')
                    .ok_or_else(|| format!("--address: not A.B.C.D/N: {value}"))?;
                let ip: Ipv4Addr = ip.parse().map_err(|_| format!("--address: bad address {ip}"))?;
                let prefix: u8 = prefix
                    .parse()
                    .ok()
                    .filter(|p| (1..=32).contains(p))
                    .ok_or_else(|| format!("--address: bad prefix {prefix}"))?;
                address = Ipv4Cidr::new(ip, prefix);
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let tap = tap.ok_or("--tap is required")?;
    Ok(Some((tap, address)))
}

fn main() -> ExitCode {
    let (tap, address) = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("furnace-net-host: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    log::set_logger(&LOGGER).expect("the only logger");
    log::set_max_level(log::LevelFilter::Debug);

    let device = match TunTapDevice::new(&tap) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "furnace-net-host: cannot open TAP device {tap}: {e} (needs /dev/net/tun and CAP_NET_ADMIN)"
            );
            return ExitCode::FAILURE;
        }
    };
    println!(
        "furnace-net-host: web UI on http://{}/ via {tap}",
        address.address()
    );

    let spawned = thread::Builder::new()
        .name("control".into())
        .spawn(|| {
            static CONTROL: StaticCell<Executor> = StaticCell::new();
            CONTROL
                .init(Executor::new())
                .run(|spawner| spawner.spawn(control_task().expect("one control task")))
        })
        .and_then(|_| thread::Builder::new().name("watchdog".into()).spawn(watchdog))
        .and_then(|_| thread::Builder::new().name("stdin".into()).spawn(diagnostics));
    if let Err(e) = spawned {
        eprintln!("furnace-net-host: cannot start threads: {e}");
        return ExitCode::FAILURE;
    }

    static NETWORK: StaticCell<Executor> = StaticCell::new();
    NETWORK
        .init(Executor::new())
        .run(|spawner| spawner.spawn(net_main(spawner, device, address).expect("one net_main")))
}

// ------------------------------------------------------------------- network side

#[embassy_executor::task]
async fn stack_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn link_task(stack: Stack<'static>) -> ! {
    net::link_and_reaper(stack, &SHARED).await
}

#[embassy_executor::task]
async fn closer_task(closer: &'static WebCloser<Socket<'static>>) -> ! {
    net::closer_task(closer).await
}

/// The accept backlog the web tasks take their connections from, on the leased
/// acceptor ([`board::backlog_task`]).
#[embassy_executor::task]
async fn backlog_task(backlog: &'static WebBacklog<Socket<'static>>, acceptor: &'static Acceptor) -> ! {
    board::backlog_task(backlog, acceptor).await
}

#[embassy_executor::task(pool_size = WEB_TASKS)]
async fn web_task(
    id: usize,
    stack: Stack<'static>,
    backlog: &'static WebBacklog<Socket<'static>>,
    closer: &'static WebCloser<Socket<'static>>,
) -> ! {
    net::web_server(id, stack, backlog, closer, &SHARED).await
}

/// The board bring-up, host flavour: the TAP device with a static address instead of
/// CYW43 + DHCP; then the same tasks as the firmware.
#[embassy_executor::task]
async fn net_main(spawner: Spawner, device: TunTapDevice, address: Ipv4Cidr) {
    static RESOURCES: StaticCell<Resources> = StaticCell::new();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address,
        gateway: None,
        dns_servers: Default::default(),
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let (stack, runner) = embassy_net::new(device, config, RESOURCES.init(Resources::new()), seed);
    spawner.spawn(stack_task(runner).expect("one stack task"));
    spawner.spawn(link_task(stack).expect("one link task"));

    // As on the chip: the acceptor (netpool's `LeasedTcp`: the sockets over these
    // buffers) and the closer (not `Sync`: see `WebCloser`) in `StaticCell`s, so the
    // sockets and the closer holding them are `'static`.
    static BUFFERS: ConstStaticCell<TcpBuffers> = ConstStaticCell::new(TcpBuffers::new());
    static ACCEPTOR: StaticCell<Acceptor> = StaticCell::new();
    static CLOSER: StaticCell<WebCloser<Socket<'static>>> = StaticCell::new();
    static BACKLOG: StaticCell<WebBacklog<Socket<'static>>> = StaticCell::new();
    let acceptor: &'static Acceptor = ACCEPTOR.init(board::acceptor(stack, BUFFERS.take()));
    let closer: &'static WebCloser<Socket<'static>> = CLOSER.init(net::closer());
    let backlog: &'static WebBacklog<Socket<'static>> = BACKLOG.init(net::backlog());
    spawner.spawn(closer_task(closer).expect("one closer task"));
    spawner.spawn(backlog_task(backlog, acceptor).expect("one backlog task"));
    for id in 0..WEB_TASKS {
        spawner.spawn(web_task(id, stack, backlog, closer).expect("WEB_TASKS web tasks"));
    }
}

// ------------------------------------------------------------------- control side

/// Watchdog feeds so far, and when the last one was (milliseconds since start).
static FEEDS: AtomicU32 = AtomicU32::new(0);
static LAST_FEED_MS: AtomicU64 = AtomicU64::new(0);
/// The longest time between two feeds seen by the watchdog model.
static MAX_FEED_GAP_MS: AtomicU64 = AtomicU64::new(0);
static START: Mutex<Option<StdInstant>> = Mutex::new(None);

fn since_start_ms() -> u64 {
    let mut start = START.lock().unwrap_or_else(|e| e.into_inner());
    start.get_or_insert_with(StdInstant::now).elapsed().as_millis() as u64
}

/// The firmware's control task, with a simulated furnace for the MAX6675 and the
/// watchdog model for the RP2040's: read, cycle, drive the relays, feed.
#[embassy_executor::task]
async fn control_task() -> ! {
    let mut furnace = Furnace::new(FurnaceParams::DEFAULT, 30e6);
    let mut control = ControlLoop::new(Controller::new(Config::DEFAULT), &SHARED);
    let mut out = Outputs::SAFE;
    let period_s = CONTROL_PERIOD_MS as f32 / 1000.0;
    let mut ticker = Ticker::every(Duration::from_millis(CONTROL_PERIOD_MS));
    LAST_FEED_MS.store(since_start_ms(), Ordering::Release);
    loop {
        ticker.next().await;
        furnace.step(period_s, out.element_on, out.supply_enabled);
        out = control.cycle(EmbassyTimer.now().as_millis(), furnace.max6675_frame());
        // The cycle is complete: only now is the watchdog fed.
        let now = since_start_ms();
        let last = LAST_FEED_MS.swap(now, Ordering::AcqRel);
        MAX_FEED_GAP_MS.fetch_max(now.saturating_sub(last), Ordering::AcqRel);
        FEEDS.fetch_add(1, Ordering::AcqRel);
    }
}

/// The RP2040 watchdog, modelled: no feed for the firmware's timeout ends the process.
fn watchdog() {
    static FIRED: AtomicBool = AtomicBool::new(false);
    loop {
        thread::sleep(StdDuration::from_millis(50));
        let gap = since_start_ms().saturating_sub(LAST_FEED_MS.load(Ordering::Acquire));
        if gap > WATCHDOG_TIMEOUT_MS && !FIRED.swap(true, Ordering::AcqRel) {
            println!(
                "watchdog: no control cycle for {gap} ms (timeout {WATCHDOG_TIMEOUT_MS} ms): the board would reset now"
            );
            let _ = std::io::stdout().flush();
            std::process::exit(3);
        }
    }
}

// ------------------------------------------------------------------- diagnostics

fn diagnostics() {
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim() == "report" {
            println!("{}", report());
            let _ = std::io::stdout().flush();
        }
    }
}

/// `report key=value ...`: everything the test checks, read without stopping anything.
fn report() -> String {
    use std::fmt::Write as _;
    let timer = EmbassyTimer;
    let pool = net::POOL.report(timer.now());
    let c = pool.counters;
    let w = net::stats();
    let closer = net::closer_stats();
    let backlog = net::POOL.backlog_counters();
    let lease = board::lease_stats();
    let mut s = String::from("report");
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(s, " {k}={v}");
    };
    kv("free_slots", &pool.free_slots());
    let slots: Vec<&str> = pool.slots.iter().map(|s| s.state.name()).collect();
    kv("slots", &slots.join(","));
    for (k, v) in [
        ("accepted", c.accepted),
        ("rejected", c.rejected),
        ("reaped", c.reaped),
        ("idle_closed", c.idle_closed),
        ("aborted", c.aborted),
        ("peer_closed", c.peer_closed),
        ("accept_errors", c.accept_errors),
        ("in_use", c.in_use),
        ("high_water", c.high_water),
        ("responded_ok", w.responded_ok),
        ("responded_client_error", w.responded_client_error),
        ("responded_server_error", w.responded_server_error),
        ("request_timed_out", w.request_timed_out),
        ("request_too_large", w.request_too_large),
        ("request_truncated", w.request_truncated),
        ("read_failed", w.read_failed),
        ("empty_response", w.empty_response),
        ("written", w.written),
        ("write_failed", w.write_failed),
        ("write_timed_out", w.write_timed_out),
        ("accept_failed", w.accept_failed),
        ("closer_handed", closer.handed),
        ("closer_waited", closer.waited),
        ("closer_finished", closer.finished),
        ("closer_reset", closer.reset),
        ("closer_overflow", closer.overflow),
        ("closer_closing", closer.closing),
        ("closer_high_water", closer.high_water),
        ("backlog_parked", backlog.parked),
        ("backlog_served", backlog.served),
        ("backlog_refused", backlog.refused),
        ("backlog_expired", backlog.expired),
        ("backlog_high_water", backlog.high_water),
        ("lease_accepted", lease.accepted),
        ("lease_half_open_expired", lease.half_open_expired),
        ("lease_half_open_evicted", lease.half_open_evicted),
        ("lease_short_of_sockets", lease.short_of_sockets),
        ("cycles", SHARED.cycles()),
        ("feeds", FEEDS.load(Ordering::Acquire)),
    ] {
        kv(k, &v);
    }
    kv("max_feed_gap_ms", &MAX_FEED_GAP_MS.load(Ordering::Acquire));
    let now = timer.now();
    let tasks: Vec<String> = net::tasks()
        .iter()
        .map(|t| {
            format!(
                "{}:{}:{}",
                t.phase.name(),
                now.saturating_since(t.since).as_millis(),
                t.connections
            )
        })
        .collect();
    kv("tasks", &tasks.join(","));
    kv("link", &pico_w_furnace::state::link_name(SHARED.link()));
    s
}

// ------------------------------------------------------------------- log

/// `log` to stdout: this crate's debug lines (the request log) and everyone's info.
struct Stdout;

static LOGGER: Stdout = Stdout;

impl log::Log for Stdout {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info || m.target().starts_with("pico_w_furnace")
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            println!("[{}] {}", r.level(), r.args());
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}
