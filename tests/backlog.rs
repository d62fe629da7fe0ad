//! The async driver's accept backlog ([`Backlog`], [`AsyncPool::accept_from`]) on
//! the model of a stack without a SYN queue in `model` (smoltcp's, through
//! edge-nal-embassy: each `accept` in flight is one socket in LISTEN that absorbs one
//! SYN, and a SYN that finds none listening is refused), in virtual time, on an
//! executor that polls only woken tasks: a lost wake-up stalls a test (it fails) and
//! a task that keeps waking itself exceeds a bounded number of polls (it fails).

mod model;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use model::{Acceptor, Clock, Exec, Net, Sock};
use netpool::asynch::{AcceptError, AsyncPool, Backlog, BacklogCounters, Timer, REARM};
use netpool::{Config, Duration, ListenParams};

const PORT: u16 = 80;

// ------------------------------------------------------------------------- tasks

/// What the serving tasks did: the peers they served, in order.
type Served = Rc<RefCell<Vec<u32>>>;

/// A serving task: take connections from `backlog` (each wait bounded by 60 s) and
/// hold each for `serve_ms`, `rounds` times.
async fn server<const N: usize, const K: usize>(
    pool: &AsyncPool<N>,
    backlog: &Backlog<Sock, K>,
    clock: &Clock,
    served: Served,
    serve_ms: u64,
    rounds: usize,
) {
    for _ in 0..rounds {
        let Ok(mut conn) = pool
            .accept_from(backlog, clock, clock.now() + Duration::from_secs(60))
            .await
        else {
            continue;
        };
        served.borrow_mut().push(conn.socket_mut().id);
        clock.at(clock.now() + Duration::from_millis(serve_ms)).await;
    }
}

fn counters<const N: usize>(pool: &AsyncPool<N>) -> BacklogCounters {
    pool.backlog_counters()
}

// ------------------------------------------------------------------------- tests

#[test]
fn a_burst_larger_than_the_serving_tasks_waits_and_is_served() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(2)).unwrap();
    let backlog: Backlog<Sock, 4> = Backlog::new(PORT, Duration::from_secs(1));
    let served = Served::default();
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    for _ in 0..2 {
        exec.spawn(server(&pool, &backlog, &clock, served.clone(), 100, 2));
    }
    exec.run();
    assert_eq!(net.listening(), 4, "the backlog keeps its 4 accepts armed");

    // A burst of 4 connections at once while 2 tasks serve: none refused.
    for id in 1..=4 {
        net.syn(id);
    }
    exec.run();
    assert_eq!(net.refused(), Vec::<u32>::new());
    assert_eq!(*served.borrow(), [1, 2], "the first two are served at once");
    assert_eq!(backlog.waiting(), 2, "the other two wait");
    // The workers whose connections were taken listen again; the waiting ones do not.
    assert_eq!(net.listening(), 2);
    // A fifth while two wait: a worker listening takes it.
    net.syn(5);
    exec.run();
    assert_eq!(net.refused(), Vec::<u32>::new());
    assert_eq!(backlog.waiting(), 3);

    // The tasks finish their first connections and take the oldest waiting ones.
    exec.advance(100);
    assert_eq!(*served.borrow(), [1, 2, 3, 4]);
    assert_eq!(backlog.waiting(), 1);
    let c = counters(&pool);
    assert_eq!((c.parked, c.served, c.refused, c.expired), (5, 4, 0, 0));
    // The burst was parked whole before the tasks ran.
    assert_eq!(c.high_water, 4);
    assert_eq!(pool.counters().accepted, 4);
    assert_eq!(net.aborted(), Vec::<u32>::new());
}

#[test]
fn without_a_backlog_a_burst_finds_only_the_idle_tasks_listening() {
    // The problem the backlog solves, on the same model: each task's accept is the
    // only socket listening for it.
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(2)).unwrap();
    let mut exec = Exec::new(&clock);
    for _ in 0..2 {
        exec.spawn(async {
            let deadline = clock.now() + Duration::from_secs(60);
            let conn = pool.accept(&acceptor, PORT, &clock, deadline).await;
            assert!(conn.is_ok());
            clock.at(clock.now() + Duration::from_secs(1)).await;
        });
    }
    exec.run();
    assert_eq!(net.listening(), 2);
    for id in 1..=4 {
        net.syn(id);
    }
    exec.run();
    assert_eq!(net.refused(), [3, 4]);
}

#[test]
fn a_connection_no_task_takes_is_released_at_the_wait_and_counted() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<1> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(1)).unwrap();
    let backlog: Backlog<Sock, 2> = Backlog::new(PORT, Duration::from_secs(1));
    let served = Served::default();
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    // One task, holding each connection for 5 s.
    exec.spawn(server(&pool, &backlog, &clock, served.clone(), 5_000, 2));
    exec.run();
    net.syn(1);
    net.syn(2);
    exec.run();
    assert_eq!(*served.borrow(), [1]);
    assert_eq!(backlog.waiting(), 1);
    exec.advance(999);
    assert_eq!(backlog.waiting(), 1, "not released before its wait");
    assert_eq!(net.aborted(), Vec::<u32>::new());
    exec.advance(1);
    assert_eq!(backlog.waiting(), 0);
    assert_eq!(net.aborted(), [2], "released with RST at its wait");
    assert_eq!(counters(&pool).expired, 1);
    assert_eq!(net.listening(), 2, "its worker listens again, beside the other");
    // A later connection is served when the task is free.
    exec.advance(4_000);
    net.syn(3);
    exec.run();
    assert_eq!(*served.borrow(), [1, 3]);
    let c = counters(&pool);
    assert_eq!((c.parked, c.served, c.expired), (3, 2, 1));
}

#[test]
fn admission_is_the_pools_when_a_task_takes_a_parked_connection() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    // A cap of 1 on the port, two tasks.
    pool.listen(PORT, ListenParams::new(1)).unwrap();
    let backlog: Backlog<Sock, 2> = Backlog::new(PORT, Duration::from_secs(10));
    let served = Served::default();
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    for _ in 0..2 {
        exec.spawn(server(&pool, &backlog, &clock, served.clone(), 1_000, 1));
    }
    exec.run();
    net.syn(1);
    exec.run();
    net.syn(2);
    exec.run();
    assert_eq!(*served.borrow(), [1]);
    assert_eq!(net.aborted(), [2], "over the port's cap: released at once");
    let c = counters(&pool);
    assert_eq!((c.parked, c.served, c.refused, c.expired), (2, 1, 1, 0));
    let pc = pool.counters();
    assert_eq!((pc.accepted, pc.rejected, pc.rejected_port_cap), (1, 1, 1));
}

#[test]
fn every_wait_has_a_deadline() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<1> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(1)).unwrap();
    let backlog: Backlog<Sock, 2> = Backlog::new(PORT, Duration::from_secs(1));
    let outcome = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    exec.spawn(async {
        let r = pool
            .accept_from(&backlog, &clock, clock.now() + Duration::from_millis(500))
            .await;
        outcome.set(Some(r.map(|_| ()).unwrap_err()));
    });
    exec.run();
    assert_eq!(net.accepts(), 2);
    exec.advance(499);
    assert_eq!(outcome.get(), None);
    exec.advance(1);
    assert_eq!(
        outcome.get(),
        Some(AcceptError::TimedOut),
        "a task's wait ends at its deadline"
    );
    // An armed accept is re-armed within REARM (the workers' first windows are
    // staggered), so none waits for ever on a handshake that never completes.
    exec.advance(REARM.as_millis());
    assert!(net.accepts() >= 4, "{} accepts", net.accepts());
    assert_eq!(net.listening(), 2, "still 2 listening after re-arming");
}

#[test]
fn more_tasks_waiting_than_backlog_places_are_all_served() {
    // Wakers for K tasks; a task beyond them looks again every 10 ms (bounded by its
    // deadline) rather than missing a connection or spinning.
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<3> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(3)).unwrap();
    let backlog: Backlog<Sock, 1> = Backlog::new(PORT, Duration::from_secs(1));
    let served = Served::default();
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    for _ in 0..3 {
        exec.spawn(server(&pool, &backlog, &clock, served.clone(), 1_000, 1));
    }
    exec.run();
    for id in 1..=3 {
        net.syn(id);
        for _ in 0..2 {
            exec.advance(10);
        }
    }
    assert_eq!(net.refused(), Vec::<u32>::new());
    let mut got = served.borrow().clone();
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(counters(&pool).served, 3);
}

#[test]
fn the_first_accept_windows_are_staggered_so_workers_rearm_apart() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(2)).unwrap();
    let backlog: Backlog<Sock, 2> = Backlog::new(PORT, Duration::from_secs(1));
    assert_eq!(backlog.wait(), Duration::from_secs(1));
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    exec.run();
    assert_eq!(net.accepts(), 2, "both armed");
    let half = REARM.as_millis() / 2;
    // Worker 0's first window is half of REARM, worker 1's the whole of it.
    exec.advance(half / 2);
    assert_eq!(net.accepts(), 2);
    exec.advance(half - half / 2);
    assert_eq!(net.accepts(), 3, "worker 0 re-armed at REARM / 2");
    exec.advance(half);
    assert_eq!(net.accepts(), 4, "worker 1 at REARM");
    exec.advance(half);
    assert_eq!(net.accepts(), 5, "worker 0 again, a whole REARM later");
}

#[test]
fn a_task_that_gave_up_waiting_leaves_its_place_to_the_next() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(2)).unwrap();
    // One waker place: one task waits woken by a park, more look every few ms.
    let backlog: Backlog<Sock, 1> = Backlog::new(PORT, Duration::from_secs(1));
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let first = pool
            .accept_from(&backlog, &clock, clock.now() + Duration::from_millis(100))
            .await;
        assert!(matches!(first, Err(AcceptError::TimedOut)));
        let second = pool
            .accept_from(&backlog, &clock, clock.now() + Duration::from_secs(60))
            .await;
        assert!(second.is_ok());
    });
    exec.run();
    exec.advance(100);
    let woken = exec.wakes(0);
    for _ in 0..10 {
        exec.advance(10);
    }
    assert_eq!(exec.wakes(0), woken, "the second wait has the place: no polling");
    exec.spawn(async {
        backlog.run(&pool, &acceptor, &clock).await;
    });
    exec.run();
    net.syn(1);
    exec.run();
    assert_eq!(pool.counters().accepted, 1);
}

#[test]
fn a_connection_parked_when_the_backlog_task_ends_is_released() {
    let (clock, net) = (Clock::default(), Net::default());
    let acceptor = Acceptor(net.clone());
    let pool: AsyncPool<2> = AsyncPool::new(Config::new());
    pool.listen(PORT, ListenParams::new(2)).unwrap();
    let backlog: Backlog<Sock, 2> = Backlog::new(PORT, Duration::from_secs(10));
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        // The backlog's task, ended after 1 s.
        let run = async {
            backlog.run(&pool, &acceptor, &clock).await;
        };
        futures_lite::future::or(run, clock.at(clock.now() + Duration::from_secs(1))).await;
    });
    exec.run();
    net.syn(1);
    exec.run();
    assert_eq!(backlog.waiting(), 1);
    exec.advance(1_000);
    assert_eq!(
        backlog.waiting(),
        0,
        "released with its worker, not left for a task"
    );
}
