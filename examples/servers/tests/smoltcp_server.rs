//! `smoltcp_server` on the test kit's simulated network: a burst beyond its slots is
//! served (the accept queue), a silent client is answered 408 at the deadline and
//! locks nobody out, a malformed request is 400.
#![cfg(feature = "smoltcp")]

mod common;

use common::{run, smol, Clients, SERVER};
use netpool_examples::smoltcp_server::{SmoltcpServer, SLOTS, SOCKETS};
use netpool_testkit::sim::{test_net, to_netpool, Fabric, LinkConfig};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

fn server(fabric: &Fabric) -> (SmoltcpServer<'static>, netpool_testkit::sim::SimDevice) {
    let mut device = fabric.attach(test_net(SERVER));
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, SmolInstant::ZERO);
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(test_net(SERVER)), 24));
    });
    let mut sockets = SocketSet::new(vec![]);
    for _ in 0..SOCKETS {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 1024]),
            tcp::SocketBuffer::new(vec![0; 1024]),
        );
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(10)));
        sockets.add(s);
    }
    (SmoltcpServer::new(iface, sockets).expect("listen"), device)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: device\r\n\r\n";

#[test]
fn a_burst_beyond_the_slots_is_served_whole() {
    let fabric = Fabric::new(1, LinkConfig::default());
    let (mut srv, mut dev) = server(&fabric);
    let mut clients = Clients::new(&fabric, 10);
    for _ in 0..2 * SLOTS {
        clients.add(GET);
    }
    run(&fabric, &mut clients, |now| {
        smol(srv.poll(to_netpool(now), &mut dev))
    });
    for i in 0..2 * SLOTS {
        assert_eq!(
            clients.status(i),
            "200",
            "client {i}: {:?}",
            String::from_utf8_lossy(&clients.list[i].response)
        );
    }
    assert!(clients.list[0].response.ends_with(b"\"slots\":4}"));
    assert_eq!(srv.answered() as usize, 2 * SLOTS);
    assert_eq!(srv.pool().counters().rejected, 0, "nobody refused");
}

#[test]
fn a_silent_client_gets_408_at_the_deadline_and_locks_nobody_out() {
    let fabric = Fabric::new(2, LinkConfig::default());
    let (mut srv, mut dev) = server(&fabric);
    let mut clients = Clients::new(&fabric, 11);
    for _ in 0..SLOTS {
        clients.add(b""); // connects, never asks
    }
    clients.add(GET);
    clients.add(b"BREW /pot HTTP/1.1\r\n\r\n");
    clients.add(b"\x16\x03\x01\x02\x00\r\n\r\n"); // a TLS hello on the HTTP port
    let took = run(&fabric, &mut clients, |now| {
        smol(srv.poll(to_netpool(now), &mut dev))
    });
    for i in 0..SLOTS {
        assert_eq!(clients.status(i), "408", "silent client {i}");
    }
    assert_eq!(
        clients.status(SLOTS),
        "200",
        "the ordinary client, behind the silent ones"
    );
    assert_eq!(clients.status(SLOTS + 1), "405");
    assert_eq!(clients.status(SLOTS + 2), "400");
    assert!(
        took.total_millis() < 5_000,
        "408 at the 2 s deadline, not later: {took}"
    );
}
