//! `furnace-sim`: the furnace controller on the host.
//!
//! The same control logic as the firmware ([`ControlLoop`]) drives a simulated furnace
//! ([`Furnace`]) in accelerated time, and the web UI ([`pico_w_furnace::web`]) is
//! served by netpool's sync `Pool` over OS sockets. Three threads stand in for the
//! firmware's tasks and share state only through [`Shared`]:
//!
//! - **control** (the firmware's control loop): MAX6675 frame → cycle → relays;
//! - **web** (the network task): netpool pool, one request per connection, handlers
//!   rendered from copies of the shared state; it never holds a lock across I/O;
//! - **wifi** (the CYW43 driver): publishes the link state; with `--link-flap-s N` it
//!   drops the link for N seconds every N seconds. While the link is down the web
//!   side closes its listener and its connections and waits; the control loop keeps
//!   cycling (its cycle count is printed).
//!
//! A fourth, the **watchdog**, checks that the control loop's cycle count keeps moving,
//! as the RP2040 watchdog fed by the control loop would.
//!
//! ```text
//! cargo run -p pico-w-furnace --bin furnace-sim -- --http 127.0.0.1:8080 --speed 60 --link-flap-s 20
//! ```

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use netpool::stack::std_net::StdStack;
use netpool::{
    nb, Config as PoolConfig, ConnError, ConnHandle, Duration, Instant, LinkState, ListenParams, Pool,
};
use pico_w_furnace::control::{Command, Config, Controller, Mode, Outputs, SETPOINT_MAX_C, SETPOINT_MIN_C};
use pico_w_furnace::cycle::{ControlLoop, CONTROL_PERIOD_MS};
use pico_w_furnace::history::History;
use pico_w_furnace::shared::Shared;
use pico_w_furnace::state::link_name;
use pico_w_furnace::thermal::{Furnace, FurnaceParams};
use pico_w_furnace::web::{self, Handled, Incomplete, View};

/// History: 240 samples, one every 10 s of simulated time (40 minutes).
const HISTORY_LEN: usize = 240;
const HISTORY_PERIOD_MS: u32 = 10_000;
/// Connection slots (and the HTTP listener's cap).
const SLOTS: usize = 4;
/// A request must be complete this long after the connection was accepted.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// A response must be written this long after the request was complete.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);

static SHARED: Shared<HISTORY_LEN> = Shared::new(HISTORY_PERIOD_MS);
static STOP: AtomicBool = AtomicBool::new(false);
static SERVED: AtomicU32 = AtomicU32::new(0);
static LINK_DROPS: AtomicU32 = AtomicU32::new(0);

const USAGE: &str = "\
furnace-sim: the Pico W furnace controller with a simulated furnace and its web UI

USAGE: furnace-sim [OPTIONS]

  --http ADDR            serve the UI here (default 127.0.0.1:8080; port 0 picks a free one)
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
    http: SocketAddr,
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
                    .map_err(|_| format!("--http: not an address: {value}"))?
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
    // Port 0: pick a free port now, so the listener can be reopened on the same port
    // after every link drop.
    let mut addr = args.http;
    if addr.port() == 0 {
        match TcpListener::bind(addr).and_then(|l| l.local_addr()) {
            Ok(a) => addr.set_port(a.port()),
            Err(e) => {
                eprintln!("furnace-sim: cannot bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
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
        thread::Builder::new()
            .name("web".into())
            .spawn(move || web_thread(addr, start)),
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
    let s = SHARED.snapshot();
    println!(
        "furnace-sim: done after {:.1} s: {} control cycles, {} requests served, {} link drops, mode {}",
        start.elapsed().as_secs_f64(),
        s.cycles,
        SERVED.load(Ordering::Acquire),
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

/// The WiFi driver: owns the link state and publishes it (the web side reads it; it
/// never opens a connection to find out).
fn wifi_thread(flap_s: Option<f64>) {
    SHARED.set_link(LinkState::Up);
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
        SHARED.set_link(if up { LinkState::Up } else { LinkState::Down });
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

enum Phase {
    /// Reading the request until this deadline.
    Reading { until: Instant },
    /// Writing the response until this deadline.
    Writing { until: Instant, sent: usize },
}

struct Conn {
    handle: ConnHandle,
    request: Vec<u8>,
    response: Vec<u8>,
    phase: Phase,
}

/// One pass over a connection. Returns whether it made progress, and whether it is done.
fn serve(
    pool: &mut Pool<StdStack, SLOTS, 1>,
    conn: &mut Conn,
    now: Instant,
    view_buf: &mut (History<HISTORY_LEN>, Vec<u8>),
) -> (bool, bool) {
    match conn.phase {
        Phase::Reading { until } => {
            let mut buf = [0u8; 1024];
            let room = web::REQUEST_BUF - conn.request.len();
            let incomplete = match pool.read(conn.handle, &mut buf[..room.min(1024)], now) {
                Ok(n) => {
                    conn.request.extend_from_slice(&buf[..n]);
                    (conn.request.len() >= web::REQUEST_BUF).then_some(Incomplete::TooLarge)
                }
                Err(nb::Error::WouldBlock) if now >= until => Some(Incomplete::TimedOut),
                Err(nb::Error::WouldBlock) => return (false, false),
                Err(nb::Error::Other(ConnError::PeerGone(_))) if !conn.request.is_empty() => {
                    Some(Incomplete::Truncated)
                }
                Err(nb::Error::Other(_)) => return (true, true),
            };
            // Render from copies: the shared state is locked only while copying.
            let (history, out) = view_buf;
            let snapshot = SHARED.snapshot();
            SHARED.copy_history(history);
            let view = View {
                snapshot: &snapshot,
                history,
            };
            let response = match web::handle(&conn.request, &view, out) {
                Handled::NeedMore => match incomplete {
                    None => return (true, false),
                    Some(why) => web::respond_incomplete(why, out),
                },
                Handled::Respond(r) => r,
            };
            if let Some(command) = response.command {
                SHARED.post(command);
            }
            // The peer's bytes, escaped: no terminal escape sequence reaches the log.
            let line = web::request_line(&conn.request);
            if response.status >= 400 || !line.starts_with(b"GET") {
                println!(
                    "[web] {} -> {} {:?}",
                    line.escape_ascii(),
                    response.status,
                    response.command
                );
            }
            SERVED.fetch_add(1, Ordering::AcqRel);
            conn.response.clear();
            conn.response.extend_from_slice(&out[..response.len]);
            conn.phase = Phase::Writing {
                until: now + RESPONSE_DEADLINE,
                sent: 0,
            };
            (true, response.len == 0)
        }
        Phase::Writing { until, sent } => match pool.write(conn.handle, &conn.response[sent..], true, now) {
            Ok(n) => {
                let sent = sent + n;
                conn.phase = Phase::Writing { until, sent };
                (true, sent >= conn.response.len())
            }
            Err(nb::Error::WouldBlock) => (false, now >= until),
            Err(nb::Error::Other(_)) => (true, true),
        },
    }
}

fn web_thread(addr: SocketAddr, start: StdInstant) {
    let ip: IpAddr = addr.ip();
    let config = PoolConfig::new().with_stall_grace(Duration::from_secs(5));
    let mut pool: Pool<StdStack, SLOTS, 1> = Pool::new(StdStack::with_bind_ip(ip), config);
    let mut conns: [Option<Conn>; SLOTS] = Default::default();
    let mut view_buf = (History::<HISTORY_LEN>::new(1), vec![0u8; web::RESPONSE_BUF]);
    let mut listening = false;
    let mut retry_listen_at = Instant::ZERO;
    while !STOP.load(Ordering::Acquire) {
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
        // The link as the driver reports it; the pool reads it from the stack.
        pool.stack_mut().set_link(SHARED.link());
        pool.poll(now);
        match (pool.link(), listening) {
            (LinkState::Down, true) => {
                pool.stop_listening(addr.port());
                let mut dropped = 0;
                for c in conns.iter_mut().filter_map(Option::take) {
                    let _ = pool.abort(c.handle, now);
                    dropped += 1;
                }
                listening = false;
                println!(
                    "[web] link down: listener closed, {dropped} connection(s) dropped; backing off (control at cycle {})",
                    SHARED.cycles()
                );
            }
            (LinkState::Up | LinkState::Unknown, false) if now >= retry_listen_at => {
                match pool.listen(addr.port(), ListenParams::new(SLOTS as u8)) {
                    Ok(_) => {
                        listening = true;
                        println!(
                            "[web] link up: listening on http://{addr}/ (control at cycle {})",
                            SHARED.cycles()
                        );
                    }
                    Err(e) => {
                        println!("[web] cannot listen on {addr}: {e}; retrying in 1 s");
                        retry_listen_at = now + Duration::from_secs(1);
                    }
                }
            }
            _ => {}
        }
        if !listening {
            // Link down: nothing to serve. Check the link again shortly.
            thread::sleep(StdDuration::from_millis(50));
            continue;
        }
        while let Some(new) = pool.accept_next() {
            if let Some(old) = conns[new.handle.slot()].take() {
                let _ = pool.abort(old.handle, now);
            }
            conns[new.handle.slot()] = Some(Conn {
                handle: new.handle,
                request: Vec::with_capacity(web::REQUEST_BUF),
                response: Vec::new(),
                phase: Phase::Reading {
                    until: now + REQUEST_DEADLINE,
                },
            });
        }
        let mut busy = false;
        for slot in conns.iter_mut() {
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            let (progress, done) = serve(&mut pool, conn, now, &mut view_buf);
            busy |= progress;
            if done {
                let _ = pool.close(conn.handle, now);
                *slot = None;
            }
        }
        if !busy {
            thread::sleep(StdDuration::from_millis(2));
        }
    }
}
