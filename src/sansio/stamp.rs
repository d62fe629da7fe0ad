//! Compact, wrap-safe time stamps for the slot table.
//!
//! A slot keeps several times (opened, state change, last activity, last progress,
//! deadlines). Storing each as the caller's 64-bit [`Instant`] costs 8 bytes; a
//! [`Stamp`] keeps the low 32 bits of the millisecond count and compares with
//! wrapping arithmetic, so every comparison is right as long as the two times are
//! less than 2³¹ ms (24.8 days) apart. Timers longer than that are clamped to it,
//! and ages in reports wrap every 49.7 days.

use crate::time::{Duration, Instant};

/// The longest span a stamp comparison can represent (2³¹ − 1 ms, ≈ 24.8 days).
const MAX_SPAN_MS: u64 = i32::MAX as u64;

/// A point in time, as the low 32 bits of its millisecond count.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp(u32);

impl Stamp {
    pub const ZERO: Stamp = Stamp(0);

    /// The stamp of `t`.
    pub const fn of(t: Instant) -> Stamp {
        Stamp(t.as_millis() as u32)
    }

    /// Milliseconds from `self` to `now`: positive when `self` is in the past.
    const fn offset(self, now: Instant) -> i64 {
        Stamp::of(now).0.wrapping_sub(self.0) as i32 as i64
    }

    /// Whether `now` is at or after `self`.
    pub const fn reached(self, now: Instant) -> bool {
        self.offset(now) >= 0
    }

    /// Time from `self` to `now` (zero if `self` is in the future).
    pub const fn elapsed(self, now: Instant) -> Duration {
        let d = self.offset(now);
        Duration::from_millis(if d > 0 { d as u64 } else { 0 })
    }

    /// `self + d` (`d` clamped to the representable span).
    pub const fn plus(self, d: Duration) -> Stamp {
        let ms = d.as_millis();
        let ms = if ms > MAX_SPAN_MS { MAX_SPAN_MS } else { ms };
        Stamp(self.0.wrapping_add(ms as u32))
    }

    /// The full instant this stamp stands for, given a `now` within the span.
    pub const fn instant(self, now: Instant) -> Instant {
        let now_ms = now.as_millis() as i64;
        let t = now_ms - self.offset(now);
        Instant::from_millis(if t > 0 { t as u64 } else { 0 })
    }

    /// The later of two stamps.
    pub const fn later(self, other: Stamp) -> Stamp {
        if (other.0.wrapping_sub(self.0) as i32) > 0 {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_survive_the_32_bit_wrap() {
        let before = Instant::from_millis(u32::MAX as u64 - 10);
        let after = Instant::from_millis(u32::MAX as u64 + 20);
        let s = Stamp::of(before);
        assert!(s.reached(after));
        assert_eq!(s.elapsed(after), Duration::from_millis(30));
        let deadline = s.plus(Duration::from_millis(25));
        assert!(deadline.reached(after));
        assert!(!s.plus(Duration::from_millis(31)).reached(after));
        assert_eq!(
            deadline.instant(after),
            Instant::from_millis(u32::MAX as u64 + 15)
        );
        assert_eq!(Stamp::of(after).later(s), Stamp::of(after));
    }

    #[test]
    fn future_stamps_are_not_reached_and_have_no_age() {
        let now = Instant::from_millis(1_000);
        let s = Stamp::of(now).plus(Duration::from_secs(5));
        assert!(!s.reached(now));
        assert_eq!(s.elapsed(now), Duration::ZERO);
        assert_eq!(s.instant(now), Instant::from_millis(6_000));
    }

    #[test]
    fn very_long_timers_are_clamped_not_wrapped() {
        let now = Instant::from_millis(5);
        let s = Stamp::of(now).plus(Duration::from_secs(100 * 24 * 3600));
        assert!(!s.reached(now));
        assert!(s.reached(Instant::from_millis(5 + MAX_SPAN_MS)));
        // Not early either: a wrapped 100 days would end in under a day.
        assert!(!s.reached(Instant::from_millis(5 + 24 * 3600 * 1000)));
    }

    #[test]
    fn the_later_of_two_stamps_is_the_later_whichever_asks() {
        let (early, late) = (
            Stamp::of(Instant::from_millis(10)),
            Stamp::of(Instant::from_millis(20)),
        );
        assert_eq!(early.later(late), late);
        assert_eq!(late.later(early), late);
        assert_eq!(late.later(late), late);
    }
}
