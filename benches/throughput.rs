//! Bulk throughput over kernel TCP on 127.0.0.1: a netpool `Pool<StdStack>` against
//! the raw `StdStack`, in one process, runs alternating, and their ratio.
//!
//! ```text
//! cargo bench --bench throughput --features std                      # 256 MiB x 7 rounds
//! cargo bench --bench throughput --features std -- --quick           # 64 MiB x 5 rounds
//! cargo bench --bench throughput --features std -- --mib 256 --rounds 7 --chunk 1024 --json
//! ```
//!
//! Without `--bench` (which `cargo bench` passes), e.g. under `cargo test --benches`,
//! it moves 1 MiB once each way, as a smoke test.
//!
//! Each run opens one connection from the side under test (raw: `socket` + `connect`;
//! pool: `Pool::connect` + `poll`) to a peer thread (a blocking `std::net::TcpStream`
//! on a listener bound to 127.0.0.1:0), then moves `--mib` MiB in one direction:
//!
//! - **send**: the side under test writes `--chunk`-byte pieces (`send` /
//!   `write(.., push = true, ..)`), then closes; timed until the peer has read all of it;
//! - **receive**: the peer writes, the side under test reads into a `--chunk`-byte
//!   buffer (`receive` / `read`) until end of stream; timed until the last byte.
//!
//! Connection setup is not timed. Nothing blocks on the side under test: on
//! would-block it spins and retries, the same way in both modes (the data loop calls
//! no `poll`). Every round runs raw and pool in both directions, the order of raw and
//! pool alternating between rounds; the report gives the median MB/s (10^6 bytes per
//! second) of each, and pool / raw. Every run has a deadline ([`RUN_DEADLINE`]); only
//! 127.0.0.1 is ever used.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embedded_nal::TcpClientStack;
use netpool::stack::std_net::StdStack;
use netpool::{nb, Config, ConnError, ConnState, Duration, Instant, Pool};

/// No run may take longer than this (a stuck transfer fails the bench).
const RUN_DEADLINE: StdDuration = StdDuration::from_secs(60);

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Mode {
    Raw,
    Pool,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Dir {
    Send,
    Receive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Pool => "pool",
        }
    }
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Send => "send",
            Dir::Receive => "receive",
        }
    }
}

struct Opts {
    bytes: usize,
    rounds: usize,
    chunk: usize,
    json: bool,
    /// Positional arguments (criterion-style filters): run only if one is part of
    /// "throughput".
    filters: Vec<String>,
    /// `--bench` given (`cargo bench` passes it); without it, a 1 MiB smoke run.
    bench: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        bytes: 256 << 20,
        rounds: 7,
        chunk: 16 * 1024,
        json: false,
        filters: Vec::new(),
        bench: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str, max: usize| -> Result<usize, String> {
            let v: usize = args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))?;
            if v == 0 || v > max {
                return Err(format!("{name} must be 1..={max}"));
            }
            Ok(v)
        };
        match a.as_str() {
            "--mib" => o.bytes = num("--mib", 4096)? << 20,
            "--rounds" => o.rounds = num("--rounds", 50)?,
            "--chunk" => o.chunk = num("--chunk", 1 << 20)?,
            "--quick" => {
                o.bytes = 64 << 20;
                o.rounds = 5;
            }
            "--json" => o.json = true,
            "--bench" => o.bench = true,
            other if other.starts_with("--") => return Err(format!("unknown argument {other:?}")),
            filter => o.filters.push(filter.to_string()),
        }
    }
    if !o.bench {
        o.bytes = 1 << 20;
        o.rounds = 1;
    }
    Ok(o)
}

/// Spin-retry bookkeeping: fail once the run's deadline has passed.
struct Deadline(StdInstant);

impl Deadline {
    fn new() -> Self {
        Deadline(StdInstant::now() + RUN_DEADLINE)
    }
    fn check(&self, spins: &mut u32) -> Result<(), String> {
        *spins += 1;
        if *spins % 1024 == 0 && StdInstant::now() > self.0 {
            return Err(format!("run exceeded its deadline of {RUN_DEADLINE:?}"));
        }
        std::hint::spin_loop();
        Ok(())
    }
}

/// The peer: accepts one connection, then either reads everything (send runs; the
/// byte count goes back over `done`) or, once told to start, writes `bytes`.
fn spawn_peer(
    listener: TcpListener,
    dir: Dir,
    bytes: usize,
    chunk: usize,
) -> (mpsc::Sender<()>, mpsc::Receiver<Result<usize, String>>) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let result = (|| -> Result<usize, String> {
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let deadline = StdInstant::now() + RUN_DEADLINE;
            let mut stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if StdInstant::now() > deadline {
                            return Err("peer: no connection".into());
                        }
                        thread::sleep(StdDuration::from_millis(1));
                    }
                    Err(e) => return Err(format!("peer accept: {e}")),
                }
            };
            stream.set_nonblocking(false).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(RUN_DEADLINE))
                .and_then(|()| stream.set_write_timeout(Some(RUN_DEADLINE)))
                .map_err(|e| e.to_string())?;
            go_rx
                .recv_timeout(RUN_DEADLINE)
                .map_err(|e| format!("peer: {e}"))?;
            match dir {
                Dir::Send => sink(&mut stream),
                Dir::Receive => source(&mut stream, bytes, chunk),
            }
        })();
        let _ = done_tx.send(result);
    });
    (go_tx, done_rx)
}

fn sink(stream: &mut TcpStream) -> Result<usize, String> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("peer read: {e}")),
        }
    }
}

fn source(stream: &mut TcpStream, bytes: usize, chunk: usize) -> Result<usize, String> {
    let data = vec![0xa5u8; chunk.max(64 * 1024)];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(data.len());
        stream
            .write_all(&data[..n])
            .map_err(|e| format!("peer write: {e}"))?;
        left -= n;
    }
    Ok(bytes)
}

/// The side under test, either mode: connect, then move the bytes.
trait Side {
    fn connect(&mut self, remote: SocketAddr, deadline: &Deadline) -> Result<(), String>;
    /// `Ok(n)` bytes taken, `Ok(0)` would-block.
    fn send(&mut self, data: &[u8]) -> Result<usize, String>;
    /// `Ok(Some(n))` bytes read, `Ok(None)` would-block, `Err` on end of stream or error.
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, End>;
    fn close(&mut self);
}

enum End {
    Eof,
    Failed(String),
}

struct Raw {
    stack: StdStack,
    sock: Option<<StdStack as TcpClientStack>::TcpSocket>,
}

impl Side for Raw {
    fn connect(&mut self, remote: SocketAddr, deadline: &Deadline) -> Result<(), String> {
        let mut sock = self.stack.socket().map_err(|e| e.to_string())?;
        let mut spins = 0;
        loop {
            match self.stack.connect(&mut sock, remote) {
                Ok(()) => break,
                Err(nb::Error::WouldBlock) => deadline.check(&mut spins)?,
                Err(nb::Error::Other(e)) => return Err(format!("raw connect: {e}")),
            }
        }
        self.sock = Some(sock);
        Ok(())
    }
    fn send(&mut self, data: &[u8]) -> Result<usize, String> {
        let sock = self.sock.as_mut().ok_or("not connected")?;
        match self.stack.send(sock, data) {
            Ok(n) => Ok(n),
            Err(nb::Error::WouldBlock) => Ok(0),
            Err(nb::Error::Other(e)) => Err(format!("raw send: {e}")),
        }
    }
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, End> {
        let sock = self.sock.as_mut().ok_or(End::Failed("not connected".into()))?;
        match self.stack.receive(sock, buf) {
            Ok(0) => Err(End::Eof),
            Ok(n) => Ok(Some(n)),
            Err(nb::Error::WouldBlock) => Ok(None),
            Err(nb::Error::Other(e)) => Err(End::Failed(format!("raw receive: {e}"))),
        }
    }
    fn close(&mut self) {
        if let Some(s) = self.sock.take() {
            let _ = self.stack.close(s);
        }
    }
}

struct Pooled {
    pool: Pool<StdStack, 2, 1, 0>,
    handle: Option<netpool::ConnHandle>,
    now: Instant,
}

impl Side for Pooled {
    fn connect(&mut self, remote: SocketAddr, deadline: &Deadline) -> Result<(), String> {
        let h = self
            .pool
            .connect(remote, 0, Duration::from_secs(RUN_DEADLINE.as_secs()), self.now)
            .map_err(|e| format!("pool connect: {e}"))?;
        let mut spins = 0;
        loop {
            self.pool.poll(self.now);
            match self.pool.state(h) {
                Ok(ConnState::Connected) => break,
                Ok(ConnState::Connecting) => deadline.check(&mut spins)?,
                other => return Err(format!("pool connect: {other:?}")),
            }
        }
        self.handle = Some(h);
        Ok(())
    }
    fn send(&mut self, data: &[u8]) -> Result<usize, String> {
        let h = self.handle.ok_or("not connected")?;
        match self.pool.write(h, data, true, self.now) {
            Ok(n) => Ok(n),
            Err(nb::Error::WouldBlock) => Ok(0),
            Err(nb::Error::Other(e)) => Err(format!("pool write: {e}")),
        }
    }
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, End> {
        let h = self.handle.ok_or(End::Failed("not connected".into()))?;
        match self.pool.read(h, buf, self.now) {
            Ok(n) => Ok(Some(n)),
            Err(nb::Error::WouldBlock) => Ok(None),
            Err(nb::Error::Other(ConnError::PeerGone(_))) => Err(End::Eof),
            Err(nb::Error::Other(e)) => Err(End::Failed(format!("pool read: {e}"))),
        }
    }
    fn close(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.pool.close(h, self.now);
        }
    }
}

/// One timed transfer; returns seconds.
fn run_once(mode: Mode, dir: Dir, o: &Opts) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let remote = listener.local_addr().map_err(|e| e.to_string())?;
    assert!(remote.ip().is_loopback());
    let (go, done) = spawn_peer(listener, dir, o.bytes, o.chunk);
    let mut side: Box<dyn Side> = match mode {
        Mode::Raw => Box::new(Raw {
            stack: StdStack::loopback(),
            sock: None,
        }),
        Mode::Pool => Box::new(Pooled {
            pool: Pool::new(StdStack::loopback(), Config::new()),
            handle: None,
            now: Instant::ZERO,
        }),
    };
    let deadline = Deadline::new();
    side.connect(remote, &deadline)?;
    let mut spins = 0;
    let data = vec![0x5au8; o.chunk];
    let mut buf = vec![0u8; o.chunk];

    go.send(()).map_err(|_| "peer thread gone")?;
    let start = StdInstant::now();
    let secs = match dir {
        Dir::Send => {
            let mut left = o.bytes;
            while left > 0 {
                let n = left.min(o.chunk);
                match side.send(&data[..n])? {
                    0 => deadline.check(&mut spins)?,
                    taken => left -= taken,
                }
            }
            side.close();
            let got = done
                .recv_timeout(RUN_DEADLINE)
                .map_err(|e| format!("peer: {e}"))??;
            let secs = start.elapsed().as_secs_f64();
            if got != o.bytes {
                return Err(format!("peer read {got} bytes, expected {}", o.bytes));
            }
            secs
        }
        Dir::Receive => {
            let mut got = 0usize;
            loop {
                match side.receive(&mut buf) {
                    Ok(Some(n)) => got += n,
                    Ok(None) => deadline.check(&mut spins)?,
                    Err(End::Eof) => break,
                    Err(End::Failed(e)) => return Err(e),
                }
            }
            let secs = start.elapsed().as_secs_f64();
            side.close();
            done.recv_timeout(RUN_DEADLINE)
                .map_err(|e| format!("peer: {e}"))??;
            if got != o.bytes {
                return Err(format!("read {got} bytes, expected {}", o.bytes));
            }
            secs
        }
    };
    Ok(secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> ExitCode {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !o.filters.is_empty() && !o.filters.iter().any(|f| "throughput".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let mib = o.bytes >> 20;
    if !o.json {
        println!(
            "throughput over kernel TCP on 127.0.0.1: {mib} MiB per run, {}-byte chunks, {} rounds (+1 warm-up)",
            o.chunk, o.rounds
        );
    }
    // [dir][mode] -> MB/s per round
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for round in 0..=o.rounds {
        let order = if round % 2 == 0 {
            [Mode::Raw, Mode::Pool]
        } else {
            [Mode::Pool, Mode::Raw]
        };
        for dir in [Dir::Send, Dir::Receive] {
            for mode in order {
                let secs = match run_once(mode, dir, &o) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {} {}: {e}", dir.name(), mode.name());
                        return ExitCode::FAILURE;
                    }
                };
                let mbps = o.bytes as f64 / secs / 1e6;
                if round == 0 {
                    continue; // warm-up
                }
                if !o.json {
                    println!(
                        "  round {round}: {:<7} {:<4} {mbps:>9.1} MB/s",
                        dir.name(),
                        mode.name()
                    );
                }
                rates[dir as usize][mode as usize].push(mbps);
            }
        }
    }
    let mut results = Vec::new();
    for dir in [Dir::Send, Dir::Receive] {
        let raw = median(&mut rates[dir as usize][Mode::Raw as usize]);
        let pool = median(&mut rates[dir as usize][Mode::Pool as usize]);
        results.push((dir, raw, pool));
    }
    if o.json {
        println!(
            "{{\n  \"mib_per_run\": {mib},\n  \"chunk\": {},\n  \"rounds\": {},\n  \"unit\": \"MB/s (1e6 bytes/s), median\",\n  \"results\": [",
            o.chunk, o.rounds
        );
        for (i, (dir, raw, pool)) in results.iter().enumerate() {
            println!(
                "    {{\"direction\": \"{}\", \"raw\": {raw:.1}, \"pool\": {pool:.1}, \"ratio\": {:.3}}}{}",
                dir.name(),
                pool / raw,
                if i + 1 < results.len() { "," } else { "" }
            );
        }
        println!("  ]\n}}");
    } else {
        println!();
        println!(
            "{:<8} {:>12} {:>12} {:>9}",
            "", "raw MB/s", "pool MB/s", "pool/raw"
        );
        for (dir, raw, pool) in &results {
            println!("{:<8} {raw:>12.1} {pool:>12.1} {:>8.3}x", dir.name(), pool / raw);
        }
        println!("(medians of {} rounds; MB = 10^6 bytes)", o.rounds);
    }
    ExitCode::SUCCESS
}
