//! Fault scenarios on real TCP (smoltcp) over the in-memory network, in virtual
//! time. Deterministic: no wall clock, fixed seeds. Each ends by checking that no
//! slot leaked and that the error class was the expected one.

use netpool::{CloseReason, Config, ConnHandle, ConnState, Duration, ErrorClass, ListenParams, Pool};
use netpool_testkit::sim::{
    run, server, server_stack, smoltcp_stack, test_net, ClosePolicy, CloseStyle, Exhaustion, Fabric,
    HalfOpen, LinkConfig, Participant, PcbLimited, PeerHost, PollStats, Poller, PollerConfig, SimDevice,
    SimServer, Storm, SynFlood, Uploader,
};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as T;
use smoltcp::wire::IpEndpoint;

const PORT: u16 = 80;

fn ep() -> IpEndpoint {
    IpEndpoint::new(test_net(1).into(), PORT)
}

fn status_server(fabric: &Fabric, policy: ClosePolicy, exhaustion: Exhaustion) -> SimServer<10, 8> {
    SimServer::new(
        fabric,
        test_net(1),
        PORT,
        8,
        1,
        3,
        exhaustion,
        policy,
        Config::new(),
    )
}

fn poller(fabric: &Fabric, n: u8, period_ms: u64, close: CloseStyle) -> Poller {
    Poller::new(
        PeerHost::new(fabric, test_net(20 + n), 100 + u64::from(n), T::ZERO),
        PollerConfig {
            server: ep(),
            period_ms,
            first_at_ms: 100 + i64::from(n) * 7,
            timeout_ms: 5000,
            request: server::STATUS_REQUEST,
            response_len: server::RESPONSE_LEN,
            close,
        },
    )
}

/// A server that answers every request with `len` bytes of a counting pattern and
/// keeps writing until done; closes when done.
struct Download {
    pool: Pool<PcbLimited<'static, 10>, 8, 1, 256>,
    device: SimDevice,
    len: usize,
    sent: Vec<(ConnHandle, usize)>,
}

impl Download {
    fn new(fabric: &Fabric, len: usize, grace: Duration) -> Self {
        let (stack, device) = server_stack::<10>(fabric, test_net(1), 1, 3, Exhaustion::Refuse);
        let mut pool = Pool::new(stack, Config::new().with_stall_grace(grace));
        pool.listen(PORT, ListenParams::new(8)).unwrap();
        Download {
            pool,
            device,
            len,
            sent: Vec::new(),
        }
    }
}

impl Participant for Download {
    fn step(&mut self, now: T) {
        let at = netpool_testkit::sim::to_netpool(now);
        self.pool.stack_mut().poll(now, &mut self.device);
        self.pool.poll(at);
        while let Some(a) = self.pool.accept_next() {
            self.sent.push((a.handle, 0));
        }
        let len = self.len;
        for (h, sent) in &mut self.sent {
            let mut sink = [0u8; 256];
            let _ = self.pool.read(*h, &mut sink, at);
            while *sent < len {
                let chunk: Vec<u8> = (*sent..(*sent + 1024).min(len))
                    .map(|i| (i % 251) as u8)
                    .collect();
                match self.pool.write(*h, &chunk, true, at) {
                    Ok(n) => *sent += n,
                    Err(_) => break,
                }
            }
            if *sent == len {
                let _ = self.pool.close(*h, at);
            }
        }
        self.pool.stack_mut().poll(now, &mut self.device);
    }
    fn wake_at(&mut self, now: T) -> Option<T> {
        let pool = self.pool.poll_at().map(|t| T::from_millis(t.as_millis() as i64));
        [self.pool.stack_mut().poll_at(now), pool]
            .into_iter()
            .flatten()
            .min()
    }
}

#[test]
fn rst_right_after_the_response_frees_every_slot() {
    let fabric = Fabric::new(11, LinkConfig::default());
    let mut srv = status_server(&fabric, ClosePolicy::Immediate, Exhaustion::Lwip14);
    let mut pollers: Vec<Poller> = (0..4).map(|i| poller(&fabric, i, 100, CloseStyle::Rst)).collect();
    let end = {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv];
        all.extend(pollers.iter_mut().map(|p| p as &mut dyn Participant));
        run(&fabric, &mut all, T::ZERO, T::from_secs(10), 50)
    };
    for p in &mut pollers {
        p.stop();
    }
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv];
        all.extend(pollers.iter_mut().map(|p| p as &mut dyn Participant));
        run(
            &fabric,
            &mut all,
            end,
            end + smoltcp::time::Duration::from_secs(2),
            50,
        );
    }
    let mut polls = PollStats::default();
    pollers.iter().for_each(|p| polls.add(&p.stats()));
    assert!(polls.attempts > 300, "{polls:?}");
    assert_eq!(polls.failed(), 0, "{polls:?}");
    assert_eq!(
        srv.pool.free_slots(),
        8,
        "{}",
        srv.pool.report(netpool::Instant::ZERO)
    );
    assert_eq!(srv.pool.counters().accepted as u64, polls.attempts);
}

#[test]
fn half_open_peer_is_reaped_after_the_grace_and_a_slow_reader_is_not() {
    let fabric = Fabric::new(12, LinkConfig::default());
    let grace = Duration::from_secs(5);
    let mut srv = Download::new(&fabric, 2_000_000, grace);
    // Stops reading after 10 kB: its window closes, the server's queue fills.
    let mut stuck = HalfOpen::new(
        PeerHost::new(&fabric, test_net(30), 30, T::ZERO),
        ep(),
        b"GET /big\r\n\r\n",
        10_000,
        None,
    );
    // Reads 2 kB a second: slow, alive.
    let mut slow = HalfOpen::new(
        PeerHost::new(&fabric, test_net(31), 31, T::ZERO),
        ep(),
        b"GET /big\r\n\r\n",
        2_000,
        None,
    );
    let mut now = T::ZERO;
    for _ in 0..30 {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv, &mut stuck, &mut slow];
        now = run(
            &fabric,
            &mut all,
            now,
            now + smoltcp::time::Duration::from_secs(1),
            50,
        );
        slow.allow(2_000);
    }
    let c = srv.pool.counters();
    assert_eq!(
        c.reaped,
        1,
        "{}",
        srv.pool.report(netpool_testkit::sim::to_netpool(now))
    );
    assert_eq!(
        stuck.state(),
        Some(tcp::State::Closed),
        "the stuck client was not reset"
    );
    assert!(slow.read > 50_000, "slow reader starved: {}", slow.read);
    assert_eq!(
        slow.state(),
        Some(tcp::State::Established),
        "the slow reader was reaped"
    );
    let reasons: Vec<_> = srv
        .pool
        .report(netpool::Instant::ZERO)
        .slots
        .iter()
        .filter_map(|s| s.close_reason)
        .collect();
    assert!(reasons.contains(&CloseReason::Stalled), "{reasons:?}");
    assert_eq!(srv.pool.free_slots(), 7, "only the slow reader holds a slot");
}

#[test]
fn half_open_peer_that_vanishes_is_reaped() {
    let fabric = Fabric::new(13, LinkConfig::default());
    let mut srv = Download::new(&fabric, 2_000_000, Duration::from_secs(5));
    let mut gone = HalfOpen::new(
        PeerHost::new(&fabric, test_net(30), 30, T::ZERO),
        ep(),
        b"GET /big\r\n\r\n",
        4_000,
        Some(fabric.clone()),
    );
    let mut all: Vec<&mut dyn Participant> = vec![&mut srv, &mut gone];
    run(&fabric, &mut all, T::ZERO, T::from_secs(20), 50);
    assert_eq!(srv.pool.counters().reaped, 1);
    assert_eq!(srv.pool.free_slots(), 8);
    assert!(fabric.stats().link_down > 0);
}

#[test]
fn link_down_mid_connect_fails_by_the_deadline_without_blocking() {
    let fabric = Fabric::new(14, LinkConfig::default());
    let (stack, mut device) = server_stack::<4>(&fabric, test_net(1), 1, 2, Exhaustion::Refuse);
    let mut pool: Pool<PcbLimited<'static, 4>, 2, 1, 256> = Pool::new(stack, Config::new());
    let _peer = PeerHost::new(&fabric, test_net(40), 40, T::ZERO);
    // The path dies before the SYN gets anywhere; nothing tells the stack.
    fabric.set_link_up(test_net(40), false);
    let remote = std::net::SocketAddr::from(([192, 0, 2, 40], 8080));
    let h = pool
        .connect(remote, 0, Duration::from_secs(3), netpool::Instant::ZERO)
        .expect("connect starts");
    let mut polls = 0;
    let mut ms = 0u64;
    while pool.state(h) == Ok(ConnState::Connecting) && ms < 10_000 {
        ms += 10;
        pool.stack_mut().poll(T::from_millis(ms as i64), &mut device);
        pool.poll(netpool::Instant::from_millis(ms));
        polls += 1;
    }
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    assert_eq!(ms, 3000, "failed at {ms} ms, deadline 3000");
    assert_eq!(
        pool.report(netpool::Instant::from_millis(ms)).slots[h.slot()].close_reason,
        Some(CloseReason::ConnectTimeout)
    );
    assert_eq!(polls, 300);

    // With the link reported down, the next connect is refused at once, and one
    // under way fails at the next poll.
    let h2 = pool
        .connect(
            remote,
            0,
            Duration::from_secs(3),
            netpool::Instant::from_millis(ms),
        )
        .unwrap();
    pool.stack_mut().inner_mut().set_link(netpool::LinkState::Down);
    pool.poll(netpool::Instant::from_millis(ms + 1));
    assert_eq!(
        pool.report(netpool::Instant::from_millis(ms + 1)).slots[h2.slot()].close_reason,
        Some(CloseReason::ConnectFailed(ErrorClass::NoRoute))
    );
    assert_eq!(
        pool.connect(
            remote,
            0,
            Duration::from_secs(3),
            netpool::Instant::from_millis(ms + 2)
        ),
        Err(netpool::ConnectError::LinkDown)
    );
    pool.close(h, netpool::Instant::from_millis(ms + 2)).unwrap();
    pool.close(h2, netpool::Instant::from_millis(ms + 2)).unwrap();
    assert_eq!(pool.free_slots(), 2);
}

#[test]
fn accept_storm_of_ten_times_capacity_is_rejected_cleanly_and_the_pool_recovers() {
    let fabric = Fabric::new(15, LinkConfig::default());
    let mut srv = status_server(&fabric, ClosePolicy::Immediate, Exhaustion::Lwip2);
    // 80 connects against 8 slots, in waves of 10 every 50 ms; none sends a request,
    // so every served one keeps its slot.
    let mut storms = Vec::new();
    let mut now = T::ZERO;
    for wave in 0..8u8 {
        storms.push(Storm::fire(
            PeerHost::new(&fabric, test_net(50 + wave), 50, now),
            ep(),
            10,
            now,
        ));
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv];
        all.extend(storms.iter_mut().map(|s| s as &mut dyn Participant));
        now = run(
            &fabric,
            &mut all,
            now,
            now + smoltcp::time::Duration::from_millis(50),
            10,
        );
    }
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv];
        all.extend(storms.iter_mut().map(|s| s as &mut dyn Participant));
        now = run(
            &fabric,
            &mut all,
            now,
            now + smoltcp::time::Duration::from_secs(10),
            50,
        );
    }
    let c = srv.pool.counters();
    let (mut established, mut closed, mut pending) = (0, 0, 0);
    for s in &mut storms {
        let st = s.stats();
        (established, closed, pending) = (
            established + st.established,
            closed + st.closed,
            pending + st.pending,
        );
    }
    assert_eq!(c.accepted, 8, "{c}");
    assert!(c.rejected >= 8, "the pool never had to turn anyone away: {c}");
    assert_eq!(established, 8, "served");
    assert_eq!(closed, 72, "refused by the stack or rejected by the pool");
    assert_eq!(pending, 0, "connections left hanging");
    assert_eq!(
        srv.pool.stack().inner().counts().pending,
        0,
        "backlog not drained"
    );
    // The pool recovers: free the slots, a poller is served.
    for h in srv.pool.handles().collect::<Vec<_>>() {
        srv.pool.abort(h, netpool_testkit::sim::to_netpool(now)).unwrap();
    }
    let mut p = poller(&fabric, 1, 200, CloseStyle::Fin);
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv, &mut p];
        all.extend(storms.iter_mut().map(|s| s as &mut dyn Participant));
        run(
            &fabric,
            &mut all,
            now,
            now + smoltcp::time::Duration::from_secs(3),
            50,
        );
    }
    assert!(p.stats().ok >= 5, "{:?}", p.stats());
    assert_eq!(p.stats().failed(), 0);
}

#[test]
fn pcb_exhaustion_during_an_upload_does_not_kill_the_upload() {
    let fabric = Fabric::new(16, LinkConfig::default());
    let mut srv = status_server(&fabric, ClosePolicy::Immediate, Exhaustion::Lwip14);
    let mut up = Uploader::new(
        PeerHost::new(&fabric, test_net(10), 10, T::ZERO),
        ep(),
        T::from_millis(10),
        100_000,
        server::UPLOAD_HEADER,
    );
    let mut pollers: Vec<Poller> = (0..7).map(|i| poller(&fabric, i, 50, CloseStyle::Fin)).collect();
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv, &mut up];
        all.extend(pollers.iter_mut().map(|p| p as &mut dyn Participant));
        run(&fabric, &mut all, T::ZERO, T::from_secs(20), 50);
    }
    let pcb = srv.pool.stack().stats();
    assert!(pcb.reclaimed > 100, "no PCB pressure: {pcb:?}");
    assert_eq!(pcb.killed_live, 0, "{pcb:?}");
    assert!(up.alive(), "the upload died at {:?}", up.died_at());
    assert!(srv.app.stats().upload_bytes > 1_500_000, "{:?}", srv.app.stats());
}

#[test]
fn lingering_closes_exhaust_the_pool_where_immediate_closes_do_not() {
    let fabric = Fabric::new(17, LinkConfig::default());
    let policy = ClosePolicy::Lingering {
        max: Duration::from_secs(4),
        free_when_dead: false,
    };
    let mut srv = status_server(&fabric, policy, Exhaustion::Lwip14);
    let mut pollers: Vec<Poller> = (0..7).map(|i| poller(&fabric, i, 500, CloseStyle::Rst)).collect();
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv];
        all.extend(pollers.iter_mut().map(|p| p as &mut dyn Participant));
        run(&fabric, &mut all, T::ZERO, T::from_secs(20), 50);
    }
    let mut polls = PollStats::default();
    pollers.iter().for_each(|p| polls.add(&p.stats()));
    assert!(polls.failed() > 10, "{polls:?}");
    assert!(srv.pool.counters().rejected > 0, "{}", srv.pool.counters());
}

#[test]
fn transfer_under_fifteen_percent_loss_completes_with_exact_bytes() {
    let fabric = Fabric::new(
        18,
        LinkConfig {
            loss_ppm: 150_000,
            ..LinkConfig::default()
        },
    );
    let len = 100_000;
    let mut srv = Download::new(&fabric, len, Duration::from_secs(60));
    let mut client = HalfOpen::new(
        PeerHost::new(&fabric, test_net(60), 60, T::ZERO),
        ep(),
        b"GET /file\r\n\r\n",
        usize::MAX,
        None,
    )
    .keep_bytes();
    let mut all: Vec<&mut dyn Participant> = vec![&mut srv, &mut client];
    run(&fabric, &mut all, T::ZERO, T::from_secs(600), 50);
    assert!(fabric.stats().lost > 20, "{:?}", fabric.stats());
    assert_eq!(client.read, len, "bytes lost or duplicated");
    let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    assert!(client.received == expected, "content differs");
    assert_eq!(
        client.state(),
        Some(tcp::State::CloseWait),
        "the server's FIN did not arrive"
    );
    assert_eq!(srv.pool.free_slots(), 8);
    assert_eq!(srv.pool.counters().reaped, 0);
}

#[test]
fn a_killed_connection_reports_killed_and_its_socket_comes_back() {
    use embedded_nal::{nb, TcpClientStack};
    use netpool::Classify;
    use netpool_testkit::sim::PcbError;

    let fabric = Fabric::new(18, LinkConfig::default());
    let (mut stack, mut device) = server_stack::<2>(&fabric, test_net(1), 1, 1, Exhaustion::Lwip14);
    let _peer = PeerHost::new(&fabric, test_net(40), 40, T::ZERO);
    let remote = std::net::SocketAddr::from(([192, 0, 2, 40], 8080));
    // Two connects under way hold both PCBs.
    let mut a = stack.socket().unwrap();
    let mut b = stack.socket().unwrap();
    for s in [&mut a, &mut b] {
        assert!(matches!(stack.connect(s, remote), Err(nb::Error::WouldBlock)));
    }
    // A third socket: lwIP 1.4 kills the longest-inactive connection (the first).
    assert!(stack.socket().is_err(), "free only once the RST is out");
    assert_eq!(stack.stats().killed_live, 1);
    for r in [
        stack.connect(&mut a, remote).map(|_| 0),
        stack.send(&mut a, b"x"),
        stack.receive(&mut a, &mut [0; 4]),
    ] {
        match r {
            Err(nb::Error::Other(e)) => {
                assert_eq!(e, PcbError::Killed);
                assert_eq!(e.class(), ErrorClass::Aborted);
            }
            r => panic!("expected Killed, got {r:?}"),
        }
    }
    assert_eq!(stack.close(a), Err(PcbError::Killed));
    // The survivor is untouched, and the killed socket is free after the next poll.
    assert!(matches!(
        stack.connect(&mut b, remote),
        Err(nb::Error::WouldBlock)
    ));
    stack.poll(T::from_millis(1), &mut device);
    let c = stack.socket().expect("the killed socket is free again");
    assert_eq!(c.index(), a.index());
    assert_eq!(stack.stats().killed_live, 1);
}

/// The incident's load — 7 pollers every 250 ms, half closing with RST, all starting
/// at the same instant, and one upload — against the smoltcp backend as the ESP32-C3
/// image ships it (14 sockets, its defaults) with `reclaim`. Returns the polls' tally,
/// whether the upload is alive, and the stack's counters.
fn incident_on_smoltcp(
    reclaim: netpool::stack::smoltcp::Reclaim,
) -> (PollStats, bool, netpool::stack::PcbCounters) {
    incident_on_smoltcp_with(reclaim, None)
}

/// [`incident_on_smoltcp`], with half-open handshakes beside it when `flood` is
/// given: `(burst, per_second)` SYNs that never complete, the burst at 3 s, then the
/// rate for 10 s.
fn incident_on_smoltcp_with(
    reclaim: netpool::stack::smoltcp::Reclaim,
    flood: Option<(u32, u32)>,
) -> (PollStats, bool, netpool::stack::PcbCounters) {
    let fabric = Fabric::new(21, LinkConfig::default());
    let (stack, device) = smoltcp_stack::<14>(&fabric, test_net(1), 1);
    let mut srv: SimServer<14, 8, _> = SimServer::with_stack(
        stack.with_reclaim(reclaim),
        device,
        PORT,
        8,
        ClosePolicy::Immediate,
        Config::new(),
    );
    let mut up = Uploader::new(
        PeerHost::new(&fabric, test_net(10), 10, T::ZERO),
        ep(),
        T::from_millis(100),
        100_000,
        server::UPLOAD_HEADER,
    );
    let mut pollers: Vec<Poller> = (0..7)
        .map(|n| {
            let mut host = PeerHost::new(&fabric, test_net(20 + n), 100 + u64::from(n), T::ZERO);
            host.set_ack_delay_ms(200);
            Poller::new(
                host,
                PollerConfig {
                    server: ep(),
                    period_ms: 250,
                    // Together, and with the upload's SYN: a burst of 8.
                    first_at_ms: 100,
                    timeout_ms: 5000,
                    request: server::STATUS_REQUEST,
                    response_len: server::RESPONSE_LEN,
                    close: if n % 2 == 0 {
                        CloseStyle::Rst
                    } else {
                        CloseStyle::Fin
                    },
                },
            )
        })
        .collect();
    let mut syns = flood.map(|(burst, per_second)| {
        SynFlood::new(
            &fabric,
            test_net(30),
            ep(),
            burst,
            per_second,
            T::from_secs(3),
            smoltcp::time::Duration::from_secs(10),
        )
    });
    {
        let mut all: Vec<&mut dyn Participant> = vec![&mut srv, &mut up];
        all.extend(pollers.iter_mut().map(|p| p as &mut dyn Participant));
        if let Some(f) = syns.as_mut() {
            all.push(f);
        }
        run(&fabric, &mut all, T::ZERO, T::from_secs(30), 50);
    }
    if let (Some(f), Some((burst, per_second))) = (&syns, flood) {
        assert_eq!(f.sent(), burst + 10 * per_second, "the flood was sent");
    }
    let mut polls = PollStats::default();
    pollers.iter().for_each(|p| polls.add(&p.stats()));
    (polls, up.alive(), srv.pool.stack().pcb_counters())
}

#[test]
fn smoltcp_as_shipped_serves_every_poll_of_the_incident_load_at_the_first_attempt() {
    let (polls, upload_alive, pcbs) = incident_on_smoltcp(netpool::stack::smoltcp::Reclaim::Closing);
    assert!(polls.attempts > 700, "{polls:?}");
    assert_eq!(polls.ok, polls.attempts, "every poll served: {polls:?} {pcbs}");
    assert_eq!(polls.failed(), 0, "{polls:?}");
    assert!(upload_alive, "the upload died");
    // The server closes first, so its TIME-WAIT sockets are what carries the load.
    assert!(pcbs.reclaimed_time_wait > 100, "{pcbs}");
    assert_eq!(pcbs.unarmed_passes, 0, "{pcbs}");
}

#[test]
fn smoltcp_without_reclaim_refuses_the_incident_load() {
    // The same load on the backend that keeps every TIME-WAIT socket: refused polls.
    let (polls, _, pcbs) = incident_on_smoltcp(netpool::stack::smoltcp::Reclaim::Never);
    assert!(polls.refused > 0, "{polls:?}");
    assert_eq!(pcbs.reclaimed(), 0, "{pcbs}");
    assert!(pcbs.unarmed_passes > 0, "{pcbs}");
}

#[test]
fn half_open_handshakes_beside_the_incident_load_lock_no_poller_out() {
    // 3x the pool's 8 armed sockets at once, then 20 SYN/s for 10 s, none ever
    // completing, while the 7 pollers and the upload run.
    let (polls, upload_alive, pcbs) =
        incident_on_smoltcp_with(netpool::stack::smoltcp::Reclaim::Closing, Some((24, 20)));
    assert!(polls.attempts > 700, "{polls:?}");
    // At least 99.5 % served at the first attempt (in this deterministic run: all).
    assert!(
        polls.ok * 1000 >= polls.attempts * 995,
        "served {} of {}: {polls:?} {pcbs}",
        polls.ok,
        polls.attempts
    );
    assert!(upload_alive, "the upload died");
    eprintln!("half-open flood beside the incident: {polls:?} {pcbs}");
    // Most SYNs found a socket listening and the lease reset them; the rest (most of
    // the first burst, and those that came while the pool had no room) were refused
    // by the stack, as any client then is.
    assert!(
        pcbs.half_open_reclaimed() >= 112,
        "the lease reset the half-open sockets: {pcbs}"
    );
    assert!(pcbs.half_open_evicted > 0, "{pcbs}");
}
