//! An in-memory network for deterministic tests and benchmarks (feature `sim`, on by
//! default).
//!
//! Hosts are smoltcp interfaces joined by a [`Fabric`]: an IPv4 link with seeded
//! loss, delay, jitter, partitions and per-host link-down. Time is virtual: the
//! driver asks every participant when it next needs attention (`poll_at` /
//! `wake_at`, [`Fabric::next_delivery`]) and jumps straight there, so a minute of
//! simulated churn runs in milliseconds and the same seed gives the same run.
//!
//! Remote peers are scripted ([`peers`]): pollers, an uploader, half-open clients,
//! connect storms and floods of SYNs that never complete. The server side is a netpool [`Pool`](netpool::Pool) over the
//! smoltcp backend, optionally behind a PCB-limited wrapper that emulates
//! lwIP's PCB allocation under exhaustion.
//!
//! Addresses are from TEST-NET-1 (192.0.2.0/24): nothing here touches a real network.

pub mod fabric;
pub mod pcb;
pub mod peers;
pub mod rng;
pub mod server;
pub mod workload;
pub mod world;

pub use fabric::{Fabric, LinkConfig, LinkStats, SimDevice};
pub use pcb::{Exhaustion, PcbError, PcbLimited, PcbStats};
pub use peers::{CloseStyle, HalfOpen, PeerHost, PollStats, Poller, PollerConfig, Storm, SynFlood, Uploader};
pub use rng::SplitMix64;
pub use server::{ClosePolicy, ServerStats, StatusServer};
pub use workload::{ChurnArgs, ChurnClients};
pub use world::{run, server_stack, smoltcp_stack, Participant, SimServer, SimStack};

use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::Ipv4Address;

/// The `n`-th address of TEST-NET-1 (192.0.2.n).
pub const fn test_net(n: u8) -> Ipv4Address {
    Ipv4Address::new(192, 0, 2, n)
}

/// The earliest of some wake-up times, but never before `now` and never more than
/// `max_step_ms` after it (so a quiet simulation still advances in bounded steps).
pub fn next_event(
    now: SmolInstant,
    candidates: impl IntoIterator<Item = Option<SmolInstant>>,
    max_step_ms: i64,
) -> SmolInstant {
    let cap = now + smoltcp::time::Duration::from_millis(max_step_ms as u64);
    candidates
        .into_iter()
        .flatten()
        .map(|t| if t < now { now } else { t })
        .fold(cap, |a, b| a.min(b))
}

/// netpool's [`Instant`](netpool::Instant) from smoltcp's.
pub fn to_netpool(t: SmolInstant) -> netpool::Instant {
    netpool::Instant::from_millis(t.total_millis().max(0) as u64)
}
