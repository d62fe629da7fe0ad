//! The churn benchmark on real lwIP: one long upload and seven status pollers against
//! a netpool server with a pool of 8 on lwIP 2.2 compiled with the ESP8266 bridge's
//! configuration (10 TCP PCBs, backlog 8, 7300-byte buffers), in virtual time.
//!
//! For each server policy in the same run — `netpool` (close at once), `lingering`
//! (hold the slot until the response is acknowledged or 4 s pass, as the old bridge
//! firmware did), `lingering_rst_aware` (lingers, but lets go as soon as the peer
//! resets), and `old_firmware` / `old_firmware_rst_aware` (no netpool: the old bridge's
//! logic on the raw stack, accepting only into a free slot so that extra connections
//! wait in lwIP's backlog) — it finds the highest offered poll rate at which the upload
//! survives, at least 99.9 % of the polls succeed and the pollers complete at least 90 %
//! of the offered rate, runs the incident's 12 conn/s, and reports what lwIP did at the
//! first rate above the maximum: PCB pool exhausted (`tcp_alloc` failing), SYNs dropped
//! for a full backlog or for want of a PCB, TIME-WAIT / closing PCBs reclaimed, live
//! connections killed by `tcp_kill_prio`.
//!
//! Two lwIP priority set-ups, both on the same unmodified lwIP code:
//!
//! * `lwip22`: stock lwIP 2.2 behaviour. Every connection has the listener's priority;
//!   `tcp_kill_prio` only kills *lower* priorities, so it never kills here. The
//!   incident's lwIP (ESP8266 RTOS SDK master / v3.4 / Duet's fork: esp-lwip
//!   `4fd84ab`) does the same.
//! * `sdk_prio` (a historical name): accepted connections at priority 1, below every
//!   newcomer's (`LwipStack::with_accept_priority`): what lwIP 1.4 and the in-tree lwIP
//!   of SDK release/v3.2–v3.3 do with equal priorities, whose `tcp_kill_prio` kills
//!   "the same or lower" priority — the path the incident's killed upload was blamed
//!   on, not the incident's lwIP.
//!
//! ```text
//! cargo run --release --features sim --example churn-lwip                 # table
//! cargo run --release --features sim --example churn-lwip -- --json       # one JSON object
//! cargo run --release --features sim --example churn-lwip -- --seed 7 --loss-ppm 10000 --duration-s 60
//! ```
//!
//! Same arguments, same numbers: everything random comes from the seed.

use embedded_nal::{nb, TcpClientStack, TcpFullStack};
use netpool::stack::{PeerStatus, SendFlag, TcpAbort, TcpPeerStatus, TcpSendFlags, TcpSendQueue};
use netpool::{Config, Duration};
use netpool_lwip::sim::{LwipHost, LwipServer};
use netpool_lwip::{LwipSocket, LwipStack, LwipStats};
use netpool_testkit::sim::{
    run, server, test_net, ChurnArgs, ChurnClients, ClosePolicy, Fabric, LinkConfig, Participant, PollStats,
};
use smoltcp::time::Instant as T;
use smoltcp::wire::{IpEndpoint, Ipv4Address};

const SLOTS: usize = 8;
const POLLERS: u8 = 7;
const BACKLOG: u8 = 8;
const UPLOAD_BYTES_PER_S: u64 = 100_000;
const SUCCESS_PPM: u64 = 999_000;
/// The incident's churn (the ESP8266 bridge that collapsed: ~12 connections per second).
const INCIDENT_RATE: u64 = 12;
const MAX_RATE: u64 = 1000;
/// When the first poll starts (s).
const FIRST_POLL_S: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Lwip22,
    SdkPrio,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Lwip22 => "lwip22",
            Mode::SdkPrio => "sdk_prio",
        }
    }
}

/// One run at one rate.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    rate: u64,
    duration_s: i64,
    polls: PollStats,
    upload_alive: bool,
    upload_died_ms: Option<i64>,
    upload_sent: u64,
    upload_read: u64,
    rejected: u32,
    lwip: LwipStats,
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
    /// Completed polls per second over the polling period.
    fn achieved(&self) -> f64 {
        self.completed() as f64 / (self.duration_s as f64 - FIRST_POLL_S)
    }
    /// The upload survived, at least 99.9 % of the completed polls succeeded, and the
    /// pollers completed at least 90 % of the offered rate (the pollers poll in a closed
    /// loop, so a server that merely makes them wait shows up here).
    fn sustained(&self) -> bool {
        self.upload_alive
            && self.completed() > 0
            && self.success_ppm() >= SUCCESS_PPM
            && self.achieved() >= 0.9 * self.rate as f64
    }

    /// What went wrong, in lwIP's and the pollers' words.
    fn how(&self) -> String {
        let l = &self.lwip;
        let mut parts = Vec::new();
        if !self.upload_alive {
            let why = if l.events.killed > 0 && l.killed_prio > 0 {
                "killed by tcp_kill_prio"
            } else {
                "lost"
            };
            parts.push(format!(
                "upload {why} at {:.1} s",
                self.upload_died_ms.unwrap_or(0) as f64 / 1000.0
            ));
        }
        let p = &self.polls;
        if self.achieved() < 0.9 * self.rate as f64 {
            parts.push(format!("only {:.1} polls/s completed", self.achieved()));
        }
        if p.failed() > 0 {
            parts.push(format!(
                "{} polls failed (refused {}, reset {}, short {}, timeout {})",
                p.failed(),
                p.refused,
                p.reset,
                p.short,
                p.timeout
            ));
        }
        if l.alloc_pool_empty > 0 {
            parts.push(format!("PCB pool empty {}x", l.alloc_pool_empty));
        }
        for (n, what) in [
            (l.reclaimed_time_wait, "TIME-WAIT reclaimed"),
            (l.reclaimed_closing, "LAST-ACK/CLOSING reclaimed"),
            (l.killed_prio, "tcp_kill_prio kills"),
            (l.syn_dropped_no_pcb, "SYNs dropped (no PCB)"),
            (l.syn_dropped_backlog, "SYNs dropped (backlog full)"),
        ] {
            if n > 0 {
                parts.push(format!("{what} {n}"));
            }
        }
        if self.rejected > 0 {
            parts.push(format!("netpool rejected {}", self.rejected));
        }
        parts.join("; ")
    }
}

// ---------------------------------------------------------------------------------
// The old bridge firmware, without netpool: the reference's Connection/Listener pair.
// ---------------------------------------------------------------------------------

/// The old firmware's server on the same lwIP: 8 connection slots; a connection is
/// accepted only when a slot is free (otherwise it waits in lwIP's backlog, holding
/// its PCB: the reference's bug 3.10); after a response the slot lingers
/// (`closePending`) until the response is acknowledged, the PCB is lost (reset), or 4 s
/// pass (then abort).
struct Legacy {
    stack: LwipStack,
    host: LwipHost,
    listener: LwipSocket,
    slots: Vec<Option<(LwipSocket, LegacyPhase)>>,
    upload_bytes: u64,
    /// Let go of a lingering connection as soon as its PCB is lost (the reference's
    /// "PCB lost during closePending" check); without it, the race of §2.2 item 2:
    /// the slot waits the full 4 s.
    rst_aware: bool,
}

enum LegacyPhase {
    Request(Vec<u8>),
    Respond(usize),
    Linger(T),
    Upload,
}

impl Legacy {
    fn new(fabric: &Fabric, ip: Ipv4Address, port: u16, rst_aware: bool, mut stack: LwipStack) -> Self {
        let host = LwipHost::attach(fabric, ip, &mut stack);
        let mut listener = stack.socket().expect("a PCB on a fresh lwIP");
        stack.bind(&mut listener, port).expect("bind");
        stack.listen(&mut listener).expect("listen");
        Legacy {
            stack,
            host,
            listener,
            slots: (0..SLOTS).map(|_| None).collect(),
            upload_bytes: 0,
            rst_aware,
        }
    }

    /// Serve one connection; `false` when the slot is free again.
    fn serve(&mut self, s: &mut LwipSocket, phase: &mut LegacyPhase, now: T) -> bool {
        let st = &mut self.stack;
        let mut buf = [0u8; 1024];
        loop {
            match phase {
                LegacyPhase::Request(req) => match st.receive(s, &mut buf) {
                    Ok(0) | Err(nb::Error::Other(_)) => {
                        let _ = st.close(*s);
                        return false;
                    }
                    Ok(n) => {
                        req.extend_from_slice(&buf[..n]);
                        if req.starts_with(b"POST") {
                            self.upload_bytes += req.len() as u64;
                            *phase = LegacyPhase::Upload;
                        } else if req.windows(4).any(|w| w == b"\r\n\r\n") {
                            *phase = LegacyPhase::Respond(0);
                        }
                    }
                    Err(nb::Error::WouldBlock) => return true,
                },
                LegacyPhase::Respond(written) => {
                    let body = [b'x'; server::RESPONSE_BODY_LEN];
                    while *written < server::RESPONSE_LEN {
                        let head = server::RESPONSE_HEAD.len();
                        let (part, flag) = if *written < head {
                            (&server::RESPONSE_HEAD[*written..], SendFlag::More)
                        } else {
                            (&body[*written - head..], SendFlag::Push)
                        };
                        match st.send_flagged(s, part, flag) {
                            Ok(n) => *written += n,
                            Err(nb::Error::WouldBlock) => return true,
                            Err(nb::Error::Other(_)) => {
                                let _ = st.close(*s);
                                return false;
                            }
                        }
                    }
                    *phase = LegacyPhase::Linger(now);
                }
                LegacyPhase::Linger(since) => {
                    let lost = matches!(st.peer_status(s), PeerStatus::Gone(_));
                    if (lost && self.rst_aware) || (!lost && st.send_queue(s) == Some(0)) {
                        let _ = st.close(*s);
                        return false;
                    }
                    if now - *since >= smoltcp::time::Duration::from_secs(4) {
                        let _ = st.abort(*s);
                        return false;
                    }
                    return true;
                }
                LegacyPhase::Upload => loop {
                    match st.receive(s, &mut buf) {
                        Ok(0) | Err(nb::Error::Other(_)) => {
                            let _ = st.close(*s);
                            return false;
                        }
                        Ok(n) => self.upload_bytes += n as u64,
                        Err(nb::Error::WouldBlock) => return true,
                    }
                },
            }
        }
    }
}

impl Participant for Legacy {
    fn step(&mut self, now: T) {
        self.host.ingress(&mut self.stack, now);
        // Accept only into a free slot: the rest waits in lwIP's backlog.
        for i in 0..self.slots.len() {
            if self.slots[i].is_none() {
                match self.stack.accept(&mut self.listener) {
                    Ok((s, _)) => self.slots[i] = Some((s, LegacyPhase::Request(Vec::new()))),
                    Err(_) => break,
                }
            }
        }
        for i in 0..self.slots.len() {
            if let Some((mut s, mut phase)) = self.slots[i].take() {
                if self.serve(&mut s, &mut phase, now) {
                    self.slots[i] = Some((s, phase));
                }
            }
        }
        self.host.egress(now);
    }

    fn wake_at(&mut self, now: T) -> Option<T> {
        self.host.wake_at(&self.stack, now)
    }
}

/// The server under test: netpool with a close policy, or the old firmware.
enum Server {
    Pool(Box<LwipServer<SLOTS>>),
    Legacy(Box<Legacy>),
}

impl Participant for Server {
    fn step(&mut self, now: T) {
        match self {
            Server::Pool(s) => s.step(now),
            Server::Legacy(s) => s.step(now),
        }
    }
    fn wake_at(&mut self, now: T) -> Option<T> {
        match self {
            Server::Pool(s) => s.wake_at(now),
            Server::Legacy(s) => s.wake_at(now),
        }
    }
}

/// A server policy of the benchmark.
#[derive(Clone, Copy, Debug)]
enum Policy {
    Netpool(ClosePolicy),
    /// The old firmware; `true`: its "PCB lost" check works.
    Legacy(bool),
}

fn simulate(args: &ChurnArgs, mode: Mode, policy: Policy, rate: u64) -> Outcome {
    let link = LinkConfig {
        delay_ms: 2,
        jitter_ms: 2,
        loss_ppm: args.loss_ppm,
        mtu: 1500,
    };
    let fabric = Fabric::new(args.seed, link);
    let ip = test_net(1);
    let endpoint = IpEndpoint::new(ip.into(), 80);
    let mut stack = LwipStack::new()
        .expect("one LwipStack at a time")
        .with_backlog(BACKLOG);
    if mode == Mode::SdkPrio {
        stack = stack.with_accept_priority(1);
    }
    let mut srv = match policy {
        Policy::Netpool(close) => Server::Pool(Box::new(
            LwipServer::new(&fabric, ip, 80, SLOTS as u8, close, Config::new(), stack)
                .expect("listen on a fresh lwIP"),
        )),
        Policy::Legacy(rst_aware) => Server::Legacy(Box::new(Legacy::new(&fabric, ip, 80, rst_aware, stack))),
    };
    let period_ms = (u64::from(POLLERS) * 1000 / rate.max(1)).max(1);
    let mut clients = ChurnClients::new(
        &fabric,
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
        run(&fabric, &mut all, T::ZERO, end, 50);
    }
    let polls = clients.poll_stats();
    let upload = &clients.upload;
    let (upload_read, rejected, lwip) = match &srv {
        Server::Pool(s) => (
            s.app.stats().upload_bytes,
            s.pool.counters().rejected,
            s.pool.stack().stats(),
        ),
        Server::Legacy(s) => (s.upload_bytes, 0, s.stack.stats()),
    };
    Outcome {
        rate,
        duration_s: args.duration_s,
        polls,
        upload_alive: upload.alive(),
        upload_died_ms: upload.died_at().map(|t| t.total_millis()),
        upload_sent: upload.sent(),
        upload_read,
        rejected,
        lwip,
    }
}

/// The highest rate in `1..=hi` that is sustained, by binary search (sustained rates
/// are assumed to form a prefix), with the outcome there and just above.
fn max_rate(args: &ChurnArgs, mode: Mode, policy: Policy, hi: u64) -> (Option<Outcome>, Option<Outcome>) {
    let (mut lo, mut hi) = (0u64, hi + 1);
    let (mut best, mut first_fail) = (None, None);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let o = simulate(args, mode, policy, mid);
        if o.sustained() {
            lo = mid;
            best = Some(o);
        } else {
            hi = mid;
            first_fail = Some(o);
        }
    }
    (best, first_fail.filter(|o| o.rate == hi))
}

fn json_outcome(o: &Option<Outcome>) -> String {
    match o {
        None => "null".into(),
        Some(o) => {
            let l = &o.lwip;
            format!(
                "{{\"rate\":{},\"achieved_per_s\":{:.1},\"polls_ok\":{},\"polls_failed\":{},\"refused\":{},\"reset\":{},\"short\":{},\"timeout\":{},\"success_ppm\":{},\
                 \"upload_survived\":{},\"upload_died_ms\":{},\"upload_sent\":{},\"upload_read\":{},\"netpool_rejected\":{},\
                 \"pcbs_max\":{},\"pcb_pool_empty\":{},\"reclaimed_time_wait\":{},\"reclaimed_closing\":{},\"killed_prio\":{},\
                 \"syn_dropped_no_pcb\":{},\"syn_dropped_backlog\":{},\"killed_events\":{}}}",
                o.rate,
                o.achieved(),
                o.polls.ok,
                o.polls.failed(),
                o.polls.refused,
                o.polls.reset,
                o.polls.short,
                o.polls.timeout,
                o.success_ppm(),
                o.upload_alive,
                o.upload_died_ms.map_or("null".into(), |t| t.to_string()),
                o.upload_sent,
                o.upload_read,
                o.rejected,
                l.pcbs_max,
                l.alloc_pool_empty,
                l.reclaimed_time_wait,
                l.reclaimed_closing,
                l.killed_prio,
                l.syn_dropped_no_pcb,
                l.syn_dropped_backlog,
                l.events.killed
            )
        }
    }
}

struct PolicyResult {
    name: &'static str,
    best: Option<Outcome>,
    above: Option<Outcome>,
    incident: Outcome,
}

fn main() {
    let args = match ChurnArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("churn-lwip: {e}");
            std::process::exit(2);
        }
    };
    let linger = |free_when_dead| ClosePolicy::Lingering {
        max: Duration::from_secs(4),
        free_when_dead,
    };
    let policies = [
        ("netpool", Policy::Netpool(ClosePolicy::Immediate)),
        ("lingering", Policy::Netpool(linger(false))),
        ("lingering_rst_aware", Policy::Netpool(linger(true))),
        ("old_firmware", Policy::Legacy(false)),
        ("old_firmware_rst_aware", Policy::Legacy(true)),
    ];
    let modes = [Mode::Lwip22, Mode::SdkPrio];
    let results: Vec<(Mode, Vec<PolicyResult>)> = modes
        .iter()
        .map(|&mode| {
            let rows = policies
                .iter()
                .map(|&(name, policy)| {
                    let (best, above) = max_rate(&args, mode, policy, MAX_RATE);
                    let incident = simulate(&args, mode, policy, INCIDENT_RATE);
                    PolicyResult {
                        name,
                        best,
                        above,
                        incident,
                    }
                })
                .collect();
            (mode, rows)
        })
        .collect();

    if args.json {
        let modes: Vec<String> = results
            .iter()
            .map(|(mode, rows)| {
                let fields: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "\"{}\":{{\"max_rate\":{},\"upload_survived\":{},\"at_max\":{},\"above_max\":{},\"at_incident_rate\":{}}}",
                            r.name,
                            r.best.map_or(0, |o| o.rate),
                            r.best.is_some_and(|o| o.upload_alive),
                            json_outcome(&r.best),
                            json_outcome(&r.above),
                            json_outcome(&Some(r.incident))
                        )
                    })
                    .collect();
                format!("\"{}\":{{{}}}", mode.name(), fields.join(","))
            })
            .collect();
        println!(
            "{{\"lwip_version\":\"{}\",{},\"pcbs\":10,\"slots\":{SLOTS},\"backlog\":{BACKLOG},\"pollers\":{POLLERS},\
             \"upload_bytes_per_s\":{UPLOAD_BYTES_PER_S},\"incident_rate\":{INCIDENT_RATE},\"max_rate_searched\":{MAX_RATE},\
             \"seed\":{},\"loss_ppm\":{},\"duration_s\":{}}}",
            netpool_lwip::LWIP_VERSION,
            modes.join(","),
            args.seed,
            args.loss_ppm,
            args.duration_s
        );
        return;
    }

    println!(
        "churn on real lwIP {}: 1 upload ({} kB/s) + {POLLERS} pollers, pool of {SLOTS}, 10 PCBs, backlog {BACKLOG}, \
         loss {} ppm, {} s virtual, seed {}",
        netpool_lwip::LWIP_VERSION,
        UPLOAD_BYTES_PER_S / 1000,
        args.loss_ppm,
        args.duration_s,
        args.seed
    );
    for (mode, rows) in &results {
        println!();
        match mode {
            Mode::Lwip22 => println!("[lwip22] stock lwIP 2.2 priorities (tcp_kill_prio kills only lower priorities)"),
            Mode::SdkPrio => println!(
                "[sdk_prio] accepted connections below the newcomers' priority (the equal-priority kill of lwIP 1.4 / SDK v3.2-v3.3)"
            ),
        }
        println!(
            "{:<24} {:>10} {:>9} {:>9} {:>7} {:>7} {:>9}  at {INCIDENT_RATE} conn/s | just above the max",
            "policy", "max conn/s", "polls/s", "polls ok", "failed", "upload", "pcbs max"
        );
        for r in rows {
            let at = |o: &Outcome| {
                if o.sustained() {
                    "ok".to_string()
                } else {
                    o.how()
                }
            };
            let above = r
                .above
                .map_or("-".into(), |o| format!("{} conn/s: {}", o.rate, o.how()));
            match &r.best {
                Some(o) => println!(
                    "{:<24} {:>10} {:>9.1} {:>9} {:>7} {:>7} {:>9}  {} | {above}",
                    r.name,
                    o.rate,
                    o.achieved(),
                    o.polls.ok,
                    o.polls.failed(),
                    if o.upload_alive { "alive" } else { "KILLED" },
                    o.lwip.pcbs_max,
                    at(&r.incident)
                ),
                None => println!(
                    "{:<24} {:>10} (no rate sustained)  {} | {above}",
                    r.name,
                    0,
                    at(&r.incident)
                ),
            }
        }
    }
}
