//! `lwip_server` on real lwIP 2.2 (netpool-lwip's bundled build) on the test kit's
//! simulated network: a burst beyond its slots is served, silent clients are answered
//! 408 at the deadline and the slots serve again, malformed requests get 405 and 400.
//! lwIP is one per process: one test.
#![cfg(feature = "lwip")]

mod common;

use common::{run, smol, Clients, SERVER};
use netpool_examples::lwip_server::{LwipServer, SLOTS};
use netpool_lwip::sim::LwipHost;
use netpool_lwip::LwipStack;
use netpool_testkit::sim::{test_net, to_netpool, Fabric, LinkConfig};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: device\r\n\r\n";

#[test]
fn serves_a_burst_answers_silent_clients_at_the_deadline_and_malformed_requests() {
    let fabric = Fabric::new(3, LinkConfig::default());
    let mut stack = LwipStack::new().expect("the process's lwIP");
    let mut host = LwipHost::attach(&fabric, test_net(SERVER), &mut stack);
    let mut server = LwipServer::new(stack).expect("listen");
    let mut step = |now| {
        host.ingress(server.stack_mut(), now);
        let again = server.poll(to_netpool(now));
        host.egress(now);
        smol(again)
    };

    let mut clients = Clients::new(&fabric, 20);
    for _ in 0..2 * SLOTS {
        clients.add(GET);
    }
    run(&fabric, &mut clients, &mut step);
    for i in 0..2 * SLOTS {
        assert_eq!(clients.status(i), "200", "burst client {i}");
    }

    // Silent clients hold every slot until the deadline, then get 408.
    let mut clients = Clients::new(&fabric, 21);
    for _ in 0..SLOTS {
        clients.add(b""); // connects, never asks
    }
    let took = run(&fabric, &mut clients, &mut step);
    for i in 0..SLOTS {
        assert_eq!(clients.status(i), "408", "silent client {i}");
    }
    assert!(
        took.total_millis() < 5_000,
        "408 at the 2 s deadline, not later: {took}"
    );

    // Then the slots serve again; malformed requests get their answers.
    let mut clients = Clients::new(&fabric, 22);
    clients.add(GET);
    clients.add(b"BREW /pot HTTP/1.1\r\n\r\n");
    clients.add(b"\x16\x03\x01\x02\x00\r\n\r\n");
    run(&fabric, &mut clients, &mut step);
    assert_eq!(clients.status(0), "200");
    assert_eq!(clients.status(1), "405");
    assert_eq!(clients.status(2), "400");
    assert_eq!(server.answered() as usize, 2 * SLOTS + SLOTS + 3);
    assert_eq!(server.pool().counters().rejected, 0, "nobody refused");
}
