//! Clients for the examples on the test kit's simulated network: each sends one
//! request and reads the response to the server's FIN, in virtual time.

use netpool_testkit::sim::{next_event, test_net, Fabric, PeerHost};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::IpEndpoint;

/// The server's address on the simulated network.
pub const SERVER: u8 = 1;
/// Longest virtual time a test runs.
pub const LIMIT_MS: i64 = 30_000;

/// One client's exchange.
pub struct Client {
    handle: SocketHandle,
    request: &'static [u8],
    sent: bool,
    /// The response read so far.
    pub response: Vec<u8>,
    /// The server closed (FIN) after its response, or reset.
    pub done: bool,
}

/// A host with clients, all to the server's port 80.
pub struct Clients {
    host: PeerHost,
    pub list: Vec<Client>,
}

impl Clients {
    pub fn new(fabric: &Fabric, n: u8) -> Self {
        Clients {
            host: PeerHost::new(fabric, test_net(n), u64::from(n), SmolInstant::ZERO),
            list: Vec::new(),
        }
    }

    /// A client that sends `request` once connected (an empty one sends nothing).
    pub fn add(&mut self, request: &'static [u8]) {
        let server = IpEndpoint::new(test_net(SERVER).into(), 80);
        let handle = self.host.connect(server, 4096, 1024).expect("connect");
        self.list.push(Client {
            handle,
            request,
            sent: false,
            response: Vec::new(),
            done: false,
        });
    }

    fn step(&mut self, now: SmolInstant) {
        self.host.poll(now);
        for c in &mut self.list {
            let s = self.host.socket(c.handle);
            if !c.sent && s.may_send() {
                s.send_slice(c.request).expect("request fits");
                c.sent = true;
            }
            while s.can_recv() {
                let _ = s.recv(|b| {
                    c.response.extend_from_slice(b);
                    (b.len(), ())
                });
            }
            if c.sent && (!s.may_recv() || s.state() == State::Closed) {
                s.close();
                c.done = true;
            }
        }
        self.host.poll(now);
    }

    fn all_done(&self) -> bool {
        self.list.iter().all(|c| c.done)
    }

    /// The status code of client `i`'s response.
    pub fn status(&self, i: usize) -> &str {
        let r = &self.list[i].response;
        std::str::from_utf8(r.get(9..12).unwrap_or(b"---")).unwrap_or("???")
    }
}

/// Run the server (`server(now)` returns when it wants to run again) and the clients
/// until every client is done or [`LIMIT_MS`]; returns the virtual time it took.
pub fn run(
    fabric: &Fabric,
    clients: &mut Clients,
    mut server: impl FnMut(SmolInstant) -> Option<SmolInstant>,
) -> SmolInstant {
    let mut now = SmolInstant::ZERO;
    while now.total_millis() < LIMIT_MS && !clients.all_done() {
        let wake = server(now);
        clients.step(now);
        let peer = clients.host.poll_at(now);
        now = next_event(
            now + smoltcp::time::Duration::from_millis(1),
            [wake, peer, fabric.next_delivery()],
            50,
        );
    }
    now
}

/// A server's wake-up on the simulation's clock.
pub fn smol(t: Option<netpool::Instant>) -> Option<SmolInstant> {
    t.map(|t| SmolInstant::from_millis(t.as_millis() as i64))
}
