//! A tiny test harness for a target without `std`, unwinding or allocation: tests
//! are `fn(&mut Ctx) -> Outcome`; the `ensure!` macros print what failed (file, line,
//! both values) and return early, so one failure does not stop the other tests.

use core::fmt::{self, Write};

/// A test failed (its message is already printed).
#[derive(Debug)]
pub struct Fail;

/// The result of a test or of a helper that checks something.
pub type Outcome = Result<(), Fail>;

/// A test: its name and its body.
pub type Test = (&'static str, fn(&mut Ctx<'_>) -> Outcome);

/// Where a run reports, and what the platform can measure.
pub trait Console: Write {
    /// Prepare to measure the stack a test uses (e.g. paint the free stack).
    fn stack_reset(&mut self) {}
    /// Most bytes of stack used since [`stack_reset`](Self::stack_reset), if known.
    fn stack_peak(&mut self) -> Option<usize> {
        None
    }
}

/// What a test body gets: the console, for failure messages.
pub struct Ctx<'a> {
    out: &'a mut dyn Console,
}

impl Ctx<'_> {
    /// Print a failure at `file:line` and give the error to return.
    pub fn fail(&mut self, file: &str, line: u32, message: fmt::Arguments<'_>) -> Fail {
        let _ = write!(self.out, "\n    failed at {file}:{line}: {message}");
        Fail
    }
}

/// Check a condition; on failure print it and return `Err(Fail)` from the caller.
#[macro_export]
macro_rules! ensure {
    ($t:expr, $cond:expr $(,)?) => {
        if !$cond {
            return Err($t.fail(file!(), line!(), format_args!("{}", stringify!($cond))));
        }
    };
    ($t:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($t.fail(
                file!(),
                line!(),
                format_args!("{} ({})", stringify!($cond), format_args!($($msg)+)),
            ));
        }
    };
}

/// Check two values for equality; on failure print both and return `Err(Fail)`.
#[macro_export]
macro_rules! ensure_eq {
    (@ $t:expr, $left:expr, $right:expr, $note:expr) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    return Err($t.fail(
                        file!(),
                        line!(),
                        format_args!(
                            "{} == {}{}\n      left: {:?}\n     right: {:?}",
                            stringify!($left),
                            stringify!($right),
                            $crate::harness::Note($note),
                            l,
                            r
                        ),
                    ));
                }
            }
        }
    };
    ($t:expr, $left:expr, $right:expr $(,)?) => {
        $crate::ensure_eq!(@ $t, $left, $right, format_args!(""))
    };
    ($t:expr, $left:expr, $right:expr, $($msg:tt)+) => {
        $crate::ensure_eq!(@ $t, $left, $right, format_args!($($msg)+))
    };
}

/// An optional note after a failed check (empty when none was given).
pub struct Note<'a>(pub fmt::Arguments<'a>);

impl fmt::Display for Note<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_str() {
            Some("") => Ok(()),
            _ => write!(f, " ({})", self.0),
        }
    }
}

/// Totals of a run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests that passed.
    pub passed: u32,
    /// Tests that failed.
    pub failed: u32,
    /// Most stack any test used, if the platform measures it.
    pub stack_peak: Option<usize>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SELFTEST SUMMARY: {} passed, {} failed: {}",
            self.passed,
            self.failed,
            if self.failed == 0 { "PASS" } else { "FAIL" }
        )
    }
}

/// Run `tests` of `group`, printing one line per test (with the stack it used, if
/// the console measures it).
pub fn run_group(out: &mut dyn Console, group: &str, tests: &[Test], summary: &mut Summary) {
    for (name, body) in tests {
        let _ = write!(out, "test {group}::{name} ...");
        out.stack_reset();
        let outcome = body(&mut Ctx { out: &mut *out });
        let stack = out.stack_peak();
        if let Some(used) = stack {
            summary.stack_peak = Some(summary.stack_peak.unwrap_or(0).max(used));
        }
        match outcome {
            Ok(()) => {
                summary.passed += 1;
                let _ = write!(out, " ok");
            }
            Err(Fail) => {
                summary.failed += 1;
                let _ = write!(out, "\n    FAILED");
            }
        }
        match stack {
            Some(used) => {
                let _ = writeln!(out, " (stack {used} bytes)");
            }
            None => {
                let _ = writeln!(out);
            }
        }
    }
}
