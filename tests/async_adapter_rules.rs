//! The async driver's own rules that the suite did not pin (issue 23, item 4): the
//! closer's two wake-ups and the generation check of a `Conn` whose slot moved on. On
//! the model in `model`, whose executor polls only woken tasks: a lost wake-up leaves
//! a task unpolled and fails the test (a hand-polled test with a no-op waker cannot
//! see one). Each test names the hand-made bug it kills.

mod model;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use model::{Acceptor, Clock, Exec, Net, Sock};
use netpool::asynch::{AsyncPool, Closer, Timer};
use netpool::{Config, ConnState, Duration, LinkState, ListenParams};

const PORT: u16 = 80;
/// Far enough that no test reaches it unless it means to.
const LONG: Duration = Duration::from_secs(600);

fn world() -> (Clock, Net, Acceptor) {
    let net = Net::default();
    (Clock::default(), net.clone(), Acceptor(net))
}

fn listening_pool<const N: usize>(config: Config, cap: u8) -> AsyncPool<N> {
    let pool = AsyncPool::new(config);
    pool.listen(PORT, ListenParams::new(cap)).unwrap();
    pool
}

/// Accept one connection and close it through `closer`; `done` once `close` returned.
async fn accept_and_close<const N: usize, const K: usize>(
    pool: &AsyncPool<N>,
    acceptor: &Acceptor,
    closer: &Closer<Sock, K>,
    clock: &Clock,
    done: &Cell<bool>,
) {
    let conn = pool
        .accept(acceptor, PORT, clock, clock.now() + LONG)
        .await
        .unwrap();
    conn.close(closer, clock).await;
    done.set(true);
}

/// Rule 3a: a socket handed to an idle closer starts closing with no other wake-up:
/// handing it over wakes the idle worker. The model's close finishes at once, so the
/// close is counted finished in the same run, with no time passing.
/// Kills: `Closer::offer` queueing the socket without waking an idle worker (the
/// worker would sleep until something else woke its task; on this executor, never).
#[test]
fn a_socket_handed_to_an_idle_closer_starts_closing_with_no_other_wake_up() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new(), 2);
    let closer: Closer<Sock, 1> = Closer::new();
    let closed = Cell::new(false);
    let mut exec = Exec::new(&clock);
    // The closer first, so its worker is idle (waiting for a socket) before any comes.
    exec.spawn(async {
        closer.run(&pool, &clock).await;
    });
    exec.run();
    assert_eq!(closer.closing(), 0);
    net.queue_syns([1]);
    exec.spawn(accept_and_close(&pool, &acceptor, &closer, &clock, &closed));
    exec.run();
    assert!(closed.get());
    let c = pool.closer_counters();
    assert_eq!(
        (c.handed, c.finished, c.reset, c.closing),
        (1, 1, 0, 0),
        "the worker never started: {c:?}"
    );
    assert_eq!(closer.closing(), 0);
    assert_eq!(exec.wakes(0), 1, "woken once, by the hand-over");
}

/// Rule 3b: a close that waits for a place in a full closer is woken when a place
/// frees, and is then handed over (not reset). K = 1: the first close takes the only
/// place before the closer runs; the second waits; the closer then finishes the first
/// and frees its place.
/// Kills: `Closer::release_place` not waking the closes waiting for a place (the
/// second close would wait for its deadline, then reset its connection).
#[test]
fn a_close_waiting_for_a_place_in_a_full_closer_is_woken_when_one_frees() {
    let (clock, net, acceptor) = world();
    let pool: AsyncPool<2> = listening_pool(Config::new(), 2);
    let closer: Closer<Sock, 1> = Closer::new();
    let (first, second) = (Cell::new(false), Cell::new(false));
    net.queue_syns([1, 2]);
    let mut exec = Exec::new(&clock);
    exec.spawn(accept_and_close(&pool, &acceptor, &closer, &clock, &first));
    exec.spawn(accept_and_close(&pool, &acceptor, &closer, &clock, &second));
    exec.run();
    assert!(first.get());
    assert!(!second.get(), "the only place is taken");
    let c = pool.closer_counters();
    assert_eq!((c.handed, c.waited), (1, 1));
    // The closer runs: it finishes the first close, and the place it frees wakes the
    // second (no time passes: no deadline can wake it).
    exec.spawn(async {
        closer.run(&pool, &clock).await;
    });
    exec.run();
    assert!(second.get(), "the waiting close was never woken");
    let c = pool.closer_counters();
    assert_eq!(
        (c.handed, c.finished, c.waited, c.overflow, c.reset, c.closing),
        (2, 2, 1, 0, 0, 0),
        "{c:?}"
    );
    assert!(net.aborted().is_empty(), "nothing reset");
}

// ------------------------------------------------------------------ rule 3c

/// A peer whose end of stream the test decides: reads wait until [`Peer::end`].
#[derive(Default)]
struct Peer {
    ended: Cell<bool>,
    reader: RefCell<Option<Waker>>,
}

impl Peer {
    fn end(&self) {
        self.ended.set(true);
        if let Some(w) = self.reader.borrow_mut().take() {
            w.wake();
        }
    }
}

/// A connection to a [`Peer`]: reads wait for its end of stream, writes are taken.
struct Held(Rc<Peer>);

impl ErrorType for Held {
    type Error = ErrorKind;
}

impl Read for Held {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, ErrorKind> {
        poll_fn(|cx| {
            if self.0.ended.get() {
                Poll::Ready(Ok(0))
            } else {
                *self.0.reader.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Write for Held {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

/// Outgoing connections, completed at once, to the peers given in order.
struct Peers(RefCell<VecDeque<Rc<Peer>>>);

impl embedded_nal_async::TcpConnect for Peers {
    type Error = ErrorKind;
    type Connection<'a> = Held;

    async fn connect(&self, _: SocketAddr) -> Result<Held, ErrorKind> {
        let peer = self.0.borrow_mut().pop_front().expect("a peer for each connect");
        Ok(Held(peer))
    }
}

fn remote() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 9], 8080))
}

/// Rule 3c: a `Conn` whose slot was freed (abandoned) and reused never changes the new
/// connection. Its read was waiting when the pool ended it, and its peer's end of
/// stream is what it finds when its task runs again — with the slot already given to
/// a new connection. The new connection stays Connected, with no event and no counter
/// moved.
/// Kills: the async read's end-of-stream path not checking the generation (it would
/// mark the new connection OtherEndClosed, with a PeerClosed event and `peer_closed`
/// counted).
#[test]
fn a_stale_conns_end_of_stream_never_changes_the_connection_that_reused_its_slot() {
    let clock = Clock::default();
    let config = Config::new()
        .with_idle_timeout(Some(Duration::from_secs(5)))
        .with_abandoned_after(Some(Duration::from_secs(10)));
    let pool: AsyncPool<1> = AsyncPool::new(config);
    let (old_peer, new_peer) = (Rc::new(Peer::default()), Rc::new(Peer::default()));
    let peers = Peers(RefCell::new(VecDeque::from([old_peer.clone(), new_peer.clone()])));
    let outcome = Cell::new(None);
    let mut exec = Exec::new(&clock);
    exec.spawn(async {
        let mut conn = pool
            .connect(&peers, remote(), 0, LinkState::Up, &clock, LONG)
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        let r = conn.read(&mut buf, &clock, clock.now() + LONG).await;
        outcome.set(Some(r));
    });
    exec.run();
    assert_eq!(outcome.get(), None, "reading, nothing yet");
    // The pool ends it (idle), then frees its slot (abandoned); its task has not run.
    clock.jump_to(5_000);
    assert_eq!(pool.reap(clock.now()), 1, "idle");
    clock.jump_to(15_000);
    pool.reap(clock.now());
    assert_eq!(pool.free_slots(), 1, "abandoned: free again");
    // A new connection takes the slot (in a task of its own, which holds it).
    let new = Cell::new(None);
    let mut other = Exec::new(&clock);
    other.spawn(async {
        let conn = pool
            .connect(&peers, remote(), 0, LinkState::Up, &clock, LONG)
            .await
            .unwrap();
        new.set(Some(conn.handle()));
        clock.at(clock.now() + LONG).await;
        drop(conn);
    });
    other.run();
    let new = new.get().expect("the new connection is open");
    assert_eq!(pool.free_slots(), 0);
    while pool.poll_event().is_some() {}
    let before = pool.counters();
    // The old peer's end of stream reaches the old task now.
    old_peer.end();
    exec.run();
    assert!(
        matches!(outcome.get(), Some(Err(_))),
        "the old read ends with an error: {:?}",
        outcome.get()
    );
    assert_eq!(pool.poll_event(), None, "no event for the new connection");
    assert_eq!(pool.counters(), before, "no counter moved");
    let report = pool.report(clock.now());
    assert_eq!(report.slots[new.slot()].state, ConnState::Connected);
}
