//! `furnace-sim`: the furnace controller on the host.
//!
//! The same control logic as the firmware ([`ControlLoop`]) drives a simulated furnace
//! ([`Furnace`]) in accelerated time, and the UI is served by the firmware's own web
//! server, [`pico_w_furnace::net`] — netpool's `AsyncPool`, the accept `Backlog` and
//! the background `Closer`, the same tasks as on the Pico W — over the host's TCP
//! (edge-nal-std sockets, [`host_net`]) on embassy's std executor. Threads stand in
//! for the firmware's tasks and share state only through [`Shared`]:
//!
//! - **control** (the firmware's control loop): MAX6675 frame → cycle → relays;
//! - **web** (the firmware's network executor): [`net::WEB_TASKS`] web tasks, the
//!   backlog's task, the closer's task and the link/reaper task of
//!   [`pico_w_furnace::net`]; they render from copies of the shared state and never
//!   hold a lock across I/O;
//! - **wifi** (the CYW43 driver): owns the link state ([`host_net::DRIVER_LINK`]);
//!   with `--link-flap-s N` it drops the link for N seconds every N seconds. While
//!   the link is down the web tasks wait for it and new connections are reset; the
//!   control loop keeps cycling (its cycle count is printed).
//!
//! A fourth, the **watchdog**, checks that the control loop's cycle count keeps moving,
//! as the RP2040 watchdog fed by the control loop would.
//!
//! ```text
//! cargo run -p pico-w-furnace --bin furnace-sim -- --http 127.0.0.1:8080 --speed 60 --link-flap-s 20
//! ```

use std::io::Write as _;
use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embassy_executor::{Executor, Spawner};
use pico_w_furnace::control::{Command, Config, Controller, Mode, Outputs, SETPOINT_MAX_C, SETPOINT_MIN_C};
use pico_w_furnace::cycle::{ControlLoop, CONTROL_PERIOD_MS};
use pico_w_furnace::net::{self, WebBacklog, WebCloser, WEB_TASKS};
use pico_w_furnace::shared::Shared;
use pico_w_furnace::state::link_name;
use pico_w_furnace::thermal::{Furnace, FurnaceParams};
use static_cell::StaticCell;

mod host_net;
use host_net::{Acceptor, SimInterface, Socket, DRIVER_LINK, REFUSED_WHILE_DOWN};

/// History: 240 samples, one every 10 s of simulated time (40 minutes).
const HISTORY_LEN: usize = 240;
const HISTORY_PERIOD_MS: u32 = 10_000;

static SHARED: Shared<HISTORY_LEN> = Shared::new(HISTORY_PERIOD_MS);
static STOP: AtomicBool = AtomicBool::new(false);
static LINK_DROPS: AtomicU32 = AtomicU32::new(0);

const USAGE: &str = "\
furnace-sim: the Pico W furnace controller with a simulated furnace and its web UI

USAGE: furnace-sim [OPTIONS]

  --http ADDR            serve the UI here, IPv4 as the firmware (default 127.0.0.1:8080;
                         port 0 picks a free one)
  --speed N              simulated seconds per real second (default 1; 0.1 ..= 10000)
  --link-flap-s N        drop the WiFi link for N s every N s (real time; default: never)
  --duration-s N         stop after N real seconds (default: run until killed)
  --setpoint C           initial setpoint in °C (default 250)
  --fuel-mj N            wood in the firebox at start, MJ (default 30; ~2 h at 3.5 kW)
  --refuel-at-s S        add --fuel-mj more at simulated second S
  --runaway-at-s S       at simulated second S, a runaway (stuck damper) adds 20 kW ...
  --runaway-for-s D      ... for D simulated seconds (default 1800; it trips after ~20 min)
  --fault-at-s S         at simulated second S the thermocouple opens ...
  --fault-for-s D        ... for D simulated seconds (default 120)
  --print-every-s N      control status line every N real seconds (default 1)
  -h, --help             this text
";

#[derive(Clone, Debug)]
struct Args {
    http: SocketAddrV4,
    speed: f64,
    link_flap_s: Option<f64>,
    duration_s: Option<f64>,
    setpoint: Option<i32>,
    fuel_mj: f32,
    refuel_at_s: Option<u64>,
    runaway_at_s: Option<u64>,
    runaway_for_s: u64,
    fault_at_s: Option<u64>,
    fault_for_s: u64,
    print_every_s: f64,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        http: "127.0.0.1:8080".parse().expect("literal address"),
        speed: 1.0,
        link_flap_s: None,
        duration_s: None,
        setpoint: None,
        fuel_mj: 30.0,
        refuel_at_s: None,
        runaway_at_s: None,
        runaway_for_s: 1800,
        fault_at_s: None,
        fault_for_s: 120,
        print_every_s: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        match flag.as_str() {
            "--http" => {
                a.http = value
                    .parse()
                    .map_err(|_| format!("--http: not an IPv4 address and port: {value}"))?
            }
            "--speed" => a.speed = num(&flag, &value)?,
            "--link-flap-s" => a.link_flap_s = Some(num(&flag, &value)?),
            "--duration-s" => a.duration_s = Some(num(&flag, &value)?),
            "--setpoint" => a.setpoint = Some(num(&flag, &value)?),
            "--fuel-mj" => a.fuel_mj = num(&flag, &value)?,
            "--refuel-at-s" => a.refuel_at_s = Some(num(&flag, &value)?),
            "--runaway-at-s" => a.runaway_at_s = Some(num(&flag, &value)?),
            "--runaway-for-s" => a.runaway_for_s = num(&flag, &value)?,
            "--fault-at-s" => a.fault_at_s = Some(num(&flag, &value)?),
            "--fault-for-s" => a.fault_for_s = num(&flag, &value)?,
            "--print-every-s" => a.print_every_s = num(&flag, &value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !(0.1..=10_000.0).contains(&a.speed) {
        return Err("--speed must be within 0.1 ..= 10000".into());
    }
    if a.link_flap_s.is_some_and(|s| !(0.1..=86_400.0).contains(&s)) {
        return Err("--link-flap-s must be within 0.1 ..= 86400".into());
    }
    if a.duration_s.is_some_and(|s| !(0.0..=1e7).contains(&s)) {
        return Err("--duration-s must be within 0 ..= 1e7".into());
    }
    if a.setpoint
        .is_some_and(|c| !(SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&c))
    {
        return Err(format!(
            "--setpoint must be within {SETPOINT_MIN_C} ..= {SETPOINT_MAX_C}"
        ));
    }
    if !(0.0..=1e4).contains(&a.fuel_mj) {
        return Err("--fuel-mj must be within 0 ..= 10000".into());
    }
    if !(0.05..=3600.0).contains(&a.print_every_s) {
        return Err("--print-every-s must be within 0.05 ..= 3600".into());
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("furnace-sim: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The listening socket for the whole run (port 0: the kernel picks one).
    let listener = match TcpListener::bind(args.http) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("furnace-sim: cannot bind {}: {e}", args.http);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => {
            eprintln!("furnace-sim: no IPv4 address to serve on: {other:?}");
            return ExitCode::FAILURE;
        }
    };
    let acceptor = match Acceptor::new(listener) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("furnace-sim: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::set_logger(&LOGGER).expect("the only logger");
    log::set_max_level(log::LevelFilter::Debug);
    println!("furnace-sim: web UI on http://{addr}/ (speed {}x)", args.speed);
    let _ = std::io::stdout().flush();

    if let Some(c) = args.setpoint {
        SHARED.post(Command::SetSetpoint(c));
    }
    let start = StdInstant::now();
    let threads = [
        thread::Builder::new().name("control".into()).spawn({
            let args = args.clone();
            move || control_thread(&args, start)
        }),
        thread::Builder::new().name("wifi".into()).spawn({
            let flap = args.link_flap_s;
            move || wifi_thread(flap)
        }),
        thread::Builder::new().name("watchdog".into()).spawn({
            let speed = args.speed;
            move || watchdog_thread(speed)
        }),
    ];
    let handles: Vec<_> = match threads.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("furnace-sim: cannot start threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The network executor never returns: its thread ends with the process.
    let interface = SimInterface {
        address: *addr.ip(),
        port: addr.port(),
    };
    if let Err(e) = thread::Builder::new()
        .name("web".into())
        .spawn(move || web_thread(interface, acceptor))
    {
        eprintln!("furnace-sim: cannot start the web thread: {e}");
        return ExitCode::FAILURE;
    }
    match args.duration_s {
        Some(d) => sleep_unless_stopped(StdDuration::from_secs_f64(d)),
        None => loop {
            // Until killed (Ctrl-C).
            if STOP.load(Ordering::Acquire) {
                break;
            }
            thread::sleep(StdDuration::from_millis(200));
        },
    }
    STOP.store(true, Ordering::Release);
    let mut ok = true;
    for h in handles {
        ok &= h.join().is_ok();
    }
    print_counters();
    let s = SHARED.snapshot();
    let w = net::stats();
    println!(
        "furnace-sim: done after {:.1} s: {} control cycles, {} requests answered, {} refused while \
         the link was down, {} link drops, mode {}",
        start.elapsed().as_secs_f64(),
        s.cycles,
        w.responded_ok + w.responded_client_error + w.responded_server_error,
        REFUSED_WHILE_DOWN.load(Ordering::Acquire),
        LINK_DROPS.load(Ordering::Acquire),
        s.mode
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sleep `d` in short steps, returning early when asked to stop.
fn sleep_unless_stopped(d: StdDuration) {
    let end = StdInstant::now() + d;
    loop {
        let now = StdInstant::now();
        if now >= end || STOP.load(Ordering::Acquire) {
            return;
        }
        thread::sleep((end - now).min(StdDuration::from_millis(50)));
    }
}

fn hms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

// ------------------------------------------------------------------- control

fn control_thread(args: &Args, start: StdInstant) {
    let mut furnace = Furnace::new(FurnaceParams::DEFAULT, args.fuel_mj * 1e6);
    let mut control = ControlLoop::new(Controller::new(Config::DEFAULT), &SHARED);
    let mut out = Outputs::SAFE;
    let mut sim_ms = 0u64;
    let mut last_mode = Mode::Idle;
    let mut next_print = 0.0f64;
    let period_s = CONTROL_PERIOD_MS as f32 / 1000.0;
    while !STOP.load(Ordering::Acquire) {
        // Catch the simulated clock up with real time × speed (bounded per wake-up).
        let due_ms = (start.elapsed().as_secs_f64() * args.speed * 1000.0) as u64;
        for _ in 0..20_000 {
            if sim_ms + CONTROL_PERIOD_MS > due_ms {
                break;
            }
            sim_ms += CONTROL_PERIOD_MS;
            let sim_s = sim_ms / 1000;
            let within = |at: Option<u64>, len: u64| at.is_some_and(|at| (at..at + len).contains(&sim_s));
            furnace.runaway_w = if within(args.runaway_at_s, args.runaway_for_s) {
                20_000.0
            } else {
                0.0
            };
            furnace.thermocouple_open = within(args.fault_at_s, args.fault_for_s);
            if args.refuel_at_s.is_some_and(|at| at * 1000 == sim_ms) {
                furnace.add_fuel(args.fuel_mj * 1e6);
                println!("[control] sim {}: refuelled (+{} MJ)", hms(sim_ms), args.fuel_mj);
            }
            furnace.step(period_s, out.element_on, out.supply_enabled);
            out = control.cycle(sim_ms, furnace.max6675_frame());
            let mode = control.controller().mode();
            if mode != last_mode {
                let why = control.controller().bank_reason().map_or("", |r| r.name());
                println!(
                    "[control] sim {}: mode {last_mode} -> {mode} {why} (furnace {:.1} °C)",
                    hms(sim_ms),
                    furnace.temp_c
                );
                last_mode = mode;
            }
        }
        let real = start.elapsed().as_secs_f64();
        if real >= next_print {
            next_print = real + args.print_every_s;
            let s = SHARED.snapshot();
            let temp = s.temperature.map_or("--".to_string(), |t| t.to_string());
            println!(
                "[control] cycle {} · sim {} · {temp} °C · sp {} · element {} · cutoff {} · {} · link {}",
                s.cycles,
                hms(sim_ms),
                s.setpoint,
                if s.outputs.element_on { "on" } else { "off" },
                if s.overheat_latched {
                    "TRIPPED"
                } else if s.outputs.supply_enabled {
                    "closed"
                } else {
                    "open"
                },
                s.mode,
                link_name(s.link),
            );
        }
        // Sleep until the next cycle is due (at most 20 ms, so stopping is prompt).
        let next_real = (sim_ms + CONTROL_PERIOD_MS) as f64 / 1000.0 / args.speed;
        let wait = (next_real - start.elapsed().as_secs_f64()).clamp(0.0, 0.02);
        thread::sleep(StdDuration::from_secs_f64(wait.max(0.000_5)));
    }
}

// ------------------------------------------------------------------- wifi + watchdog

/// The WiFi driver: owns the link state (the web server reads it, and publishes it
/// to the control side; it never opens a connection to find out).
fn wifi_thread(flap_s: Option<f64>) {
    DRIVER_LINK.store(true, Ordering::Release);
    let Some(flap_s) = flap_s else {
        return;
    };
    let mut up = true;
    while !STOP.load(Ordering::Acquire) {
        sleep_unless_stopped(StdDuration::from_secs_f64(flap_s));
        if STOP.load(Ordering::Acquire) {
            break;
        }
        up = !up;
        if !up {
            LINK_DROPS.fetch_add(1, Ordering::AcqRel);
        }
        DRIVER_LINK.store(up, Ordering::Release);
        println!(
            "[wifi] link {} (simulated) at control cycle {}",
            if up { "up" } else { "down" },
            SHARED.cycles()
        );
    }
}

/// The watchdog: the control loop's cycle count must keep moving.
fn watchdog_thread(speed: f64) {
    // Four control periods of real time, but at least a second (scheduling noise).
    let timeout = StdDuration::from_secs_f64((4.0 * CONTROL_PERIOD_MS as f64 / 1000.0 / speed).max(1.0));
    let mut last = SHARED.cycles();
    while !STOP.load(Ordering::Acquire) {
        sleep_unless_stopped(timeout);
        let now = SHARED.cycles();
        if now == last && !STOP.load(Ordering::Acquire) {
            eprintln!(
                "[watchdog] the control loop stopped cycling (cycle {now}): a real board would reset now"
            );
            STOP.store(true, Ordering::Release);
            std::process::exit(3);
        }
        last = now;
    }
}

// ------------------------------------------------------------------- web

/// The network executor: the firmware's web tasks on the host's TCP.
fn web_thread(interface: SimInterface, acceptor: Acceptor) -> ! {
    static NETWORK: StaticCell<Executor> = StaticCell::new();
    NETWORK
        .init(Executor::new())
        .run(move |spawner| spawner.spawn(net_main(spawner, interface, acceptor).expect("one net_main")))
}

/// The closer and the backlog hold edge-nal-std sockets, which are `Send`: `static`s
/// here (the board's are in `StaticCell`s: see `net::WebCloser`).
static CLOSER: WebCloser<Socket> = net::closer();
static BACKLOG: WebBacklog<Socket> = net::backlog();

/// The board bring-up, host flavour: then the same tasks as the firmware.
#[embassy_executor::task]
async fn net_main(spawner: Spawner, interface: SimInterface, acceptor: Acceptor) {
    static INTERFACE: StaticCell<SimInterface> = StaticCell::new();
    static ACCEPTOR: StaticCell<Acceptor> = StaticCell::new();
    let interface: &'static SimInterface = INTERFACE.init(interface);
    let acceptor: &'static Acceptor = ACCEPTOR.init(acceptor);
    spawner.spawn(link_task(interface).expect("one link task"));
    spawner.spawn(closer_task().expect("one closer task"));
    spawner.spawn(backlog_task(acceptor).expect("one backlog task"));
    for id in 0..WEB_TASKS {
        spawner.spawn(web_task(id, interface).expect("WEB_TASKS web tasks"));
    }
}

#[embassy_executor::task]
async fn link_task(interface: &'static SimInterface) -> ! {
    net::link_and_reaper(interface, &SHARED).await
}

#[embassy_executor::task]
async fn closer_task() -> ! {
    net::closer_task(&CLOSER).await
}

#[embassy_executor::task]
async fn backlog_task(acceptor: &'static Acceptor) -> ! {
    net::backlog_task(&BACKLOG, acceptor).await
}

#[embassy_executor::task(pool_size = WEB_TASKS)]
async fn web_task(id: usize, interface: &'static SimInterface) -> ! {
    net::web_server(id, interface, &BACKLOG, &CLOSER, &SHARED).await
}

/// `[web] counters ...`: the pool's, the web tasks', the closer's and the backlog's
/// counters (what `furnace-net-host` reports on `report`).
fn print_counters() {
    let c = net::POOL.counters();
    let w = net::stats();
    let k = net::closer_stats();
    let b = net::POOL.backlog_counters();
    println!(
        "[web] counters: accepted {} rejected {} reaped {} aborted {}; responded {} ok, {} 4xx \
         ({} timed out), {} 5xx; read failed {}, write failed {}; closer handed {} finished {} \
         reset {} overflow {} (waited {}, high water {}); backlog parked {} served {} refused {} expired {} high water {}",
        c.accepted,
        c.rejected,
        c.reaped,
        c.aborted,
        w.responded_ok,
        w.responded_client_error,
        w.request_timed_out,
        w.responded_server_error,
        w.read_failed,
        w.write_failed,
        k.handed,
        k.finished,
        k.reset,
        k.overflow,
        k.waited,
        k.high_water,
        b.parked,
        b.served,
        b.refused,
        b.expired,
        b.high_water,
    );
}

// ------------------------------------------------------------------- log

/// `log` to stdout: the web server's lines as `[web] ...` (its request log is at
/// debug level; request lines are escaped), everyone else's from info up.
struct Stdout;

static LOGGER: Stdout = Stdout;

impl log::Log for Stdout {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info || m.target().starts_with("pico_w_furnace")
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if r.target().starts_with("pico_w_furnace") {
            println!("[web] {}", r.args());
        } else {
            println!("[{}] {}: {}", r.level(), r.target(), r.args());
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}
