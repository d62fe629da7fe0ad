//! The churn benchmark: one long upload and seven status pollers against a server
//! with a pool of 8, in virtual time, on four server stacks:
//!
//! - `smoltcp`: netpool's smoltcp backend as firmware ships it (the ESP32-C3 image's 14
//!   sockets; closing sockets reclaimed on demand, listeners armed to the pool's room);
//! - `smoltcp_no_reclaim`: the same with `Reclaim::Never` (a closing socket holds its
//!   socket until smoltcp is done: 10 s of TIME-WAIT) — the backend before reclaiming;
//! - `lwip14`, `lwip2`: the test kit's emulation of lwIP's PCB allocator (10 PCBs,
//!   backlog 3) on the same backend: lwIP 1.4 (reclaim TIME-WAIT, else kill the
//!   longest-inactive connection) and lwIP 2 (reclaim closing PCBs, never kill).
//!
//! For each stack and three server policies in the same run — `netpool` (close at
//! once), `lingering` (hold the slot until the response is acknowledged or 4 s pass,
//! as the old bridge firmware did) and `lingering_rst_aware` (the same, letting go as
//! soon as the peer resets, what the old firmware's "PCB lost" check did) — it finds
//! the highest poll rate at which the upload survives and at least 99.9 % of the polls
//! succeed.
//!
//! ```text
//! cargo run --release -p netpool-testkit --example churn            # table
//! cargo run --release -p netpool-testkit --example churn -- --json  # one JSON object
//! cargo run --release -p netpool-testkit --example churn -- --seed 7 --loss-ppm 10000  # 1 % loss
//! ```
//!
//! Same arguments, same numbers: everything random comes from the seed.

use netpool::stack::smoltcp::{Reclaim, SmoltcpStack};
use netpool::{Config, Duration};
use netpool_testkit::sim::{
    run, smoltcp_stack, test_net, ChurnArgs, ChurnClients, ClosePolicy, Exhaustion, Fabric, LinkConfig,
    Participant, PollStats, SimServer, SimStack,
};
use smoltcp::time::Instant as T;
use smoltcp::wire::IpEndpoint;

const SLOTS: usize = 8;
const POLLERS: u8 = 7;
/// The emulated lwIP's listen backlog.
const LWIP_BACKLOG: usize = 3;
/// The emulated lwIP's PCBs (the ESP8266 bridge's `MEMP_NUM_TCP_PCB`).
const LWIP_PCBS: usize = 10;
/// The ESP32-C3 image's TCP sockets.
const C3_SOCKETS: usize = 14;
const UPLOAD_BYTES_PER_S: u64 = 100_000;
const SUCCESS_PPM: u64 = 999_000;

/// A server stack of the benchmark.
#[derive(Clone, Copy, Debug)]
enum ServerStack {
    Smoltcp,
    SmoltcpNoReclaim,
    Lwip14,
    Lwip2,
}

impl ServerStack {
    const ALL: [ServerStack; 4] = [
        ServerStack::Smoltcp,
        ServerStack::SmoltcpNoReclaim,
        ServerStack::Lwip14,
        ServerStack::Lwip2,
    ];

    fn name(self) -> &'static str {
        match self {
            ServerStack::Smoltcp => "smoltcp",
            ServerStack::SmoltcpNoReclaim => "smoltcp_no_reclaim",
            ServerStack::Lwip14 => "lwip14",
            ServerStack::Lwip2 => "lwip2",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ServerStack::Smoltcp => "SmoltcpStack as shipped, 14 sockets (the C3 image), no emulation",
            ServerStack::SmoltcpNoReclaim => "SmoltcpStack, 14 sockets, Reclaim::Never",
            ServerStack::Lwip14 => "emulated lwIP 1.4, 10 PCBs, backlog 3",
            ServerStack::Lwip2 => "emulated lwIP 2, 10 PCBs, backlog 3",
        }
    }

    fn sockets(self) -> usize {
        match self {
            ServerStack::Smoltcp | ServerStack::SmoltcpNoReclaim => C3_SOCKETS,
            ServerStack::Lwip14 | ServerStack::Lwip2 => LWIP_PCBS,
        }
    }
}

/// One run at one poll period.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    /// Each poller starts a poll every `period_ms`...
    period_ms: u64,
    /// ... so this many polls a second are offered in all...
    offered: f64,
    /// ... and this many complete (one poll in flight per poller caps it).
    achieved: f64,
    polls: PollStats,
    upload_alive: bool,
    upload_sent: u64,
    killed_live: u64,
    reclaimed: u64,
    rejected: u32,
}

impl Outcome {
    fn completed(&self) -> u64 {
        self.polls.ok + self.polls.failed()
    }
    fn success_ppm(&self) -> u64 {
        (self.polls.ok * 1_000_000)
            .checked_div(self.completed())
            .unwrap_or(0)
    }
    fn sustained(&self) -> bool {
        self.upload_alive
            && self.completed() > 0
            && self.success_ppm() >= SUCCESS_PPM
            && self.achieved >= 0.9 * self.offered
    }
}

fn simulate(args: &ChurnArgs, stack: ServerStack, policy: ClosePolicy, period_ms: u64) -> Outcome {
    let link = LinkConfig {
        delay_ms: 2,
        jitter_ms: 2,
        loss_ppm: args.loss_ppm,
        mtu: 1500,
    };
    let fabric = Fabric::new(args.seed, link);
    let ip = test_net(1);
    let seed = args.seed ^ 1;
    let config = Config::new();
    let lwip = |exhaustion| {
        SimServer::<LWIP_PCBS, SLOTS>::new(
            &fabric,
            ip,
            80,
            SLOTS as u8,
            seed,
            LWIP_BACKLOG,
            exhaustion,
            policy,
            config,
        )
    };
    match stack {
        ServerStack::Smoltcp => {
            let srv = SimServer::<C3_SOCKETS, SLOTS, SmoltcpStack<'static, C3_SOCKETS>>::shipped(
                &fabric,
                ip,
                80,
                SLOTS as u8,
                seed,
                policy,
                config,
            );
            drive(args, &fabric, srv, period_ms)
        }
        ServerStack::SmoltcpNoReclaim => {
            let (s, device) = smoltcp_stack::<C3_SOCKETS>(&fabric, ip, seed);
            let s = s.with_reclaim(Reclaim::Never);
            let srv =
                SimServer::<C3_SOCKETS, SLOTS, _>::with_stack(s, device, 80, SLOTS as u8, policy, config);
            drive(args, &fabric, srv, period_ms)
        }
        ServerStack::Lwip14 => drive(args, &fabric, lwip(Exhaustion::Lwip14), period_ms),
        ServerStack::Lwip2 => drive(args, &fabric, lwip(Exhaustion::Lwip2), period_ms),
    }
}

/// Run the churn clients against `srv` at `period_ms` for the run's duration.
fn drive<const M: usize, S: SimStack>(
    args: &ChurnArgs,
    fabric: &Fabric,
    mut srv: SimServer<M, SLOTS, S>,
    period_ms: u64,
) -> Outcome {
    let endpoint = IpEndpoint::new(test_net(1).into(), 80);
    let mut clients = ChurnClients::new(
        fabric,
        endpoint,
        POLLERS,
        period_ms,
        UPLOAD_BYTES_PER_S,
        args.seed,
    );
    let end = T::from_secs(args.duration_s);
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv];
        all.extend(clients.participants());
        run(fabric, &mut all, T::ZERO, end, 50);
    }
    let polls = clients.poll_stats();
    let upload = &clients.upload;
    Outcome {
        period_ms,
        offered: f64::from(POLLERS) * 1000.0 / period_ms as f64,
        // Polls start at 0.5 s.
        achieved: (polls.ok + polls.failed()) as f64 / (args.duration_s as f64 - 0.5),
        polls,
        upload_alive: upload.alive(),
        upload_sent: upload.sent(),
        killed_live: srv.pool.stack().killed_live(),
        reclaimed: u64::from(srv.pool.stack().pcb_counters().reclaimed()),
        rejected: srv.pool.counters().rejected,
    }
}

/// The shortest poll period (so the highest offered rate) in `1..=longest` ms that is
/// sustained, by binary search (longer periods are assumed easier), with the outcome
/// there and at the next shorter period (just above the highest rate).
fn max_rate(
    args: &ChurnArgs,
    stack: ServerStack,
    policy: ClosePolicy,
    longest: u64,
) -> (Option<Outcome>, Option<Outcome>) {
    let (mut lo, mut hi) = (0u64, longest + 1); // lo not sustained (or 0), hi sustained (or none)
    let (mut best, mut first_fail) = (None, None);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let o = simulate(args, stack, policy, mid);
        if o.sustained() {
            hi = mid;
            best = Some(o);
        } else {
            lo = mid;
            first_fail = Some(o);
        }
    }
    (best, first_fail.filter(|o| o.period_ms + 1 == hi))
}

fn json_outcome(o: &Option<Outcome>) -> String {
    match o {
        None => "null".into(),
        Some(o) => format!(
            "{{\"rate\":{:.1},\"achieved_per_s\":{:.1},\"period_ms\":{},\"polls_ok\":{},\"polls_failed\":{},\"success_ppm\":{},\"upload_survived\":{},\"upload_bytes\":{},\"killed_live\":{},\"reclaimed\":{},\"rejected\":{}}}",
            o.offered,
            o.achieved,
            o.period_ms,
            o.polls.ok,
            o.polls.failed(),
            o.success_ppm(),
            o.upload_alive,
            o.upload_sent,
            o.killed_live,
            o.reclaimed,
            o.rejected
        ),
    }
}

fn main() {
    let args = match ChurnArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("churn: {e}");
            std::process::exit(2);
        }
    };
    let linger = |free_when_dead| ClosePolicy::Lingering {
        max: Duration::from_secs(4),
        free_when_dead,
    };
    let policies = [
        ("netpool", ClosePolicy::Immediate),
        ("lingering", linger(false)),
        ("lingering_rst_aware", linger(true)),
    ];
    type Row = (&'static str, (Option<Outcome>, Option<Outcome>));
    let results: Vec<(ServerStack, Vec<Row>)> = ServerStack::ALL
        .iter()
        .map(|&stack| {
            let rows = policies
                .iter()
                // Periods up to 7 s: down to 1 poll a second in all.
                .map(|(name, p)| (*name, max_rate(&args, stack, *p, u64::from(POLLERS) * 1000)))
                .collect();
            (stack, rows)
        })
        .collect();
    if args.json {
        let stacks: Vec<String> = results
            .iter()
            .map(|(stack, rows)| {
                let fields: Vec<String> = rows
                    .iter()
                    .map(|(name, (best, fail))| {
                        format!(
                            "\"{name}\":{{\"max_rate\":{:.1},\"upload_survived\":{},\"at_max\":{},\"above_max\":{}}}",
                            best.map_or(0.0, |o| o.offered),
                            best.is_some_and(|o| o.upload_alive),
                            json_outcome(best),
                            json_outcome(fail)
                        )
                    })
                    .collect();
                format!(
                    "\"{}\":{{\"sockets\":{},{}}}",
                    stack.name(),
                    stack.sockets(),
                    fields.join(",")
                )
            })
            .collect();
        println!(
            "{{\"stacks\":{{{}}},\"slots\":{SLOTS},\"seed\":{},\"loss_ppm\":{},\"duration_s\":{}}}",
            stacks.join(","),
            args.seed,
            args.loss_ppm,
            args.duration_s,
        );
        return;
    }
    println!(
        "churn: 1 upload ({} kB/s) + {POLLERS} pollers, pool of {SLOTS}, loss {} ppm, {} s virtual, seed {}",
        UPLOAD_BYTES_PER_S / 1000,
        args.loss_ppm,
        args.duration_s,
        args.seed
    );
    for (stack, rows) in &results {
        println!();
        println!("{}: {}", stack.name(), stack.describe());
        println!(
            "{:<20} {:>10} {:>9} {:>10} {:>8} {:>8} {:>7} {:>7}  just above the max",
            "policy", "max conn/s", "done/s", "polls ok", "failed", "upload", "killed", "reclaim"
        );
        for (name, (best, fail)) in rows {
            let row = |o: &Outcome| {
                format!(
                    "{:>9.1} {:>10} {:>8} {:>8} {:>7} {:>7}",
                    o.achieved,
                    o.polls.ok,
                    o.polls.failed(),
                    if o.upload_alive { "alive" } else { "KILLED" },
                    o.killed_live,
                    o.reclaimed
                )
            };
            let above = fail.map_or("-".into(), |o| {
                format!(
                    "{:.1} conn/s offered, {:.1}/s done: {:.2} % ok (refused {}, reset {}, short {}, timeout {}), upload {}",
                    o.offered,
                    o.achieved,
                    o.success_ppm() as f64 / 10_000.0,
                    o.polls.refused,
                    o.polls.reset,
                    o.polls.short,
                    o.polls.timeout,
                    if o.upload_alive { "alive" } else { "killed" }
                )
            });
            match best {
                Some(o) => println!("{name:<20} {:>10.1} {}  {above}", o.offered, row(o)),
                None => println!("{name:<20} {:>10} (no rate sustained)  {above}", 0),
            }
        }
    }
}
