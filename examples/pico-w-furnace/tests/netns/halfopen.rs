//! The half-open handshake phase shared by both TAP tests: SYNs whose handshake never
//! completes ([`syn`](super::syn)), first `3 × armed` at once, then 20 per second for
//! 10 s, while an ordinary client makes one request every 250 ms (a new connection
//! each, one attempt). Its outcomes are counted in four windows:
//!
//! | window | from | to | polls |
//! |---|---|---|---|
//! | before | start | the burst | 9 |
//! | burst | the burst (between two polls) | 15 s later | 60 |
//! | sustained | the first of 200 SYNs, one every 50 ms | the last | 40 |
//! | after | the last SYN | 10 s later | 40 |
//!
//! About 37 s in all. Spoofed sources: `.100`–`.199` of the namespace's /24, which
//! nobody answers ARP for.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::poll::{Counts, Outcome, Pollers, Tally};
use super::syn::SynSender;
use super::Netns;

/// The ordinary client's period.
pub const POLL_PERIOD: Duration = Duration::from_millis(250);
/// Polls before the burst.
const BEFORE: Duration = Duration::from_secs(2);
/// The burst window: the burst, and what follows it.
const BURST_WINDOW: Duration = Duration::from_secs(15);
/// The sustained SYNs: this many, one every `SYN_PERIOD` (20 per second, 10 s).
pub const SUSTAINED_SYNS: u32 = 200;
const SYN_PERIOD: Duration = Duration::from_millis(50);
/// The window after the last SYN.
const AFTER: Duration = Duration::from_secs(10);

/// The outcomes of the ordinary client in each window, and the SYNs sent.
pub struct HalfOpen {
    pub before: Counts,
    pub burst: Counts,
    pub sustained: Counts,
    pub after: Counts,
    pub burst_syns: u64,
    pub sustained_syns: u64,
}

impl HalfOpen {
    pub fn windows(&self) -> [(&'static str, &Counts); 4] {
        [
            ("before", &self.before),
            ("burst", &self.burst),
            ("sustained", &self.sustained),
            ("after", &self.after),
        ]
    }

    pub fn all(&self) -> Counts {
        let mut c = Counts::default();
        for (_, w) in self.windows() {
            c.merge(w);
        }
        c
    }

    /// Fail unless every window served at least 99.5 % at the first attempt.
    pub fn assert_served(&self, host: &str) {
        for (name, w) in self.windows() {
            assert!(
                w.at_least(995),
                "{host}, half-open handshakes, window `{name}`: fewer than 99.5 % of the ordinary \
                 client's requests served at the first attempt: {w}; failures {:?}",
                w.failures
            );
        }
    }
}

impl std::fmt::Display for HalfOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "half-open handshakes: {} SYNs at once, then {} at 20/s",
            self.burst_syns, self.sustained_syns
        )?;
        for (name, w) in self.windows() {
            writeln!(f, "  {name:>9}: {w}")?;
        }
        write!(f, "  {:>9}: {}", "all", self.all())
    }
}

/// The spoofed sources: `.100`–`.199` of the namespace's /24.
pub fn sources(ns: &Netns) -> Vec<Ipv4Addr> {
    let [a, b, c, _] = ns.host_ip.parse::<Ipv4Addr>().unwrap().octets();
    (100..200).map(|d| Ipv4Addr::new(a, b, c, d)).collect()
}

/// Run the phase against `device` with `armed` sockets armed on its listener; `poll`
/// is the ordinary client's request. The calling thread must be inside `ns`.
pub fn run(
    ns: &Netns,
    device: SocketAddrV4,
    armed: usize,
    poll: impl Fn() -> Outcome + Send + Sync + 'static,
) -> HalfOpen {
    let tally = Arc::new(Tally::default());
    let rounds = ((BEFORE + BURST_WINDOW + SYN_PERIOD * SUSTAINED_SYNS + AFTER).as_millis()
        / POLL_PERIOD.as_millis()) as usize
        + 8;
    let mut sender = SynSender::new(ns, device, sources(ns));
    let poller = Pollers::start(1, POLL_PERIOD, rounds, &tally, move |_| poll());
    let t0 = Instant::now();
    let sleep_until = |t: Instant| thread::sleep(t.saturating_duration_since(Instant::now()));

    // Before: the ordinary client alone.
    let burst_at = t0 + BEFORE + POLL_PERIOD / 2; // between two polls
    sleep_until(burst_at);
    let before = tally.take();
    // The burst: 3 × armed SYNs at once.
    for _ in 0..3 * armed {
        sender.send();
    }
    let burst_syns = sender.sent;
    sleep_until(burst_at + BURST_WINDOW);
    let burst = tally.take();
    // Sustained: 20 SYNs per second, each on its own schedule (off the polls' ticks).
    let sustained_at = burst_at + BURST_WINDOW;
    for i in 0..SUSTAINED_SYNS {
        sleep_until(sustained_at + SYN_PERIOD * i);
        sender.send();
    }
    let sustained_syns = sender.sent - burst_syns;
    let sustained = tally.take();
    sleep_until(Instant::now() + AFTER);
    poller.finish();
    let after = tally.take();
    HalfOpen {
        before,
        burst,
        sustained,
        after,
        burst_syns,
        sustained_syns,
    }
}
