//! Wall-clock cost per operation, netpool against the raw stack (criterion).
//!
//! ```text
//! cargo bench --bench cost                  # every case, then a table of medians
//! cargo bench --bench cost -- write1k       # cases whose id contains "write1k"
//! ```
//!
//! The same operations as `benches/instructions.rs` (`benches/support`): `poll` over
//! 8 idle connected slots, one accept, one 1 KiB write with push, each through a
//! `Pool` and by hand on the stack, on the scripted stack double with native traits
//! and behind `Plain`. For people: timings move with the machine and its load; the
//! numbers to compare across runs or gate on are the instruction counts.
//!
//! Each sample times batches of [`BATCH`] operations on as many independent scenarios
//! (so the untimed preparation between two operations of one scenario stays out of
//! the timing, and the timer's own cost is spread over the batch).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;

// netpool-testkit's scripted stack, compiled into this crate rather than linked from
// the kit: the raw-stack counts then have the same inlining as before the kit existed.
#[allow(dead_code)]
#[path = "../crates/netpool-testkit/src/scripted.rs"]
mod scripted;
mod support;

use support::{Case, Params, Scenario, Visit};

/// Operations per timed batch (one on each of this many scenarios).
const BATCH: usize = 16;
/// Accepts or writes on one stack before a scenario starts over (see `Params`).
const OPS_PER_STACK: u32 = 64;

fn time_batches<S: Scenario>(scenarios: &mut [S], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(scenarios.len() as u64) as usize;
        for s in &mut scenarios[..n] {
            s.prepare();
        }
        let start = Instant::now();
        for s in &mut scenarios[..n] {
            s.op();
        }
        total += start.elapsed();
        left -= n as u64;
        black_box(&mut *scenarios);
    }
    total
}

struct Register<'a> {
    c: &'a mut Criterion,
    ids: Vec<(&'static str, &'static str, &'static str)>,
}

impl Visit for Register<'_> {
    fn case<P: Scenario, R: Scenario>(&mut self, case: Case) {
        let params = Params {
            ops_per_stack: OPS_PER_STACK,
        };
        let mut group = self.c.benchmark_group(case.id);
        let mut raw: Vec<R> = (0..BATCH).map(|_| R::new(params)).collect();
        group.bench_function("raw", |b| b.iter_custom(|iters| time_batches(&mut raw, iters)));
        drop(raw);
        let mut pool: Vec<P> = (0..BATCH).map(|_| P::new(params)).collect();
        group.bench_function("pool", |b| b.iter_custom(|iters| time_batches(&mut pool, iters)));
        group.finish();
        self.ids.push((case.id, case.stack, case.what));
    }
}

/// Where criterion writes its results (its own rule: `CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `target/criterion`).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("criterion")
}

/// The median point estimate (ns) of one benchmark of this run, from criterion's
/// `estimates.json`.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    // criterion turns characters that are not allowed in paths (like '/') into '_'.
    let dir = criterion_home()
        .join(group.replace('/', "_"))
        .join(function)
        .join("new");
    let text = std::fs::read_to_string(dir.join("estimates.json")).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let started = std::time::SystemTime::now();
    let mut reg = Register {
        c: &mut c,
        ids: Vec::new(),
    };
    support::visit_all(&mut reg);
    let ids = reg.ids;
    c.final_summary();

    // A table of this run's medians (only benchmarks that ran just now).
    let fresh = |group: &str, function: &str| {
        let dir = criterion_home()
            .join(group.replace('/', "_"))
            .join(function)
            .join("new")
            .join("estimates.json");
        let modified = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
        (modified >= started)
            .then(|| median_ns(group, function))
            .flatten()
    };
    let rows: Vec<_> = ids
        .iter()
        .filter_map(|&(id, stack, what)| Some((id, stack, what, fresh(id, "raw")?, fresh(id, "pool")?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    println!();
    println!("medians (ns per operation; batches of {BATCH}):");
    println!(
        "{:<15} {:<6} {:<43} {:>9} {:>9} {:>9} {:>8}",
        "case", "stack", "operation", "raw", "pool", "netpool", "pool/raw"
    );
    for (id, stack, what, raw, pool) in rows {
        println!(
            "{id:<15} {stack:<6} {what:<43} {raw:>9.1} {pool:>9.1} {:>9.1} {:>7.2}x",
            pool - raw,
            pool / raw
        );
    }
}
