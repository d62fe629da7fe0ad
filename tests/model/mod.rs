//! A model for the async driver's tests: virtual time ([`Clock`]), a single-threaded
//! executor that polls only woken tasks ([`Exec`]: a lost wake-up stalls a test, a
//! task that keeps waking itself exceeds a bounded number of polls), and a stack
//! without a SYN queue (smoltcp's, through edge-nal-embassy: each `accept` in flight
//! is one socket in LISTEN that absorbs one SYN, and a SYN that finds none listening
//! is refused). Nothing here depends on real time.

#![allow(dead_code)] // each test file uses part of it

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{pending, poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use netpool::asynch::Timer;
use netpool::Instant;

// ------------------------------------------------------------------------- clock

#[derive(Default)]
pub struct ClockState {
    now_ms: Cell<u64>,
    timers: RefCell<Vec<(u64, Waker)>>,
}

/// Virtual time, moved only by [`Exec::advance`].
#[derive(Clone, Default)]
pub struct Clock(pub Rc<ClockState>);

impl Clock {
    /// Move the clock to `ms` without running anything (timers due then fire at the
    /// next [`Exec::advance`]).
    pub fn jump_to(&self, ms: u64) {
        self.0.now_ms.set(ms);
    }
}

impl Timer for Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.now_ms.get())
    }

    async fn at(&self, deadline: Instant) {
        poll_fn(|cx| {
            if self.0.now_ms.get() >= deadline.as_millis() {
                Poll::Ready(())
            } else {
                self.0
                    .timers
                    .borrow_mut()
                    .push((deadline.as_millis(), cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------- executor

/// A task's wake-up flag, and how many times it was woken.
pub struct Flag(AtomicBool, AtomicUsize);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

pub type Task<'t> = (Pin<Box<dyn Future<Output = ()> + 't>>, Arc<Flag>);

/// Polls only the tasks that were woken.
pub struct Exec<'t> {
    clock: Clock,
    tasks: Vec<Task<'t>>,
}

/// Polls in one `run` at most: more means some task keeps waking itself.
pub const MAX_POLLS: usize = 10_000;

impl<'t> Exec<'t> {
    pub fn new(clock: &Clock) -> Self {
        Exec {
            clock: clock.clone(),
            tasks: Vec::new(),
        }
    }

    pub fn spawn(&mut self, f: impl Future<Output = ()> + 't) {
        self.tasks.push((
            Box::pin(f),
            Arc::new(Flag(AtomicBool::new(true), AtomicUsize::new(0))),
        ));
    }

    /// How many times task `i` (in spawn order) was woken: by the stack, a timer, or
    /// itself (a yield).
    pub fn wakes(&self, i: usize) -> usize {
        self.tasks[i].1 .1.load(Ordering::SeqCst)
    }

    /// Poll woken tasks until none is.
    pub fn run(&mut self) {
        for _ in 0..MAX_POLLS {
            let Some((task, flag)) = self
                .tasks
                .iter_mut()
                .find(|(_, f)| f.0.swap(false, Ordering::SeqCst))
            else {
                return;
            };
            let waker = Waker::from(flag.clone());
            let _ = task.as_mut().poll(&mut Context::from_waker(&waker));
        }
        panic!("{MAX_POLLS} polls without settling: a task spins");
    }

    /// Move the clock forward by `ms`, waking the timers due, and run.
    pub fn advance(&mut self, ms: u64) {
        let state = &self.clock.0;
        state.now_ms.set(state.now_ms.get() + ms);
        let now = state.now_ms.get();
        let due: Vec<Waker> = {
            let mut timers = state.timers.borrow_mut();
            let (due, later) = timers.drain(..).partition(|(at, _)| *at <= now);
            *timers = later;
            due.into_iter().map(|(_, w)| w).collect()
        };
        for w in due {
            w.wake();
        }
        self.run();
    }
}

// ------------------------------------------------------------------------- stack

/// One `accept` in flight: a socket in LISTEN, or one that took a SYN.
pub struct Listening {
    key: u64,
    got: Option<u32>,
    waker: Option<Waker>,
}

#[derive(Default)]
pub struct NetState {
    listening: RefCell<Vec<Listening>>,
    next_key: Cell<u64>,
    /// `accept` calls so far.
    accepts: Cell<u32>,
    refused: RefCell<Vec<u32>>,
    aborted: RefCell<Vec<u32>>,
    /// Errors the next `accept` calls return, in order, before any SYN is taken.
    accept_errors: RefCell<VecDeque<ErrorKind>>,
    /// Reads wait forever (a peer that sends nothing) instead of reading end of file.
    mute: Cell<bool>,
    /// Connections already waiting, taken by the next `accept` calls at once (a stack
    /// with a SYN queue).
    queued: RefCell<VecDeque<u32>>,
    /// Graceful closes fail.
    closes_fail: Cell<bool>,
    /// Outgoing connects complete (else they wait), and who waits for that.
    connects_open: Cell<bool>,
    connect_waiters: RefCell<Vec<Waker>>,
    /// What peers sent, read by the next reads.
    inbox: RefCell<VecDeque<u8>>,
    /// What the server wrote, every connection together.
    written: RefCell<Vec<u8>>,
}

/// The stack: connections arrive with [`Net::syn`].
#[derive(Clone, Default)]
pub struct Net(pub Rc<NetState>);

impl Net {
    /// A SYN from peer `id`: taken by the first socket in LISTEN, or refused.
    pub fn syn(&self, id: u32) {
        let mut listening = self.0.listening.borrow_mut();
        match listening.iter_mut().find(|l| l.got.is_none()) {
            Some(l) => {
                l.got = Some(id);
                if let Some(w) = l.waker.take() {
                    w.wake();
                }
            }
            None => self.0.refused.borrow_mut().push(id),
        }
    }

    /// Sockets in LISTEN now.
    pub fn listening(&self) -> usize {
        self.0
            .listening
            .borrow()
            .iter()
            .filter(|l| l.got.is_none())
            .count()
    }

    /// Peers `ids` are waiting already: the next `accept` calls take them at once.
    pub fn queue_syns(&self, ids: impl IntoIterator<Item = u32>) {
        self.0.queued.borrow_mut().extend(ids);
    }

    /// Graceful closes fail from now on.
    pub fn fail_closes(&self) {
        self.0.closes_fail.set(true);
    }

    /// Outgoing connects under way complete now, and later ones at once.
    pub fn complete_connects(&self) {
        self.0.connects_open.set(true);
        for w in self.0.connect_waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// The next `accept` calls fail with `errors`, in order.
    pub fn fail_accepts(&self, errors: &[ErrorKind]) {
        self.0.accept_errors.borrow_mut().extend(errors.iter().copied());
    }

    /// `accept` calls so far.
    pub fn accepts(&self) -> u32 {
        self.0.accepts.get()
    }

    /// Peers send `data` (read by the next reads, whichever connection reads).
    pub fn peer_sends(&self, data: &[u8]) {
        self.0.inbox.borrow_mut().extend(data.iter().copied());
    }

    /// What the server wrote so far.
    pub fn written(&self) -> Vec<u8> {
        self.0.written.borrow().clone()
    }

    /// Peers send nothing: reads wait until something else ends them.
    pub fn go_mute(&self) {
        self.0.mute.set(true);
    }

    pub fn refused(&self) -> Vec<u32> {
        self.0.refused.borrow().clone()
    }

    pub fn aborted(&self) -> Vec<u32> {
        self.0.aborted.borrow().clone()
    }
}

/// An `accept` in flight; leaves LISTEN when dropped.
pub struct ListenGuard<'n> {
    net: &'n Net,
    key: u64,
}

impl Drop for ListenGuard<'_> {
    fn drop(&mut self) {
        self.net.0.listening.borrow_mut().retain(|l| l.key != self.key);
    }
}

pub struct Acceptor(pub Net);

impl edge_nal::TcpAccept for Acceptor {
    type Error = ErrorKind;
    type Socket<'a> = Sock;

    async fn accept(&self) -> Result<(SocketAddr, Sock), ErrorKind> {
        let net = &self.0;
        let key = net.0.next_key.get();
        net.0.next_key.set(key + 1);
        net.0.accepts.set(net.0.accepts.get() + 1);
        let failure = net.0.accept_errors.borrow_mut().pop_front();
        if let Some(e) = failure {
            return Err(e);
        }
        let queued = net.0.queued.borrow_mut().pop_front();
        if let Some(id) = queued {
            return Ok((peer(id), Sock { id, net: net.clone() }));
        }
        net.0.listening.borrow_mut().push(Listening {
            key,
            got: None,
            waker: None,
        });
        let _guard = ListenGuard { net, key };
        let id = poll_fn(|cx| {
            let mut listening = net.0.listening.borrow_mut();
            let l = listening.iter_mut().find(|l| l.key == key).expect("ours");
            match l.got {
                Some(id) => Poll::Ready(id),
                None => {
                    l.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        Ok((peer(id), Sock { id, net: net.clone() }))
    }
}

/// Peer `id`'s address.
pub fn peer(id: u32) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 40000 + id as u16))
}

/// Outgoing connections through the model stack: each waits until
/// [`Net::complete_connects`], then is peer 0.
pub struct Connector(pub Net);

impl embedded_nal_async::TcpConnect for Connector {
    type Error = ErrorKind;
    type Connection<'a> = Sock;

    async fn connect(&self, _: SocketAddr) -> Result<Sock, ErrorKind> {
        let net = &self.0;
        poll_fn(|cx| {
            if net.0.connects_open.get() {
                Poll::Ready(())
            } else {
                net.0.connect_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Ok(Sock {
            id: 0,
            net: net.clone(),
        })
    }
}

/// A connection from peer `id`.
pub struct Sock {
    pub id: u32,
    pub net: Net,
}

impl ErrorType for Sock {
    type Error = ErrorKind;
}

impl Read for Sock {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let n = {
            let mut inbox = self.net.0.inbox.borrow_mut();
            let n = buf.len().min(inbox.len());
            for (b, x) in buf.iter_mut().zip(inbox.drain(..n)) {
                *b = x;
            }
            n
        };
        if n > 0 {
            return Ok(n);
        }
        if self.net.0.mute.get() {
            pending::<()>().await;
        }
        Ok(0)
    }
}

impl Write for Sock {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.net.0.written.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl edge_nal::Readable for Sock {
    async fn readable(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl edge_nal::TcpShutdown for Sock {
    async fn close(&mut self, _: edge_nal::Close) -> Result<(), ErrorKind> {
        if self.net.0.closes_fail.get() {
            return Err(ErrorKind::ConnectionReset);
        }
        Ok(())
    }

    async fn abort(&mut self) -> Result<(), ErrorKind> {
        self.net.0.aborted.borrow_mut().push(self.id);
        Ok(())
    }
}

/// Both halves of a [`Sock`]: nothing to read, everything written taken.
pub struct Half;

impl ErrorType for Half {
    type Error = ErrorKind;
}

impl Read for Half {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, ErrorKind> {
        Ok(0)
    }
}

impl edge_nal::Readable for Half {
    async fn readable(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl Write for Half {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl edge_nal::TcpSplit for Sock {
    type Read<'a> = Half;
    type Write<'a> = Half;

    fn split(&mut self) -> (Half, Half) {
        (Half, Half)
    }
}
