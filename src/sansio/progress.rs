//! Dead-peer detection from send progress (sans-IO).
//!
//! A peer that vanished without FIN or RST leaves the connection looking healthy:
//! nothing fails, the bytes just stop moving. The reaper watches *progress*, never
//! application-level acknowledgements:
//!
//! - with [`TcpSendQueue`](crate::stack::TcpSendQueue), progress is a rise in the
//!   bytes the peer acknowledged (bytes handed to the stack minus its send queue);
//! - without it (the fallback), progress is the stack taking bytes at all.
//!
//! A connection is *stalled* when bytes are pending (in the stack's queue, in netpool's
//! coalescing buffer, or refused at the last write) and there has been no progress for
//! [`Config::stall_grace`](crate::Config::stall_grace). A slow peer that keeps
//! draining makes progress within every grace period and is never reaped.
//!
//! The watch is armed when bytes are handed over, buffered or refused, read at once
//! (the baseline) and then every `grace / 8` while armed (so a stack whose send-queue query is costly is not
//! asked on every poll; a reap comes at most `grace / 8` late, never early).
//! [`Pool::poll_at`](crate::Pool::poll_at) returns exactly the next reading. A
//! reading finds progress (the clock restarts), nothing pending (the watch is
//! disarmed), or a stall. Until the first reading shows whether the stack reports its
//! send queue, bytes handed over are not counted as progress.

use super::Stamp;
use crate::time::{Duration, Instant};

/// What a reading of a connection's send progress found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing pending: the watch is disarmed until bytes are handed over again.
    Idle,
    /// Bytes pending and progress within the grace.
    Alive,
    /// Bytes pending and no progress for the whole grace.
    Stalled,
}

/// Bits of [`SendProgress::bits`].
const BLOCKED: u8 = 1 << 0;
const ARMED: u8 = 1 << 1;
/// A reading showed the stack reports its send queue: progress is acknowledged bytes.
const MODE_ACKED: u8 = 1 << 2;
/// A reading showed it does not: progress is bytes the stack takes.
const MODE_TAKEN: u8 = 1 << 3;

/// Send-side progress of one connection (20 bytes on 32-bit targets).
///
/// Until a reading has set `MODE_ACKED` or `MODE_TAKEN`, nothing counts as progress.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SendProgress {
    /// Bytes the stack has taken from netpool (wrapping).
    handed: u32,
    /// Acknowledged byte count at the last reading (wrapping; send-queue stacks).
    acked: u32,
    /// Last time anything moved (or when the watch was armed).
    last_progress: Stamp,
    /// When the next reading is due (while armed).
    next_reading: Stamp,
    /// Bytes waiting in netpool's coalescing buffer: pending bytes too. Kept here, in
    /// the core's slot record, so the buffer itself is only the driver's `[u8; TX]`.
    pub buffered: u16,
    /// `BLOCKED`, `ARMED`, `MODE_ACKED`, `MODE_TAKEN`.
    bits: u8,
}

impl SendProgress {
    pub const fn new(now: Instant) -> Self {
        SendProgress {
            handed: 0,
            acked: 0,
            last_progress: Stamp::of(now),
            next_reading: Stamp::of(now),
            buffered: 0,
            bits: 0,
        }
    }

    fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }

    /// The last write could not hand over everything it was given.
    pub fn blocked(&self) -> bool {
        self.has(BLOCKED)
    }

    /// Time between readings: an eighth of the grace (at least 1 ms).
    fn step(grace: Duration) -> Duration {
        Duration::from_millis((grace.as_millis() / 8).max(1))
    }

    fn arm(&mut self, now: Instant) {
        if !self.has(ARMED) {
            self.set(ARMED, true);
            self.last_progress = Stamp::of(now);
            // The first reading at once: it sets the baseline of acknowledged bytes.
            self.next_reading = Stamp::of(now);
        }
    }

    /// The stack took `n` bytes. Progress only for stacks without a send queue:
    /// with one, a peer that acknowledges nothing is stalled however much is written.
    pub fn on_handed(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.handed = self.handed.wrapping_add(n as u32);
            self.arm(now);
            if self.has(MODE_TAKEN) {
                self.last_progress = Stamp::of(now);
            }
        }
    }

    /// Record whether the last write left bytes the stack refused.
    pub fn set_blocked(&mut self, blocked: bool, now: Instant) {
        self.set(BLOCKED, blocked);
        if blocked {
            self.arm(now);
        }
    }

    /// `n` bytes wait in netpool's coalescing buffer now: watch them if any.
    pub fn set_buffered(&mut self, n: usize, now: Instant) {
        self.buffered = n.min(u16::MAX as usize) as u16;
        if n > 0 {
            self.arm(now);
        }
    }

    /// When the next reading is due (`None`: nothing can be pending).
    pub fn deadline(&self) -> Option<Stamp> {
        self.has(ARMED).then_some(self.next_reading)
    }

    /// A reading with the next one an eighth of `grace` away (the unit tests' form).
    #[cfg(test)]
    pub fn observe(&mut self, queue: Option<usize>, now: Instant, grace: Duration) -> Verdict {
        self.observe_every(queue, now, grace, grace)
    }

    /// Take a reading. `queue` is the stack's send-queue depth if it can tell; bytes
    /// in netpool's coalescing buffer ([`buffered`](Self::buffered)) are pending too.
    /// Stalled when no progress for `grace`. The next reading is an eighth of `pace`
    /// away: the core reads at the pace of the pressure grace even before pressure
    /// comes, so that the time of the last progress is known that closely when it does.
    pub fn observe_every(
        &mut self,
        queue: Option<usize>,
        now: Instant,
        grace: Duration,
        pace: Duration,
    ) -> Verdict {
        let buffered = self.buffered > 0;
        let pending = match queue {
            Some(q) => {
                self.set(MODE_ACKED, true);
                self.set(MODE_TAKEN, false);
                let acked = self.handed.wrapping_sub(q as u32);
                if acked != self.acked {
                    self.acked = acked;
                    self.last_progress = Stamp::of(now);
                }
                q > 0 || buffered
            }
            None => {
                if !self.has(MODE_ACKED | MODE_TAKEN) && self.handed != 0 {
                    // The first reading of a stack without a send queue: what it took
                    // before counted.
                    self.last_progress = Stamp::of(now);
                }
                self.set(MODE_TAKEN, true);
                self.set(MODE_ACKED, false);
                buffered || self.blocked()
            }
        };
        if !pending {
            self.set(ARMED, false);
            return Verdict::Idle;
        }
        self.set(ARMED, true);
        self.next_reading = Stamp::of(now).plus(Self::step(pace));
        if self.last_progress.plus(grace).reached(now) {
            Verdict::Stalled
        } else {
            Verdict::Alive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    /// Read at every deadline up to `until` (as a pool sleeping until `poll_at`
    /// would); returns the time of the stall verdict, if any.
    fn drive(
        p: &mut SendProgress,
        mut queue: impl FnMut(Instant) -> Option<usize>,
        until: Instant,
    ) -> Option<Instant> {
        let mut now = at(0);
        let mut readings = 0u32;
        while let Some(d) = p.deadline() {
            // Each reading moves the next one on: the watch never spins.
            readings += 1;
            assert!(readings < 100_000, "the readings stopped moving on at {now}");
            now = d.instant(now);
            if now > until {
                return None;
            }
            if p.observe(queue(now), now, GRACE) == Verdict::Stalled {
                return Some(now);
            }
        }
        None
    }

    #[test]
    fn vanished_peer_with_queued_bytes_is_stalled_after_the_grace() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(5000, at(1));
        let reaped = drive(&mut p, |_| Some(5000), at(100)).expect("reaped");
        assert!(
            reaped >= at(11) && reaped <= Instant::from_millis(11_000 + 1_250),
            "{reaped}"
        );
    }

    #[test]
    fn slow_peer_that_keeps_acknowledging_is_never_stalled() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(100_000, at(0));
        // 100 bytes acknowledged every 9 s: slow, alive.
        let reaped = drive(
            &mut p,
            |t| Some(100_000 - 100 * (t.as_millis() / 9_000) as usize),
            at(9_000),
        );
        assert_eq!(reaped, None);
    }

    #[test]
    fn idle_connection_with_nothing_queued_is_never_watched() {
        let mut p = SendProgress::new(at(0));
        assert_eq!(p.deadline(), None);
        p.on_handed(10, at(1));
        assert_eq!(p.observe(Some(0), at(2), GRACE), Verdict::Idle);
        assert_eq!(p.deadline(), None);
        let mut fallback = SendProgress::new(at(0));
        assert_eq!(fallback.observe(None, at(10_000), GRACE), Verdict::Idle);
    }

    #[test]
    fn writing_more_is_not_progress_when_acknowledgements_can_be_read() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(10, at(0));
        // The application trickles 10 bytes a second; the peer acknowledges nothing.
        for s in 1..=9u64 {
            p.on_handed(10, at(s));
        }
        let reaped = drive(&mut p, |_| Some(100), at(100)).expect("reaped");
        assert!(
            reaped >= at(10) && reaped <= Instant::from_millis(11_250),
            "{reaped}"
        );
    }

    #[test]
    fn fallback_counts_bytes_taken_as_progress() {
        let mut p = SendProgress::new(at(0));
        p.set_blocked(true, at(1));
        assert_eq!(p.observe(None, at(2), GRACE), Verdict::Alive);
        p.on_handed(10, at(8));
        assert_eq!(p.observe(None, at(17), GRACE), Verdict::Alive);
        assert_eq!(p.observe(None, at(18), GRACE), Verdict::Stalled);
        // Bytes waiting in the coalescing buffer are pending too.
        p.set_blocked(false, at(18));
        p.set_buffered(3, at(18));
        assert_eq!(p.observe(None, at(18), GRACE), Verdict::Stalled);
        p.set_buffered(0, at(19));
        assert_eq!(p.observe(None, at(19), GRACE), Verdict::Idle);
    }

    #[test]
    fn a_refused_write_arms_the_fallback_watch() {
        let mut p = SendProgress::new(at(0));
        assert_eq!(p.deadline(), None);
        p.set_blocked(true, at(2));
        assert_eq!(p.deadline(), Some(Stamp::of(at(2))));
    }

    #[test]
    fn readings_come_every_eighth_of_the_grace_and_at_least_a_millisecond_apart() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(10, at(0));
        assert_eq!(p.deadline(), Some(Stamp::of(at(0))), "the baseline at once");
        assert_eq!(p.observe(Some(10), at(0), GRACE), Verdict::Alive);
        assert_eq!(p.deadline(), Some(Stamp::of(Instant::from_millis(1_250))));
        assert_eq!(
            p.observe(Some(10), at(0), Duration::from_millis(3)),
            Verdict::Alive
        );
        assert_eq!(p.deadline(), Some(Stamp::of(Instant::from_millis(1))));
    }

    #[test]
    fn taking_nothing_is_neither_progress_nor_a_reason_to_watch() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(0, at(1));
        assert_eq!(p.deadline(), None);
        // A stack without a send queue: bytes it takes are progress, none taken is not.
        p.set_blocked(true, at(0));
        assert_eq!(p.observe(None, at(0), GRACE), Verdict::Alive);
        p.on_handed(0, at(5));
        assert_eq!(p.observe(None, at(10), GRACE), Verdict::Stalled);
    }

    #[test]
    fn buffered_bytes_arm_the_watch_and_an_empty_buffer_does_not() {
        let mut p = SendProgress::new(at(0));
        p.set_buffered(0, at(1));
        assert_eq!(p.deadline(), None);
        p.set_buffered(3, at(2));
        assert_eq!(p.deadline(), Some(Stamp::of(at(2))));
    }

    #[test]
    fn only_the_first_reading_of_all_counts_bytes_taken_before_it_as_progress() {
        // A stack that cannot tell its queue, read for the first time: what it took counts.
        let mut p = SendProgress::new(at(0));
        p.on_handed(10, at(0));
        p.set_blocked(true, at(0));
        assert_eq!(p.observe(None, at(10), GRACE), Verdict::Alive);
        // A stack that told its queue, then could not: the stall clock runs on.
        let mut q = SendProgress::new(at(0));
        q.on_handed(10, at(0));
        q.set_blocked(true, at(0));
        assert_eq!(q.observe(Some(10), at(1), GRACE), Verdict::Alive);
        assert_eq!(q.observe(None, at(10), GRACE), Verdict::Stalled);
    }
}
