//! Rules of the async driver that need the stack to misbehave on cue or time to be
//! exact: a failing acceptor, the yield after rejections in a row, a reset after a
//! failed graceful release, a connect the pool failed while it completed, and a task
//! woken when the reaper ends its connection. On the model in `model` (virtual time,
//! an executor that polls only woken tasks), so a lost wake-up fails a test and
//! nothing depends on real time.

mod model;

use std::cell::Cell;

use embedded_io_async::ErrorKind;
use model::{Acceptor, Clock, Connector, Exec, Net, Sock};
use netpool::asynch::{AcceptError, AsyncPool, Backlog, Timer};
use netpool::{
    CloseReason, Config, ConnError, ConnectError, Duration, ErrorClass, LinkState, ListenParams, RejectPolicy,
};

const PORT: u16 = 80;
/// Far enough that no test reaches it unless it means to.
const LONG: Duration = Duration::from_secs(600);

/// A clock at 0, the model stack and its acceptor.
fn world() -> (Clock, Net, Acceptor) {
    let net = Net::default();
    (Clock::default(), net.clone(), Acceptor(net))
}

fn listening_pool<const N: usize>(config: Config, cap: u8) -> AsyncPool<N> {
    let pool = AsyncPool::new(config);
    pool.listen(PORT, ListenParams::new(cap)).unwrap();
    pool
}

/// Accept a connection and hold it, then accept again until the test ends.
async fn hold_one_then_accept<const N: usize>(pool: &AsyncPool<N>, acceptor: &Acceptor, clock: &Clock) {
    let held = pool.accept(acceptor, PORT, clock, clock.now() + LONG).await;
    assert!(held.is_ok());
    let _ = pool.accept(acceptor, PORT, clock, clock.now() + LONG).await;
}

#[test]
fn a_fatal_accept_error_ends_the_accept_with_its_class_and_is_counted() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new(), 2);
    net.fail_accepts(&[ErrorKind::Other]);
    let outcome = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let r = pool.accept(&acceptor, PORT, &clock, clock.now() + LONG).await;
        outcome.set(Some(r.err()));
    });
    exec.run();
    assert_eq!(outcome.get(), Some(Some(AcceptError::Stack(ErrorClass::Fatal))));
    assert_eq!(net.accepts(), 1, "not retried");
    assert_eq!(pool.counters().accept_errors, 1);
}

#[test]
fn a_retry_class_accept_error_is_retried_after_a_short_pause_well_before_the_deadline() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new(), 2);
    // Would-block class: the acceptor had nothing after all.
    net.fail_accepts(&[ErrorKind::Interrupted]);
    let served = Cell::new(false);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let conn = pool.accept(&acceptor, PORT, &clock, clock.now() + LONG).await;
        served.set(conn.is_ok());
    });
    exec.run();
    assert_eq!(net.accepts(), 1);
    assert_eq!(pool.counters().accept_errors, 0, "a retry class is not an error");
    // The retry comes within 10 ms, not at the deadline.
    exec.advance(10);
    assert_eq!(net.accepts(), 2, "retried");
    net.syn(1);
    exec.run();
    assert!(served.get());
}

#[test]
fn a_retry_class_accept_error_never_waits_past_the_deadline() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new(), 2);
    net.fail_accepts(&[ErrorKind::Interrupted; 4]);
    let outcome = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        // A deadline nearer than the retry pause.
        let r = pool
            .accept(&acceptor, PORT, &clock, clock.now() + Duration::from_millis(4))
            .await;
        outcome.set(Some(r.err()));
    });
    exec.run();
    exec.advance(4);
    assert_eq!(outcome.get(), Some(Some(AcceptError::TimedOut)));
}

/// The task is woken (a yield) once per `accepts_per_poll` connections turned away in
/// a row, and not in between: other tasks run, and the loop is not slowed further.
#[test]
fn an_accept_yields_after_accepts_per_poll_rejections_in_a_row() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new().with_accepts_per_poll(2), 1);
    net.queue_syns(1..=7);
    let mut exec = Exec::new(&clock);
    // The first connection is served and held (a cap of 1); the next six are turned
    // away, then the accept waits for more.
    exec.spawn(hold_one_then_accept(&pool, &acceptor, &clock));
    exec.run();
    assert_eq!(pool.counters().rejected, 6);
    assert_eq!(net.aborted(), [2, 3, 4, 5, 6, 7], "each turned away with RST");
    // Six rejections, two in a row between yields: three self-wakes, no other.
    assert_eq!(exec.wakes(0), 3);
}

#[test]
fn an_accept_from_a_backlog_yields_after_accepts_per_poll_rejections_in_a_row() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new().with_accepts_per_poll(2), 1);
    let backlog: Backlog<Sock, 8> = Backlog::new(PORT, LONG);
    net.queue_syns(1..=7);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    exec.run();
    assert_eq!(backlog.waiting(), 7, "all seven parked before anyone takes one");
    exec.spawn(async {
        let held = pool.accept_from(&backlog, &clock, clock.now() + LONG).await;
        assert!(held.is_ok());
        let _ = pool.accept_from(&backlog, &clock, clock.now() + LONG).await;
        drop(held);
    });
    exec.run();
    assert_eq!(pool.counters().rejected, 6);
    assert_eq!(exec.wakes(1), 3);
}

#[test]
fn a_connection_turned_away_whose_graceful_close_fails_is_reset() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new().with_reject(RejectPolicy::Close), 1);
    net.queue_syns([1, 2]);
    let mut exec = Exec::new(&clock);
    exec.spawn(hold_one_then_accept(&pool, &acceptor, &clock));
    exec.run();
    assert_eq!(pool.counters().rejected, 1);
    assert_eq!(
        net.aborted(),
        Vec::<u32>::new(),
        "a close that worked is not followed by RST"
    );
    net.fail_closes();
    net.syn(3);
    exec.run();
    assert_eq!(pool.counters().rejected, 2);
    assert_eq!(net.aborted(), [3], "a close that failed is followed by RST");
}

#[test]
fn a_connect_the_pool_failed_is_not_handed_out_even_if_the_stack_completes_it() {
    let (clock, net) = (Clock::default(), Net::default());
    let connector = Connector(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    let outcome = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let remote = model::peer(9);
        let r = pool
            .connect(&connector, remote, 0, LinkState::Up, &clock, LONG)
            .await;
        outcome.set(Some(r.err()));
    });
    exec.run();
    assert_eq!(pool.free_slots(), 1, "connecting");
    // The link drops: the reaper fails the connect; in the same turn the stack
    // completes it.
    pool.set_link(LinkState::Down);
    assert_eq!(pool.reap(clock.now()), 1);
    net.complete_connects();
    exec.run();
    assert_eq!(
        outcome.get(),
        Some(Some(ConnectError::Stack(ErrorClass::NoRoute))),
        "the core's failure stands"
    );
    assert_eq!(pool.free_slots(), 2);
    assert_eq!(pool.counters().connect_failed, 1);
}

#[test]
fn a_reader_is_woken_when_the_reaper_ends_its_connection() {
    let (clock, net, acceptor) = world();
    let config = Config::new().with_idle_timeout(Some(Duration::from_secs(5)));
    let pool: AsyncPool<1> = listening_pool(config, 1);
    net.go_mute();
    net.queue_syns([1]);
    let outcome = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let mut conn = pool
            .accept(&acceptor, PORT, &clock, clock.now() + LONG)
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        outcome.set(Some(conn.read(&mut buf, &clock, clock.now() + LONG).await));
    });
    exec.run();
    assert_eq!(outcome.get(), None, "waiting for a byte");
    exec.advance(5_000);
    assert_eq!(pool.reap(clock.now()), 1, "idle");
    // Only the reaper's wake-up can make the reader run again.
    exec.run();
    assert_eq!(outcome.get(), Some(Err(ConnError::Closed(CloseReason::Idle))));
}

/// A `Conn` whose slot the pool freed (abandoned) and gave to a new connection is
/// stale: dropping it, or an error it meets, leaves the new connection alone.
#[test]
fn a_stale_connection_never_touches_the_connection_that_reused_its_slot() {
    let (clock, net, acceptor) = world();
    let config = Config::new()
        .with_idle_timeout(Some(Duration::from_secs(5)))
        .with_abandoned_after(Some(Duration::from_secs(10)));
    let pool: AsyncPool<1> = listening_pool(config, 1);
    net.queue_syns([1, 2]);
    let (old, new) = (Cell::new(None), Cell::new(None));
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let conn = pool
            .accept(&acceptor, PORT, &clock, clock.now() + LONG)
            .await
            .unwrap();
        old.set(Some(conn.handle()));
        // Held, never closed, for a long time.
        clock.at(clock.now() + LONG).await;
        drop(conn);
    });
    exec.run();
    let old = old.get().expect("served");
    exec.advance(5_000);
    assert_eq!(pool.reap(clock.now()), 1, "idle: ended, still held by its task");
    exec.advance(10_000);
    pool.reap(clock.now());
    assert_eq!(pool.free_slots(), 1, "abandoned: the slot is free again");
    exec.spawn(async {
        let mut conn = pool
            .accept(&acceptor, PORT, &clock, clock.now() + LONG)
            .await
            .unwrap();
        new.set(Some(conn.handle()));
        let mut buf = [0u8; 4];
        // Peer 2 sent its FIN: end of file, the new connection half-closed.
        let _ = conn.read(&mut buf, &clock, clock.now() + LONG).await;
        clock.at(clock.now() + LONG + LONG).await;
    });
    exec.run();
    let new = new.get().expect("served");
    assert_eq!(new.slot(), old.slot(), "the same slot, another generation");
    assert_ne!(new, old);
    // The old task gives up its `Conn` now: the new connection keeps its slot.
    exec.advance(LONG.as_millis());
    assert_eq!(pool.free_slots(), 0, "{}", pool.report(clock.now()));
}

#[test]
fn a_connection_reads_what_the_peer_sent_and_hands_its_writes_to_the_stack() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<1> = listening_pool(Config::new(), 1);
    net.queue_syns([1]);
    net.peer_sends(b"ping");
    let done = Cell::new(false);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let mut conn = pool
            .accept(&acceptor, PORT, &clock, clock.now() + LONG)
            .await
            .unwrap();
        assert_eq!(conn.remote(), Some(model::peer(1)));
        let mut buf = [0u8; 16];
        let n = conn.read(&mut buf, &clock, clock.now() + LONG).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(conn.write(b"pong", true, &clock, clock.now() + LONG).await, Ok(4));
        assert_eq!(conn.write_all(b"!\r\n", &clock, clock.now() + LONG).await, Ok(()));
        let r = pool.report(clock.now());
        assert_eq!((r.slots[0].bytes_in, r.slots[0].bytes_out), (4, 7));
        done.set(true);
    });
    exec.run();
    assert!(done.get());
    assert_eq!(net.written(), b"pong!\r\n");
}

/// A connect whose slot the pool freed and gave to another connection before the
/// connecting task ran again reports a timeout, never the other connection's reason.
#[test]
fn a_connect_whose_slot_moved_on_never_reports_another_connections_reason() {
    let (clock, net, _) = world();
    let connector = Connector(net.clone());
    let config = Config::new().with_abandoned_after(Some(Duration::from_secs(30)));
    let pool: AsyncPool<1> = AsyncPool::new(config);
    let first = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let r = pool
            .connect(&connector, model::peer(9), 0, LinkState::Up, &clock, LONG)
            .await;
        first.set(Some(r.err()));
    });
    exec.run();
    // The link drops: the reaper fails the connect (its task not run yet), and 30 s
    // later frees the slot it left ended.
    pool.set_link(LinkState::Down);
    pool.reap(clock.now());
    pool.set_link(LinkState::Up);
    clock.jump_to(30_000);
    pool.reap(clock.now());
    assert_eq!(pool.free_slots(), 1, "abandoned: free again");
    // Another connect takes the slot and fails for a reason of its own.
    let second = Cell::new(None);
    let mut other = Exec::new(&clock);
    other.spawn(async {
        let r = pool
            .connect(
                &connector,
                model::peer(8),
                0,
                LinkState::Up,
                &clock,
                Duration::from_secs(5),
            )
            .await;
        second.set(Some(r.err()));
    });
    other.run();
    pool.set_link(LinkState::Down);
    pool.reap(clock.now());
    other.run();
    assert_eq!(second.get(), Some(Some(ConnectError::Stack(ErrorClass::NoRoute))));
    // Now the first task runs: its own connection is gone.
    exec.run();
    assert_eq!(
        first.get(),
        Some(Some(ConnectError::Stack(ErrorClass::ConnectionTimedOut)))
    );
}

#[test]
fn the_async_report_gives_the_link_set_link_stored() {
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    let now = netpool::Instant::from_millis(0);
    assert_eq!(
        pool.report(now).link,
        netpool::LinkState::Unknown,
        "nothing told yet"
    );
    pool.set_link(netpool::LinkState::Down);
    assert_eq!(pool.report(now).link, netpool::LinkState::Down);
    pool.set_link(netpool::LinkState::Up);
    assert_eq!(pool.report(now).link, netpool::LinkState::Up);
}
