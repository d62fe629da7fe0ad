//! lwIP on netpool's in-memory network (feature `sim`): a network interface that
//! joins the one lwIP instance to a [`Fabric`], a packet capture for tests, and a
//! status server ([`LwipServer`]) that runs netpool's [`StatusServer`] on a pool over
//! [`LwipStack`].
//!
//! The interface carries bare IPv4 packets (no ethernet, no ARP), like the fabric:
//! lwIP's `netif->output` copies each outgoing pbuf chain into a `Vec` that
//! [`LwipHost::egress`] hands to the host's [`SimDevice`]; [`LwipHost::ingress`] gives
//! every packet due from the fabric to `ip_input` as a fresh pbuf, then runs lwIP's
//! timers. Everything is in virtual time: lwIP's `sys_now()` is the simulation clock.

use std::vec::Vec;

use netpool::{Config, ListenError, ListenParams, Pool};
use netpool_testkit::sim::{to_netpool, ClosePolicy, Fabric, Participant, SimDevice, StatusServer};
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket};

use crate::ffi;
use crate::stack::LwipStack;

use core::net::SocketAddrV4;

/// Most packets handed to lwIP in one [`LwipHost::ingress`] (a bound per step).
pub const MAX_PACKETS_PER_STEP: usize = 4096;

/// One TCP segment seen on the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Sent by lwIP (`true`) or received from the link.
    pub outbound: bool,
    /// Source.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack_number: u32,
    /// Flags.
    pub syn: bool,
    /// ...
    pub fin: bool,
    /// ...
    pub rst: bool,
    /// ...
    pub psh: bool,
    /// ...
    pub ack: bool,
    /// Advertised window.
    pub window: u16,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Segment {
    /// Parse an IPv4 packet carrying TCP (`None` for anything else).
    pub fn parse(packet: &[u8], outbound: bool) -> Option<Segment> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if ip.next_header() != IpProtocol::Tcp {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        Some(Segment {
            outbound,
            src: SocketAddrV4::new(ip.src_addr(), tcp.src_port()),
            dst: SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
            seq: tcp.seq_number().0 as u32,
            ack_number: tcp.ack_number().0 as u32,
            syn: tcp.syn(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            psh: tcp.psh(),
            ack: tcp.ack(),
            window: tcp.window_len(),
            payload: tcp.payload().to_vec(),
        })
    }
}

/// The host that runs lwIP: its device on the fabric and the lwIP network interface.
///
/// There is one lwIP per process, so one `LwipHost` at a time: [`attach`](Self::attach)
/// takes the [`LwipStack`] mutably to set the interface up on it.
pub struct LwipHost {
    device: SimDevice,
    ip: Ipv4Address,
    capture: Option<Vec<Segment>>,
    /// Packets lwIP's input refused (no memory...).
    pub input_errors: u64,
    /// Packets given to lwIP.
    pub packets_in: u64,
    /// Packets lwIP sent.
    pub packets_out: u64,
}

impl LwipHost {
    /// Attach lwIP to `fabric` at `ip` (/24, MTU 1500).
    pub fn attach(fabric: &Fabric, ip: Ipv4Address, stack: &mut LwipStack) -> Self {
        let _ = stack; // proof that lwIP is initialised and this thread owns it
        let device = fabric.attach(ip);
        ffi::netif_setup(ip, 24, 1500);
        LwipHost {
            device,
            ip,
            capture: None,
            input_errors: 0,
            packets_in: 0,
            packets_out: 0,
        }
    }

    /// The host's address.
    pub fn ip(&self) -> Ipv4Address {
        self.ip
    }

    /// Record every TCP segment in and out from now on (`false`: stop and forget).
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on.then(Vec::new);
    }

    /// The segments recorded since the last [`take_captured`](Self::take_captured).
    pub fn captured(&self) -> &[Segment] {
        self.capture.as_deref().unwrap_or_default()
    }

    /// The segments recorded since the last call.
    pub fn take_captured(&mut self) -> Vec<Segment> {
        self.capture.as_mut().map(core::mem::take).unwrap_or_default()
    }

    /// lwIP's view of the link (`netif_set_link_up/down`).
    pub fn set_link(&mut self, up: bool) {
        ffi::netif_set_link(up);
    }

    fn record(&mut self, packet: &[u8], outbound: bool) {
        if let Some(c) = self.capture.as_mut() {
            if let Some(s) = Segment::parse(packet, outbound) {
                c.push(s);
            }
        }
    }

    /// At `now`: advance lwIP's clock ([`LwipStack::poll`]), give it every packet due
    /// from the fabric, run its timers.
    pub fn ingress(&mut self, stack: &mut LwipStack, now: SmolInstant) {
        stack.poll(to_netpool(now));
        for _ in 0..MAX_PACKETS_PER_STEP {
            let Some((rx, _)) = self.device.receive(now) else {
                break;
            };
            let packet = rx.consume(|b| b.to_vec());
            self.record(&packet, false);
            self.packets_in += 1;
            if ffi::netif_input(&packet) != 0 {
                self.input_errors += 1;
            }
        }
        stack.check_timeouts();
    }

    /// Hand what lwIP sent to the fabric, stamped `now`.
    pub fn egress(&mut self, now: SmolInstant) {
        for packet in ffi::take_output() {
            self.record(&packet, true);
            self.packets_out += 1;
            if let Some(tx) = self.device.transmit(now) {
                tx.consume(packet.len(), |buf| buf.copy_from_slice(&packet));
            }
        }
    }

    /// When lwIP next needs [`ingress`](Self::ingress) besides packets arriving.
    pub fn wake_at(&self, stack: &LwipStack, now: SmolInstant) -> Option<SmolInstant> {
        stack
            .poll_at(to_netpool(now))
            .map(|t| SmolInstant::from_millis(t.as_millis() as i64))
    }
}

/// A status server on real lwIP: netpool's [`StatusServer`] application on a pool of
/// `N` slots over [`LwipStack`], listening on one port. The lwIP counterpart of
/// `netpool_testkit::sim::SimServer`.
pub struct LwipServer<const N: usize> {
    /// The pool (and through it the stack).
    pub pool: Pool<LwipStack, N, 1, 0>,
    /// The application.
    pub app: StatusServer,
    /// The network side.
    pub host: LwipHost,
}

impl<const N: usize> LwipServer<N> {
    /// A server at `ip` listening on `port`, at most `max_conns` connections on it.
    pub fn new(
        fabric: &Fabric,
        ip: Ipv4Address,
        port: u16,
        max_conns: u8,
        policy: ClosePolicy,
        config: Config,
        mut stack: LwipStack,
    ) -> Result<Self, ListenError> {
        let host = LwipHost::attach(fabric, ip, &mut stack);
        let mut pool = Pool::new(stack, config);
        pool.listen(port, ListenParams::new(max_conns))?;
        Ok(LwipServer {
            pool,
            app: StatusServer::new(policy, N),
            host,
        })
    }
}

impl<const N: usize> Participant for LwipServer<N> {
    fn step(&mut self, now: SmolInstant) {
        self.host.ingress(self.pool.stack_mut(), now);
        self.app.step(&mut self.pool, to_netpool(now));
        self.host.egress(now);
    }

    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        let pool = self
            .pool
            .poll_at()
            .map(|t| SmolInstant::from_millis(t.as_millis() as i64));
        [self.host.wake_at(self.pool.stack(), now), pool]
            .into_iter()
            .flatten()
            .min()
    }
}
