//! Instruction counts per operation, netpool against the raw stack, under callgrind.
//!
//! ```text
//! cargo bench --bench instructions                  # table
//! cargo bench --bench instructions -- --json        # JSON on stdout
//! cargo bench --bench instructions -- --check       # fail if netpool's own count exceeds a bound
//! cargo bench --bench instructions -- --json-out target/bench/instructions.json
//! cargo bench --bench instructions -- write1k      # only cases whose id contains "write1k"
//! ```
//!
//! Without `--bench` (which `cargo bench` passes), e.g. under `cargo test --benches`,
//! it only runs every scenario a few times natively, as a smoke test.
//!
//! Instruction counts do not depend on the machine's load or clock, so they can be
//! compared between runs and gated in CI; wall-clock timings are `benches/cost.rs`.
//!
//! How: run normally, this binary re-executes itself under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=netpool_bench_measured`
//! once per (operation, pool or raw). The child builds the scenario, runs
//! [`WARMUP`] untimed repetitions, then [`REPS`] repetitions in which only the
//! operation runs inside [`netpool_bench_measured`] (the preparation between them is
//! not collected). The count per operation is the collected total / `REPS`, less the
//! harness's own cost per call (measured the same way with an empty operation).
//! The same binary also prints `size_of` of pools (no valgrind needed).
//!
//! The scripted stack double keeps its state in fixed arrays (no hashing, no random
//! seed), so the counts repeat from run to run on one toolchain.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;

// netpool-testkit's scripted stack, compiled into this crate rather than linked from
// the kit: the raw-stack counts then have the same inlining as before the kit existed.
#[allow(dead_code)]
#[path = "../crates/netpool-testkit/src/scripted.rs"]
mod scripted;
mod support;

use support::{Case, Params, Scenario, Visit};

/// Measured repetitions per child run.
const REPS: u32 = 1000;
/// Untimed repetitions before them (lazy binding, first allocations).
const WARMUP: u32 = 16;
/// The function callgrind collects in.
const TOGGLE: &str = "netpool_bench_measured";

/// Generous upper bounds on netpool's own instructions per operation (pool minus raw)
/// for `--check`: three to four times what was measured when they were set (x86_64,
/// rustc 1.95: 393, 371, 375, 405, 111, 128), so only a real regression trips them.
const BOUNDS: &[(&str, f64)] = &[
    ("poll8/native", 1_500.0),
    ("poll8/plain", 1_200.0),
    ("accept/native", 1_500.0),
    ("accept/plain", 1_500.0),
    ("write1k/native", 400.0),
    ("write1k/plain", 400.0),
];

/// Everything collected runs inside this function, and only this.
#[no_mangle]
#[inline(never)]
pub fn netpool_bench_measured(op: &mut dyn FnMut()) {
    op();
}

// -------------------------------------------------------------------------------------
// Child: run one scenario
// -------------------------------------------------------------------------------------

fn run_scenario<S: Scenario>(reps: u32) {
    // A fresh stack before every operation: the pool and raw runs then see the same
    // heap, and the double's amortised costs cancel out of the difference.
    let mut s = S::new(Params { ops_per_stack: 1 });
    for _ in 0..WARMUP {
        s.prepare();
        s.op();
    }
    for _ in 0..reps {
        s.prepare();
        netpool_bench_measured(&mut || s.op());
    }
    s.prepare(); // checks the last result
}

struct Child<'a> {
    id: &'a str,
    side: &'a str,
    reps: u32,
    found: bool,
}

impl Visit for Child<'_> {
    fn case<P: Scenario, R: Scenario>(&mut self, case: Case) {
        if case.id != self.id {
            return;
        }
        self.found = true;
        match self.side {
            "pool" => run_scenario::<P>(self.reps),
            "raw" => run_scenario::<R>(self.reps),
            other => panic!("unknown side {other:?}"),
        }
    }
}

fn child(args: &[String]) -> ExitCode {
    let [id, side, reps] = args else {
        eprintln!("usage: --child ID pool|raw|empty REPS");
        return ExitCode::FAILURE;
    };
    let reps: u32 = reps.parse().expect("REPS");
    if id == "empty" {
        for _ in 0..WARMUP {
            netpool_bench_measured(&mut || {});
        }
        for _ in 0..reps {
            netpool_bench_measured(&mut || {});
        }
        return ExitCode::SUCCESS;
    }
    let mut c = Child {
        id,
        side,
        reps,
        found: false,
    };
    support::visit_all(&mut c);
    if !c.found {
        eprintln!("unknown case {id:?}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

// -------------------------------------------------------------------------------------
// Parent: run the children under callgrind
// -------------------------------------------------------------------------------------

struct Job {
    id: String,
    side: &'static str,
    reps: u32,
}

/// The collected instruction total of a callgrind output file.
fn parse_total(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    field("totals:")
        .or_else(|| field("summary:"))
        .ok_or_else(|| format!("{}: no totals: or summary: line", path.display()))
}

fn run_job(exe: &Path, out_dir: &Path, job: &Job) -> Result<u64, String> {
    let out = out_dir.join(format!("{}.{}.callgrind", job.id.replace('/', "-"), job.side));
    let _ = std::fs::remove_file(&out);
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("-q")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={TOGGLE}"))
        .arg(exe)
        .args(["--child", &job.id, job.side, &job.reps.to_string()])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{} {}: child failed ({}):\n{}",
            job.id,
            job.side,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse_total(&out)
}

/// Run every job, `workers` at a time (callgrind is single-threaded; counts do not
/// depend on what runs beside it).
fn run_jobs(exe: &Path, out_dir: &Path, jobs: &[Job]) -> Result<Vec<u64>, String> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Result<u64, String>>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("lock");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = jobs.get(i) else { break };
                let r = run_job(exe, out_dir, job);
                results.lock().expect("lock")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("lock")
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

struct Row {
    id: &'static str,
    what: &'static str,
    stack: &'static str,
    raw: f64,
    pool: f64,
}

impl Row {
    fn netpool(&self) -> f64 {
        self.pool - self.raw
    }
    fn ratio(&self) -> f64 {
        self.pool / self.raw
    }
}

struct Cases(Vec<Case>);

impl Visit for Cases {
    fn case<P: Scenario, R: Scenario>(&mut self, case: Case) {
        self.0.push(case);
    }
}

fn valgrind_version() -> Option<String> {
    let out = Command::new("valgrind").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Without `--bench` (`cargo test --benches`, or the binary run by hand): run every
/// scenario natively a few times, as a test that they work, and measure nothing.
fn smoke(filters: &[String]) -> ExitCode {
    struct Smoke<'a>(&'a [String], usize);
    impl Visit for Smoke<'_> {
        fn case<P: Scenario, R: Scenario>(&mut self, case: Case) {
            if selected(self.0, case.id) {
                run_scenario::<P>(50);
                run_scenario::<R>(50);
                self.1 += 1;
            }
        }
    }
    let mut s = Smoke(filters, 0);
    support::visit_all(&mut s);
    println!(
        "instructions: {} scenarios ran (smoke test; `cargo bench --bench instructions` counts)",
        s.1
    );
    ExitCode::SUCCESS
}

/// Whether a case runs: no filter, or its id contains one of them.
fn selected(filters: &[String], id: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        return child(&args[pos + 1..]);
    }
    let mut json = false;
    let mut check = false;
    let mut bench = false;
    let mut json_out = None;
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--check" => check = true,
            "--bench" => bench = true, // added by `cargo bench`
            "--json-out" => match it.next() {
                Some(path) => json_out = Some(PathBuf::from(path)),
                None => {
                    eprintln!("error: --json-out needs a path");
                    return ExitCode::FAILURE;
                }
            },
            flag if flag.starts_with("--") => {
                eprintln!("error: unknown option {flag} (--json, --json-out PATH, --check, FILTER...)");
                return ExitCode::FAILURE;
            }
            filter => filters.push(filter.to_string()),
        }
    }
    if !bench {
        return smoke(&filters);
    }

    let sizes = sizes::rows();
    let Some(valgrind) = valgrind_version() else {
        if !json {
            println!("{}", sizes::table(&sizes));
        }
        eprintln!("valgrind not found: no instruction counts (install it: apt-get install valgrind)");
        return if check {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    };

    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/deps/instructions-<hash> -> target/<profile>/callgrind/
    let out_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."))
        .join("callgrind");
    std::fs::create_dir_all(&out_dir).expect("create the callgrind output directory");

    let mut cases = Cases(Vec::new());
    support::visit_all(&mut cases);
    cases.0.retain(|c| selected(&filters, c.id));
    let mut jobs = vec![Job {
        id: "empty".into(),
        side: "empty",
        reps: REPS,
    }];
    for c in &cases.0 {
        for side in ["raw", "pool"] {
            jobs.push(Job {
                id: c.id.to_string(),
                side,
                reps: REPS,
            });
        }
    }
    let totals = match run_jobs(&exe, &out_dir, &jobs) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let per_op = |total: u64| total as f64 / f64::from(REPS);
    let overhead = per_op(totals[0]);
    let rows: Vec<Row> = cases
        .0
        .iter()
        .enumerate()
        .map(|(i, c)| Row {
            id: c.id,
            what: c.what,
            stack: c.stack,
            raw: per_op(totals[1 + 2 * i]) - overhead,
            pool: per_op(totals[2 + 2 * i]) - overhead,
        })
        .collect();

    let mut failures = Vec::new();
    for r in &rows {
        if let Some(&(_, bound)) = BOUNDS.iter().find(|(id, _)| *id == r.id) {
            if r.netpool() > bound {
                failures.push(format!(
                    "{}: netpool's own instructions {:.1} > bound {bound}",
                    r.id,
                    r.netpool()
                ));
            }
        }
    }

    let json_text = {
        let mut j = String::new();
        let _ = write!(
            j,
            "{{\n  \"tool\": {},\n  \"reps\": {REPS},\n  \"warmup\": {WARMUP},\n  \"harness_overhead_ir\": {overhead:.1},\n  \"cases\": [",
            json_str(&valgrind)
        );
        for (i, r) in rows.iter().enumerate() {
            let bound = BOUNDS
                .iter()
                .find(|(id, _)| *id == r.id)
                .map_or("null".to_string(), |b| format!("{:.1}", b.1));
            let _ = write!(
                j,
                "{}\n    {{\"id\": {}, \"what\": {}, \"stack\": {}, \"raw_ir\": {:.1}, \"pool_ir\": {:.1}, \"netpool_ir\": {:.1}, \"ratio\": {:.3}, \"bound_netpool_ir\": {bound}}}",
                if i == 0 { "" } else { "," },
                json_str(r.id),
                json_str(r.what),
                json_str(r.stack),
                r.raw,
                r.pool,
                r.netpool(),
                r.ratio()
            );
        }
        j.push_str("\n  ],\n  \"sizes\": [");
        for (i, s) in sizes.iter().enumerate() {
            let _ = write!(
                j,
                "{}\n    {{\"pool\": {}, \"socket\": {}, \"tx\": {}, \"bytes\": {}, \"per_slot\": {}, \"per_listener\": {}, \"fixed\": {}}}",
                if i == 0 { "" } else { "," },
                json_str(&s.pool),
                json_str(s.socket),
                s.tx,
                s.bytes,
                s.per_slot,
                s.per_listener,
                s.fixed
            );
        }
        j.push_str("\n  ]\n}\n");
        j
    };
    if let Some(path) = &json_out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(path, &json_text) {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }

    if json {
        print!("{json_text}");
    } else {
        println!(
            "netpool instruction counts ({valgrind}, callgrind Ir per operation: {REPS} reps after \
             {WARMUP} warm-up; harness overhead {overhead:.1} Ir/call subtracted)"
        );
        println!("native = scripted stack with every extension trait; plain = Plain<scripted> (fallbacks, TX = 256)");
        println!();
        println!(
            "{:<15} {:<6} {:<43} {:>10} {:>10} {:>10} {:>8}",
            "case", "stack", "operation", "raw Ir", "pool Ir", "netpool", "pool/raw"
        );
        for r in &rows {
            println!(
                "{:<15} {:<6} {:<43} {:>10.1} {:>10.1} {:>10.1} {:>7.2}x",
                r.id,
                r.stack,
                r.what,
                r.raw,
                r.pool,
                r.netpool(),
                r.ratio()
            );
        }
        println!();
        println!("netpool = pool Ir - raw Ir: netpool's own instructions (the raw column is the stack calls the pool makes, done by hand).");
        println!("callgrind output: {}", out_dir.display());
        println!();
        println!("{}", sizes::table(&sizes));
    }

    if check {
        if failures.is_empty() {
            eprintln!("check: every case within its bound ({} cases)", rows.len());
        } else {
            for f in &failures {
                eprintln!("check FAILED: {f}");
            }
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

// -------------------------------------------------------------------------------------
// size_of
// -------------------------------------------------------------------------------------

mod sizes {
    //! `size_of` of pools over a zero-sized stack whose socket handle is `H`, so the
    //! numbers are netpool's alone (on this host; 32-bit targets are smaller, see
    //! `benches/footprint.sh`).

    use std::fmt::Write as _;
    use std::marker::PhantomData;
    use std::mem::size_of;
    use std::net::SocketAddr;

    use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
    use netpool::stack::{
        LinkStatus, PcbDiagnostics, TcpAbort, TcpBacklog, TcpPeerStatus, TcpPush, TcpSendFlags, TcpSendQueue,
    };
    use netpool::{Classify, ErrorClass, Pool};

    /// A stack that only has a socket type; never called.
    pub struct HandleStack<H>(PhantomData<H>);

    #[derive(Debug)]
    pub struct Failed;

    impl TcpError for Failed {
        fn kind(&self) -> TcpErrorKind {
            TcpErrorKind::Other
        }
    }

    impl Classify for Failed {
        fn class(&self) -> ErrorClass {
            ErrorClass::Fatal
        }
    }

    impl<H> TcpClientStack for HandleStack<H> {
        type TcpSocket = H;
        type Error = Failed;
        fn socket(&mut self) -> Result<H, Failed> {
            Err(Failed)
        }
        fn connect(&mut self, _: &mut H, _: SocketAddr) -> nb::Result<(), Failed> {
            Err(nb::Error::WouldBlock)
        }
        fn send(&mut self, _: &mut H, _: &[u8]) -> nb::Result<usize, Failed> {
            Err(nb::Error::WouldBlock)
        }
        fn receive(&mut self, _: &mut H, _: &mut [u8]) -> nb::Result<usize, Failed> {
            Err(nb::Error::WouldBlock)
        }
        fn close(&mut self, _: H) -> Result<(), Failed> {
            Ok(())
        }
    }
    impl<H> TcpFullStack for HandleStack<H> {
        fn bind(&mut self, _: &mut H, _: u16) -> Result<(), Failed> {
            Ok(())
        }
        fn listen(&mut self, _: &mut H) -> Result<(), Failed> {
            Ok(())
        }
        fn accept(&mut self, _: &mut H) -> nb::Result<(H, SocketAddr), Failed> {
            Err(nb::Error::WouldBlock)
        }
    }
    impl<H> TcpAbort for HandleStack<H> {}
    impl<H> TcpSendFlags for HandleStack<H> {}
    impl<H> TcpPush for HandleStack<H> {}
    impl<H> TcpSendQueue for HandleStack<H> {}
    impl<H> TcpPeerStatus for HandleStack<H> {}
    impl<H> TcpBacklog for HandleStack<H> {}
    impl<H> PcbDiagnostics for HandleStack<H> {}
    impl<H> LinkStatus for HandleStack<H> {}

    pub struct SizeRow {
        pub pool: String,
        pub socket: &'static str,
        pub tx: usize,
        pub bytes: usize,
        pub per_slot: usize,
        pub per_listener: usize,
        pub fixed: usize,
    }

    fn row<H, const TX: usize>(socket: &'static str) -> SizeRow {
        type P<H, const N: usize, const L: usize, const TX: usize> = Pool<HandleStack<H>, N, L, TX>;
        let bytes = size_of::<P<H, 8, 2, TX>>();
        let per_slot = (size_of::<P<H, 16, 2, TX>>() - bytes) / 8;
        let per_listener = (size_of::<P<H, 8, 4, TX>>() - bytes) / 2;
        SizeRow {
            pool: format!("Pool<S, 8, 2, {TX}>"),
            socket,
            tx: TX,
            bytes,
            per_slot,
            per_listener,
            fixed: bytes - 8 * per_slot - 2 * per_listener,
        }
    }

    pub fn rows() -> Vec<SizeRow> {
        vec![
            row::<u8, 0>("u8"),
            row::<u32, 0>("u32"),
            row::<usize, 0>("usize"),
            row::<u8, 256>("u8"),
            row::<u32, 256>("u32"),
            row::<usize, 256>("usize"),
        ]
    }

    pub fn table(rows: &[SizeRow]) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "size_of on this host ({}-bit), over a zero-sized stack with socket handle S::TcpSocket:",
            usize::BITS
        );
        let _ = writeln!(
            t,
            "{:<20} {:<7} {:>7} {:>9} {:>13} {:>7}",
            "pool", "socket", "bytes", "per slot", "per listener", "fixed"
        );
        for r in rows {
            let _ = writeln!(
                t,
                "{:<20} {:<7} {:>7} {:>9} {:>13} {:>7}",
                r.pool, r.socket, r.bytes, r.per_slot, r.per_listener, r.fixed
            );
        }
        t
    }
}
