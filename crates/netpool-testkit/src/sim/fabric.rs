//! The in-memory link: IPv4 packets between simulated hosts, with seeded loss,
//! delay, partitions and link-down, in virtual time.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::rc::Rc;
use std::vec;
use std::vec::Vec;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{Ipv4Address, Ipv4Packet};

use super::rng::SplitMix64;

/// How the link behaves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// One-way delay of every packet, in milliseconds.
    pub delay_ms: u64,
    /// Random extra delay, uniform in `0..=jitter_ms` (packets may reorder).
    pub jitter_ms: u64,
    /// Probability of losing a packet, in parts per million.
    pub loss_ppm: u32,
    /// Largest IP packet.
    pub mtu: usize,
}

impl Default for LinkConfig {
    /// 2 ms each way, no jitter, no loss, MTU 1500 (a quiet WLAN).
    fn default() -> Self {
        LinkConfig {
            delay_ms: 2,
            jitter_ms: 0,
            loss_ppm: 0,
            mtu: 1500,
        }
    }
}

/// What the link did with the packets it was given.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets handed to the link.
    pub sent: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because an end's link was down.
    pub link_down: u64,
    /// Dropped by a partition.
    pub partitioned: u64,
    /// Dropped: no host has the destination address.
    pub unroutable: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at_ms: i64,
    seq: u64,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Host {
    ip: Ipv4Address,
    up: bool,
    inbound: BinaryHeap<Reverse<Flight>>,
}

#[derive(Debug)]
struct Inner {
    config: LinkConfig,
    rng: SplitMix64,
    hosts: Vec<Host>,
    cuts: HashSet<(usize, usize)>,
    seq: u64,
    stats: LinkStats,
}

/// The link all simulated hosts share. Cheap to clone (a shared handle).
#[derive(Clone, Debug)]
pub struct Fabric(Rc<RefCell<Inner>>);

impl Fabric {
    /// A link with the given behaviour; `seed` fixes every random choice.
    pub fn new(seed: u64, config: LinkConfig) -> Self {
        Fabric(Rc::new(RefCell::new(Inner {
            config,
            rng: SplitMix64::new(seed),
            hosts: Vec::new(),
            cuts: HashSet::new(),
            seq: 0,
            stats: LinkStats::default(),
        })))
    }

    /// Attach a host with address `ip`; returns its network device.
    pub fn attach(&self, ip: Ipv4Address) -> SimDevice {
        let mut inner = self.0.borrow_mut();
        inner.hosts.push(Host {
            ip,
            up: true,
            inbound: BinaryHeap::new(),
        });
        SimDevice {
            fabric: self.clone(),
            host: inner.hosts.len() - 1,
        }
    }

    fn host_of(inner: &Inner, ip: Ipv4Address) -> Option<usize> {
        inner.hosts.iter().position(|h| h.ip == ip)
    }

    /// Bring a host's link up or down. Packets to or from a down host are dropped,
    /// including those already in flight to it.
    pub fn set_link_up(&self, ip: Ipv4Address, up: bool) {
        let mut inner = self.0.borrow_mut();
        if let Some(i) = Self::host_of(&inner, ip) {
            inner.hosts[i].up = up;
            if !up {
                let dropped = inner.hosts[i].inbound.len() as u64;
                inner.hosts[i].inbound.clear();
                inner.stats.link_down += dropped;
            }
        }
    }

    /// Cut (or heal) the path between two hosts, both ways.
    pub fn set_partition(&self, a: Ipv4Address, b: Ipv4Address, cut: bool) {
        let mut inner = self.0.borrow_mut();
        if let (Some(a), Some(b)) = (Self::host_of(&inner, a), Self::host_of(&inner, b)) {
            let key = (a.min(b), a.max(b));
            if cut {
                inner.cuts.insert(key);
            } else {
                inner.cuts.remove(&key);
            }
        }
    }

    /// Change the loss rate from now on.
    pub fn set_loss_ppm(&self, ppm: u32) {
        self.0.borrow_mut().config.loss_ppm = ppm;
    }

    /// When the next packet arrives anywhere.
    pub fn next_delivery(&self) -> Option<SmolInstant> {
        let inner = self.0.borrow();
        inner
            .hosts
            .iter()
            .filter_map(|h| h.inbound.peek().map(|Reverse(f)| f.at_ms))
            .min()
            .map(SmolInstant::from_millis)
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.0.borrow().stats
    }

    fn send(&self, from: usize, bytes: Vec<u8>, now: SmolInstant) {
        let mut inner = self.0.borrow_mut();
        inner.stats.sent += 1;
        let dst = match Ipv4Packet::new_checked(&bytes[..]) {
            Ok(p) => Self::host_of(&inner, p.dst_addr()),
            Err(_) => None,
        };
        let Some(to) = dst else {
            inner.stats.unroutable += 1;
            return;
        };
        if !inner.hosts[from].up || !inner.hosts[to].up {
            inner.stats.link_down += 1;
            return;
        }
        if inner.cuts.contains(&(from.min(to), from.max(to))) {
            inner.stats.partitioned += 1;
            return;
        }
        let LinkConfig {
            delay_ms,
            jitter_ms,
            loss_ppm,
            ..
        } = inner.config;
        if inner.rng.chance_ppm(loss_ppm) {
            inner.stats.lost += 1;
            return;
        }
        let jitter = inner.rng.below(jitter_ms + 1);
        inner.seq += 1;
        let flight = Flight {
            at_ms: now.total_millis() + (delay_ms + jitter) as i64,
            seq: inner.seq,
            bytes,
        };
        inner.hosts[to].inbound.push(Reverse(flight));
    }

    fn take_due(&self, host: usize, now: SmolInstant) -> Option<Vec<u8>> {
        let mut inner = self.0.borrow_mut();
        let h = &mut inner.hosts[host];
        match h.inbound.peek() {
            Some(Reverse(f)) if f.at_ms <= now.total_millis() => {}
            _ => return None,
        }
        let Reverse(f) = h.inbound.pop()?;
        inner.stats.delivered += 1;
        Some(f.bytes)
    }
}

/// One host's network device on the [`Fabric`] (smoltcp `Medium::Ip`).
#[derive(Debug)]
pub struct SimDevice {
    fabric: Fabric,
    host: usize,
}

/// A received packet.
pub struct SimRxToken(Vec<u8>);

/// Room for one packet to send.
pub struct SimTxToken<'a> {
    fabric: &'a Fabric,
    host: usize,
    now: SmolInstant,
}

impl phy::RxToken for SimRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for SimTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.fabric.send(self.host, buf, self.now);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = SimRxToken;
    type TxToken<'a> = SimTxToken<'a>;

    fn receive(&mut self, now: SmolInstant) -> Option<(SimRxToken, SimTxToken<'_>)> {
        let bytes = self.fabric.take_due(self.host, now)?;
        Some((
            SimRxToken(bytes),
            SimTxToken {
                fabric: &self.fabric,
                host: self.host,
                now,
            },
        ))
    }

    fn transmit(&mut self, now: SmolInstant) -> Option<SimTxToken<'_>> {
        Some(SimTxToken {
            fabric: &self.fabric,
            host: self.host,
            now,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.fabric.0.borrow().config.mtu;
        caps
    }
}
