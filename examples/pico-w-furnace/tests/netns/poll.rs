//! Ordinary clients for the TAP tests' fault phases: one HTTP request per connection,
//! one attempt, its outcome classified (served, refused, reset, timed out, other), and
//! counted per window of a phase. Every loop is bounded by a count.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use netpool_testkit::http::parse_closed;
use socket2::SockRef;

/// What became of one request at its one attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A complete 200 response, on a connection made by the client's first SYN.
    Served,
    /// A complete 200 response, but the connection was made only by a retransmission
    /// of the client's SYN (the first went unanswered): not served at the first
    /// attempt, though the user got an answer, a second or more later.
    ServedAfterSynRetry,
    /// The connection was refused (RST to the SYN).
    Refused,
    /// The connection was reset (or aborted) before the whole response.
    Reset(String),
    /// No connection or no complete response within the client's timeouts.
    TimedOut(String),
    /// Anything else (a status not 200, a response cut short by a FIN...).
    Other(String),
}

/// Timeouts of one request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
}

impl Timeouts {
    /// The ordinary clients': 5 s to connect (the SYN and its retransmissions at 1 s
    /// and 3 s), 10 s for the response.
    pub const ORDINARY: Timeouts = Timeouts {
        connect: Duration::from_secs(5),
        read: Duration::from_secs(10),
    };
    /// Under packet loss: long enough for several retransmissions each way, so only a
    /// refusal or a reset fails a request.
    pub const LOSSY: Timeouts = Timeouts {
        connect: Duration::from_secs(30),
        read: Duration::from_secs(40),
    };
}

fn classify(what: &str, e: &std::io::Error) -> Outcome {
    let why = format!("{what}: {e}");
    match e.kind() {
        ErrorKind::ConnectionRefused => Outcome::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Outcome::Reset(why)
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::TimedOut(why),
        _ => Outcome::Other(why),
    }
}

/// One request on a new connection to `addr`: connect, send `request`, read to the
/// server's close, expect a 200. With `rst`, close with RST (SO_LINGER 0) afterwards,
/// as half of the bridge's pollers do.
pub fn get(addr: SocketAddr, request: &str, timeouts: Timeouts, rst: bool) -> Outcome {
    let mut s = match TcpStream::connect_timeout(&addr, timeouts.connect) {
        Ok(s) => s,
        Err(e) => return classify("connect", &e),
    };
    let syn_retried = retransmissions(&s) > 0;
    if let Err(e) = s.set_read_timeout(Some(timeouts.read)) {
        return Outcome::Other(format!("socket: {e}"));
    }
    let _ = s.set_write_timeout(Some(timeouts.read));
    if let Err(e) = s.write_all(request.as_bytes()) {
        return classify("send", &e);
    }
    let mut buf = Vec::new();
    if let Err(e) = s.read_to_end(&mut buf) {
        return classify(&format!("read after {} bytes", buf.len()), &e);
    }
    if rst {
        let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    drop(s);
    match parse_closed(&buf) {
        Ok(r) if r.status == 200 && syn_retried => Outcome::ServedAfterSynRetry,
        Ok(r) if r.status == 200 => Outcome::Served,
        Ok(r) => Outcome::Other(format!("status {}", r.status)),
        Err(e) => Outcome::Other(format!("response: {e}")),
    }
}

/// Segments the kernel retransmitted on `s` so far (`TCP_INFO`'s `tcpi_total_retrans`);
/// right after the connect, the SYN's retransmissions.
fn retransmissions(s: &TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt(2) into a zeroed tcp_info of the size passed.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        if r == 0 {
            info.tcpi_total_retrans
        } else {
            0
        }
    }
}

/// Outcomes counted.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Served at the first attempt.
    pub served: u64,
    /// Served, but connected only by a SYN retransmission.
    pub served_late: u64,
    pub refused: u64,
    pub reset: u64,
    pub timed_out: u64,
    pub other: u64,
    /// Why requests that were not served at the first attempt failed: examples, at
    /// most 8 of each kind.
    pub failures: Vec<String>,
}

impl Counts {
    pub fn add(&mut self, o: &Outcome) {
        let why = match o {
            Outcome::Served => {
                self.served += 1;
                return;
            }
            Outcome::ServedAfterSynRetry => {
                self.served_late += 1;
                "served, but only after a SYN retransmission".to_string()
            }
            Outcome::Refused => {
                self.refused += 1;
                "refused".to_string()
            }
            Outcome::Reset(w) => {
                self.reset += 1;
                format!("reset: {w}")
            }
            Outcome::TimedOut(w) => {
                self.timed_out += 1;
                format!("timed out: {w}")
            }
            Outcome::Other(w) => {
                self.other += 1;
                w.clone()
            }
        };
        self.keep(why);
    }

    /// Keep `why` among the examples: at most 8 of a kind (the text before the first
    /// colon), 40 in all.
    fn keep(&mut self, why: String) {
        let kind = |w: &str| w.split(':').next().unwrap_or("").to_string();
        let k = kind(&why);
        if self.failures.len() < 40 && self.failures.iter().filter(|f| kind(f) == k).count() < 8 {
            self.failures.push(why);
        }
    }

    pub fn merge(&mut self, o: &Counts) {
        self.served += o.served;
        self.served_late += o.served_late;
        self.refused += o.refused;
        self.reset += o.reset;
        self.timed_out += o.timed_out;
        self.other += o.other;
        for f in &o.failures {
            self.keep(f.clone());
        }
    }

    pub fn total(&self) -> u64 {
        self.served + self.served_late + self.refused + self.reset + self.timed_out + self.other
    }

    /// Served at the first attempt, in percent (100 when nothing was asked).
    pub fn served_pct(&self) -> f64 {
        if self.total() == 0 {
            100.0
        } else {
            self.served as f64 * 100.0 / self.total() as f64
        }
    }

    /// Served at all, at the first attempt or after a SYN retransmission.
    pub fn answered(&self) -> u64 {
        self.served + self.served_late
    }

    /// Whether at least `permille` ‰ were served at the first attempt (counts only).
    pub fn at_least(&self, permille: u64) -> bool {
        self.served * 1000 >= permille * self.total()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served at the first attempt {}/{} ({:.1} %), after a SYN retransmission {}, refused {}, reset {}, \
             timed out {}, other {}",
            self.served,
            self.total(),
            self.served_pct(),
            self.served_late,
            self.refused,
            self.reset,
            self.timed_out,
            self.other
        )
    }
}

/// Counts that pollers add to and a phase takes, window by window.
#[derive(Default)]
pub struct Tally(Mutex<Counts>);

impl Tally {
    pub fn add(&self, o: &Outcome) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).add(o);
    }

    /// The counts since the last take.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Pollers: `count` threads, each making one request (`request(poller)`) at every
/// tick of `period` (a tick missed while a request takes longer is skipped), at most
/// `rounds` each, until `stop` is set; outcomes go to `tally`. Released together;
/// returns when they are started.
pub struct Pollers {
    handles: Vec<thread::JoinHandle<u64>>,
    stop: Arc<AtomicBool>,
}

impl Pollers {
    pub fn start(
        count: usize,
        period: Duration,
        rounds: usize,
        tally: &Arc<Tally>,
        request: impl Fn(usize) -> Outcome + Send + Sync + 'static,
    ) -> Pollers {
        let stop = Arc::new(AtomicBool::new(false));
        let request = Arc::new(request);
        let go = Arc::new(Barrier::new(count + 1));
        let handles = (0..count)
            .map(|p| {
                let (tally, stop, request, go) = (tally.clone(), stop.clone(), request.clone(), go.clone());
                thread::spawn(move || {
                    go.wait();
                    let t0 = Instant::now();
                    let mut made = 0;
                    for _ in 0..rounds {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        tally.add(&request(p));
                        made += 1;
                        // The next tick of the schedule: ticks missed while a request
                        // took longer than a period are skipped, not made up in a burst.
                        let ticks = t0.elapsed().as_nanos() / period.as_nanos() + 1;
                        let next = t0 + period * ticks as u32;
                        thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                    made
                })
            })
            .collect();
        go.wait();
        Pollers { handles, stop }
    }

    /// Stop after the requests under way; the number of requests made.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.join()
    }

    /// Wait for every poller to make its rounds; the number of requests made.
    pub fn join(self) -> u64 {
        self.handles
            .into_iter()
            .map(|h| h.join().expect("poller thread"))
            .sum()
    }
}

/// `bursts` bursts of `burst` connections opened at once (`request(round, client)`),
/// a `pause` after each, beside one poller (`poll()`) every `pause` (at most
/// `max_polls`): the bursts' outcomes, then the poller's.
pub fn bursts_with_a_poller(
    bursts: usize,
    burst: usize,
    pause: Duration,
    max_polls: usize,
    request: impl Fn(usize, usize) -> Outcome + Send + Sync + 'static,
    poll: impl Fn() -> Outcome + Send + Sync + 'static,
) -> (Counts, Counts) {
    let polls = Arc::new(Tally::default());
    let poller = Pollers::start(1, pause, max_polls, &polls, move |_| poll());
    let request = Arc::new(request);
    let mut served = Counts::default();
    for round in 0..bursts {
        let start = Arc::new(Barrier::new(burst));
        let clients: Vec<_> = (0..burst)
            .map(|c| {
                let (start, request) = (start.clone(), request.clone());
                thread::spawn(move || {
                    start.wait();
                    request(round, c)
                })
            })
            .collect();
        for c in clients {
            served.add(&c.join().expect("client"));
        }
        thread::sleep(pause);
    }
    poller.finish();
    (served, polls.take())
}
