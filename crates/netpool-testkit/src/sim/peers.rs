//! Scripted remote peers, each a smoltcp host of its own on the [`Fabric`].
//!
//! - [`Poller`]: a browser polling a status endpoint — connect, request, read the
//!   whole response, close with FIN or RST, again every period.
//! - [`Uploader`]: one long-lived connection streaming at a steady rate.
//! - [`HalfOpen`]: requests a large response, then stops reading or vanishes.
//! - [`Storm`]: many connects at the same instant.
//! - [`SynFlood`]: SYNs whose handshake never completes (half-open), from addresses
//!   that answer nothing.
//!
//! Peers keep their own statistics; the test or benchmark reads them at the end.

use core::net::SocketAddrV4;
use std::vec;
use std::vec::Vec;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};

use super::fabric::{Fabric, SimDevice};

/// A simulated host: an interface, a device on the fabric, and its sockets.
pub struct PeerHost {
    /// The host's address.
    pub ip: Ipv4Address,
    iface: Interface,
    device: SimDevice,
    sockets: SocketSet<'static>,
    next_port: u16,
    ack_delay_ms: u64,
}

impl PeerHost {
    /// A host at `ip` (/24) on `fabric`.
    pub fn new(fabric: &Fabric, ip: Ipv4Address, seed: u64, now: SmolInstant) -> Self {
        let mut device = fabric.attach(ip);
        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24));
        });
        PeerHost {
            ip,
            iface,
            device,
            sockets: SocketSet::new(vec![]),
            next_port: 49152,
            ack_delay_ms: 10,
        }
    }

    /// Delayed-ACK time of this host's future sockets (smoltcp's default is 10 ms;
    /// browsers' stacks use 40–200 ms).
    pub fn set_ack_delay_ms(&mut self, ms: u64) {
        self.ack_delay_ms = ms;
    }

    /// Run the host's TCP/IP stack at `now`.
    pub fn poll(&mut self, now: SmolInstant) {
        self.iface.poll(now, &mut self.device, &mut self.sockets);
    }

    /// When the stack next needs [`poll`](Self::poll).
    pub fn poll_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.iface.poll_at(now, &self.sockets)
    }

    /// Open a connection to `remote` (a new socket with `rx`/`tx` byte buffers).
    pub fn connect(&mut self, remote: IpEndpoint, rx: usize, tx: usize) -> Option<SocketHandle> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; rx]),
            tcp::SocketBuffer::new(vec![0u8; tx]),
        );
        socket.set_ack_delay(Some(SmolDuration::from_millis(self.ack_delay_ms)));
        let port = self.next_port;
        self.next_port = if self.next_port == u16::MAX {
            49152
        } else {
            self.next_port + 1
        };
        socket.connect(self.iface.context(), remote, port).ok()?;
        Some(self.sockets.add(socket))
    }

    /// A socket of this host.
    pub fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Forget a socket (whatever its state: the host stops answering for it).
    pub fn remove(&mut self, h: SocketHandle) {
        self.sockets.remove(h);
    }
}

/// How a peer ends a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CloseStyle {
    /// Graceful close (FIN).
    Fin,
    /// Abortive close (RST), as browsers often do.
    Rst,
}

/// Why a poll failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PollFailure {
    /// The connection was refused (RST to the SYN) or could not start.
    Refused,
    /// The connection was reset before the whole response arrived.
    Reset,
    /// Closed by the server before the whole response arrived.
    Short,
    /// No complete response within the timeout.
    Timeout,
}

/// A poller's tally.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Polls started.
    pub attempts: u64,
    /// Polls that received the whole response.
    pub ok: u64,
    /// Failures by kind.
    pub refused: u64,
    /// ...
    pub reset: u64,
    /// ...
    pub short: u64,
    /// ...
    pub timeout: u64,
}

impl PollStats {
    /// Polls that failed.
    pub fn failed(&self) -> u64 {
        self.refused + self.reset + self.short + self.timeout
    }

    /// Add another poller's tally.
    pub fn add(&mut self, o: &PollStats) {
        self.attempts += o.attempts;
        self.ok += o.ok;
        self.refused += o.refused;
        self.reset += o.reset;
        self.short += o.short;
        self.timeout += o.timeout;
    }
}

/// What a [`Poller`] does.
#[derive(Copy, Clone, Debug)]
pub struct PollerConfig {
    /// The server.
    pub server: IpEndpoint,
    /// Time between the starts of two polls.
    pub period_ms: u64,
    /// When the first poll starts.
    pub first_at_ms: i64,
    /// A poll without a complete response after this long fails.
    pub timeout_ms: u64,
    /// The request sent on each connection.
    pub request: &'static [u8],
    /// Bytes of a complete response.
    pub response_len: usize,
    /// How the poller closes after a complete response.
    pub close: CloseStyle,
}

struct Attempt {
    socket: SocketHandle,
    started: SmolInstant,
    sent: usize,
    got: usize,
    established: bool,
}

/// A browser tab polling a status endpoint: one connection per request.
pub struct Poller {
    /// Its host.
    pub host: PeerHost,
    config: PollerConfig,
    next_start: SmolInstant,
    current: Option<Attempt>,
    closing: Vec<(SocketHandle, SmolInstant)>,
    stats: PollStats,
}

impl Poller {
    /// A poller on its own host.
    pub fn new(host: PeerHost, config: PollerConfig) -> Self {
        Poller {
            host,
            next_start: SmolInstant::from_millis(config.first_at_ms),
            config,
            current: None,
            closing: Vec::new(),
            stats: PollStats::default(),
        }
    }

    /// The tally so far.
    pub fn stats(&self) -> PollStats {
        self.stats
    }

    /// Stop starting new polls (the one under way finishes).
    pub fn stop(&mut self) {
        self.next_start = SmolInstant::from_secs(1_i64 << 40); // never, without overflowing smoltcp's µs
    }

    /// Whether a poll is under way.
    pub fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// When the poller next needs [`step`](Self::step) (besides network events).
    pub fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        let own = match &self.current {
            Some(a) => a.started + SmolDuration::from_millis(self.config.timeout_ms),
            None => self.next_start,
        };
        [Some(own), self.host.poll_at(now)].into_iter().flatten().min()
    }

    fn fail(&mut self, why: PollFailure) {
        match why {
            PollFailure::Refused => self.stats.refused += 1,
            PollFailure::Reset => self.stats.reset += 1,
            PollFailure::Short => self.stats.short += 1,
            PollFailure::Timeout => self.stats.timeout += 1,
        }
    }

    /// Advance the poller to `now` and run its host's stack.
    pub fn step(&mut self, now: SmolInstant) {
        self.host.poll(now);
        if self.current.is_none() && now >= self.next_start {
            self.next_start += SmolDuration::from_millis(self.config.period_ms);
            if self.next_start < now {
                self.next_start = now; // behind schedule: no burst to catch up
            }
            self.stats.attempts += 1;
            match self.host.connect(self.config.server, 4096, 1024) {
                Some(socket) => {
                    self.current = Some(Attempt {
                        socket,
                        started: now,
                        sent: 0,
                        got: 0,
                        established: false,
                    })
                }
                None => self.fail(PollFailure::Refused),
            }
        }
        if let Some(mut a) = self.current.take() {
            let outcome = self.advance(&mut a, now);
            match outcome {
                None => self.current = Some(a),
                Some(result) => {
                    let s = self.host.socket(a.socket);
                    match (result, self.config.close) {
                        (Ok(()), CloseStyle::Fin) => s.close(),
                        _ => s.abort(),
                    }
                    self.closing.push((a.socket, now));
                    match result {
                        Ok(()) => self.stats.ok += 1,
                        Err(why) => self.fail(why),
                    }
                }
            }
        }
        self.host.poll(now);
        // Forget finished sockets once their FIN/RST is out (bounded wait).
        let host = &mut self.host;
        self.closing.retain(|&(h, since)| {
            let st = host.socket(h).state();
            let done = matches!(st, tcp::State::Closed | tcp::State::TimeWait)
                || now >= since + SmolDuration::from_secs(5);
            if done {
                host.remove(h);
            }
            !done
        });
    }

    fn advance(&mut self, a: &mut Attempt, now: SmolInstant) -> Option<Result<(), PollFailure>> {
        let want = self.config.response_len;
        let request = self.config.request;
        let s = self.host.socket(a.socket);
        if s.state() == tcp::State::Established {
            a.established = true;
        }
        if a.established && a.sent < request.len() && s.can_send() {
            a.sent += s.send_slice(&request[a.sent..]).unwrap_or(0);
        }
        let mut buf = [0u8; 2048];
        while s.can_recv() {
            match s.recv_slice(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => a.got += n,
            }
        }
        if a.got >= want {
            return Some(Ok(()));
        }
        match s.state() {
            tcp::State::Closed if !a.established => Some(Err(PollFailure::Refused)),
            tcp::State::Closed => Some(Err(PollFailure::Reset)),
            _ if a.established && !s.may_recv() => Some(Err(PollFailure::Short)),
            _ if now >= a.started + SmolDuration::from_millis(self.config.timeout_ms) => {
                Some(Err(PollFailure::Timeout))
            }
            _ => None,
        }
    }
}

/// One long-lived upload streaming at a steady rate.
pub struct Uploader {
    /// Its host.
    pub host: PeerHost,
    socket: Option<SocketHandle>,
    server: IpEndpoint,
    start: SmolInstant,
    bytes_per_s: u64,
    header: &'static [u8],
    sent: u64,
    established: bool,
    died_at: Option<SmolInstant>,
}

impl Uploader {
    /// An uploader that connects at `start` and then sends `header` followed by
    /// `bytes_per_s` bytes per second for as long as it runs.
    pub fn new(
        host: PeerHost,
        server: IpEndpoint,
        start: SmolInstant,
        bytes_per_s: u64,
        header: &'static [u8],
    ) -> Self {
        Uploader {
            host,
            socket: None,
            server,
            start,
            bytes_per_s,
            header,
            sent: 0,
            established: false,
            died_at: None,
        }
    }

    /// Bytes handed to its stack so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the connection is established and has not died.
    pub fn alive(&self) -> bool {
        self.established && self.died_at.is_none()
    }

    /// When the connection died (reset, killed, closed by the server), if it did.
    pub fn died_at(&self) -> Option<SmolInstant> {
        self.died_at
    }

    /// When the uploader next needs [`step`](Self::step).
    pub fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        let pace = (self.alive() || self.socket.is_none()).then(|| now + SmolDuration::from_millis(10));
        [pace.filter(|_| self.died_at.is_none()), self.host.poll_at(now)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advance to `now`.
    pub fn step(&mut self, now: SmolInstant) {
        self.host.poll(now);
        if self.died_at.is_some() || now < self.start {
            return;
        }
        let Some(h) = self.socket else {
            self.socket = self.host.connect(self.server, 1024, 16 * 1024);
            if self.socket.is_none() {
                self.died_at = Some(now);
            }
            self.host.poll(now);
            return;
        };
        let s = self.host.socket(h);
        match s.state() {
            tcp::State::Established => self.established = true,
            tcp::State::SynSent | tcp::State::SynReceived => {}
            _ => {
                self.died_at = Some(now);
                return;
            }
        }
        if self.established {
            let header = self.header.len() as u64;
            let due = header + self.bytes_per_s * (now - self.start).total_millis() / 1000;
            while self.sent < due && s.can_send() {
                let chunk = [0x55u8; 1024];
                let n = if self.sent < header {
                    s.send_slice(&self.header[self.sent as usize..]).unwrap_or(0)
                } else {
                    let want = ((due - self.sent) as usize).min(chunk.len());
                    s.send_slice(&chunk[..want]).unwrap_or(0)
                };
                if n == 0 {
                    break;
                }
                self.sent += n as u64;
            }
            // Drain anything the server says (it should say nothing until the end).
            let mut sink = [0u8; 256];
            while s.can_recv() && s.recv_slice(&mut sink).unwrap_or(0) > 0 {}
        }
        self.host.poll(now);
    }
}

/// A client that requests a large response, then stops reading — or vanishes
/// from the network altogether.
pub struct HalfOpen {
    /// Its host.
    pub host: PeerHost,
    socket: Option<SocketHandle>,
    server: IpEndpoint,
    request: &'static [u8],
    sent: usize,
    /// Bytes it read before it stopped.
    pub read: usize,
    /// The bytes it read, when kept ([`HalfOpen::keep_bytes`]).
    pub received: Vec<u8>,
    keep: bool,
    read_budget: usize,
    vanish: Option<Fabric>,
}

impl HalfOpen {
    /// A client that reads `read_budget` bytes and then never reads again. With
    /// `vanish`, its link goes down at that moment instead (no FIN, no RST, nothing).
    pub fn new(
        host: PeerHost,
        server: IpEndpoint,
        request: &'static [u8],
        read_budget: usize,
        vanish: Option<Fabric>,
    ) -> Self {
        HalfOpen {
            host,
            socket: None,
            server,
            request,
            sent: 0,
            read: 0,
            received: Vec::new(),
            keep: false,
            read_budget,
            vanish,
        }
    }

    /// Keep every byte read in [`received`](Self::received) (to check content).
    pub fn keep_bytes(mut self) -> Self {
        self.keep = true;
        self
    }

    /// Let it read `more` bytes (a slow reader raises its budget now and then).
    pub fn allow(&mut self, more: usize) {
        self.read_budget += more;
    }

    /// The client's TCP state (e.g. to see that the server reset it).
    pub fn state(&mut self) -> Option<tcp::State> {
        let h = self.socket?;
        Some(self.host.socket(h).state())
    }

    /// Advance to `now`.
    pub fn step(&mut self, now: SmolInstant) {
        self.host.poll(now);
        let Some(h) = self.socket else {
            self.socket = self.host.connect(self.server, 2048, 1024);
            self.host.poll(now);
            return;
        };
        let s = self.host.socket(h);
        if s.may_send() && self.sent < self.request.len() {
            self.sent += s.send_slice(&self.request[self.sent..]).unwrap_or(0);
        }
        let mut buf = [0u8; 512];
        while self.read < self.read_budget && s.can_recv() {
            let room = (self.read_budget - self.read).min(buf.len());
            match s.recv_slice(&mut buf[..room]) {
                Ok(n) if n > 0 => {
                    self.read += n;
                    if self.keep {
                        self.received.extend_from_slice(&buf[..n]);
                    }
                }
                _ => break,
            }
        }
        if self.read >= self.read_budget {
            if let Some(fabric) = self.vanish.take() {
                fabric.set_link_up(self.host.ip, false);
            }
        }
        self.host.poll(now);
    }

    /// When it next needs [`step`](Self::step).
    pub fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.host.poll_at(now)
    }
}

/// Many connection attempts at the same instant; counts how each ended.
pub struct Storm {
    /// Its host.
    pub host: PeerHost,
    sockets: Vec<SocketHandle>,
}

/// How a storm's connections ended up.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StormStats {
    /// Still established (served).
    pub established: usize,
    /// Refused or reset.
    pub closed: usize,
    /// Neither yet.
    pub pending: usize,
}

impl Storm {
    /// Fire `count` connects to `server` now.
    pub fn fire(mut host: PeerHost, server: IpEndpoint, count: usize, now: SmolInstant) -> Self {
        let sockets = (0..count)
            .filter_map(|_| host.connect(server, 512, 512))
            .collect();
        host.poll(now);
        Storm { host, sockets }
    }

    /// Advance to `now`.
    pub fn step(&mut self, now: SmolInstant) {
        self.host.poll(now);
    }

    /// When it next needs [`step`](Self::step).
    pub fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.host.poll_at(now)
    }

    /// Tally the connections.
    pub fn stats(&mut self) -> StormStats {
        let mut st = StormStats::default();
        for &h in &self.sockets {
            match self.host.socket(h).state() {
                tcp::State::Established | tcp::State::CloseWait => st.established += 1,
                tcp::State::Closed => st.closed += 1,
                _ => st.pending += 1,
            }
        }
        st
    }
}

/// SYNs whose handshake never completes: each from its own address, one no host on
/// the fabric has, so the server's SYN-ACK is lost and nothing ever answers it (a
/// phone that left WiFi mid-handshake, or stray SYNs from a host that answers no ARP).
/// A burst of `burst` at `start`, then `per_second` of them for `sustain`.
pub struct SynFlood {
    device: SimDevice,
    server: IpEndpoint,
    /// Addresses 10.(n / 65 536).(n / 256).(n % 256) … are used in turn: no fabric host.
    next: u32,
    burst: u32,
    per_second: u32,
    start: SmolInstant,
    end: SmolInstant,
    sent: u32,
}

impl SynFlood {
    /// A flood sent through a device attached at `ip` (its own address is never a
    /// source) to `server`.
    pub fn new(
        fabric: &Fabric,
        ip: Ipv4Address,
        server: IpEndpoint,
        burst: u32,
        per_second: u32,
        start: SmolInstant,
        sustain: SmolDuration,
    ) -> Self {
        SynFlood {
            device: fabric.attach(ip),
            server,
            next: 1,
            burst,
            per_second,
            start,
            end: start + sustain,
            sent: 0,
        }
    }

    /// SYNs sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// How many SYNs are due by `now`.
    fn due(&self, now: SmolInstant) -> u32 {
        if now < self.start {
            return 0;
        }
        let until = if now < self.end { now } else { self.end };
        let ms = (until - self.start).total_millis();
        self.burst + (ms * u64::from(self.per_second) / 1000) as u32
    }

    fn send_syn(&mut self, now: SmolInstant) {
        let n = self.next;
        self.next += 1;
        let src = Ipv4Address::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8);
        let IpAddress::Ipv4(dst) = self.server.addr;
        let packet = crate::wire::syn(
            SocketAddrV4::new(src, 40_000 + (n % 20_000) as u16),
            SocketAddrV4::new(dst, self.server.port),
            n.wrapping_mul(2_654_435_761),
            64_240,
            1460,
        );
        if let Some(tx) = self.device.transmit(now) {
            tx.consume(packet.len(), |frame| frame.copy_from_slice(&packet));
            self.sent += 1;
        }
    }

    /// Send the SYNs due by `now`; drop whatever arrives (nothing should).
    pub fn step(&mut self, now: SmolInstant) {
        while self.device.receive(now).is_some() {}
        let due = self.due(now);
        while self.sent < due {
            self.send_syn(now);
        }
    }

    /// When the next SYN is due.
    pub fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        if now < self.start {
            return Some(self.start);
        }
        if now >= self.end || self.per_second == 0 {
            return None;
        }
        if self.sent < self.burst {
            return Some(now);
        }
        // The next of the sustained SYNs: the one numbered `sent - burst + 1`.
        let k = u64::from(self.sent - self.burst + 1);
        let at = self.start + SmolDuration::from_millis(k * 1000 / u64::from(self.per_second));
        Some(at.max(now))
    }
}
