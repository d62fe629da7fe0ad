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

use crate::time::{Duration, Instant};

/// Send-side progress of one connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SendProgress {
    /// Bytes the stack has taken from netpool (ever).
    pub handed: u64,
    /// Highest acknowledged byte count seen (only with a send-queue reading).
    pub acked: u64,
    /// Last time anything moved (or nothing was pending).
    pub last_progress: Instant,
    /// The last write attempt could not hand over everything it was given.
    pub blocked: bool,
    /// When [`observe`](Self::observe) last ran.
    pub sampled_at: Option<Instant>,
    /// What the last reading found: bytes pending.
    pub pending: bool,
    /// The last reading came from the stack's send queue (then only acknowledgements
    /// are progress, not bytes handed over).
    pub acked_mode: bool,
}

impl SendProgress {
    pub const fn new(now: Instant) -> Self {
        SendProgress {
            handed: 0,
            acked: 0,
            last_progress: now,
            blocked: false,
            sampled_at: None,
            pending: false,
            acked_mode: false,
        }
    }

    /// Whether a new reading is due: readings are taken every `grace / 8` at most,
    /// so a stack whose send-queue query is costly is not asked on every poll. This
    /// delays a reap by at most `grace / 8`; it never makes one earlier.
    pub fn sample_due(&self, now: Instant, grace: Duration) -> bool {
        match self.sampled_at {
            None => true,
            Some(t) => now.saturating_since(t).as_millis() >= grace.as_millis() / 8,
        }
    }

    /// The stack took `n` bytes. Progress only without send-queue readings: with
    /// them, a peer that acknowledges nothing is stalled however much is written.
    pub fn on_handed(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.handed += n as u64;
            if !self.acked_mode {
                self.last_progress = now;
            }
        }
    }

    /// Take a progress reading. `queue` is the stack's send-queue depth if it can tell,
    /// `buffered` the bytes waiting in netpool's coalescing buffer. Returns whether
    /// anything is pending.
    pub fn observe(&mut self, queue: Option<usize>, buffered: usize, now: Instant) -> bool {
        self.sampled_at = Some(now);
        self.acked_mode = queue.is_some();
        let pending = match queue {
            Some(q) => {
                let acked = self.handed.saturating_sub(q as u64);
                if acked > self.acked {
                    self.acked = acked;
                    self.last_progress = now;
                }
                q > 0 || buffered > 0
            }
            None => buffered > 0 || self.blocked,
        };
        if !pending || !self.pending {
            // Nothing to send is not a stall: the clock starts when data waits.
            self.last_progress = now;
        }
        self.pending = pending;
        pending
    }

    /// Whether a connection with `pending` bytes has made no progress for `grace`.
    pub fn is_stalled(&self, pending: bool, now: Instant, grace: Duration) -> bool {
        pending && now.saturating_since(self.last_progress) >= grace
    }

    /// When the stall verdict could next change: bytes were pending at the last
    /// reading (or no reading was taken yet).
    pub fn deadline(&self, grace: Duration) -> Option<Instant> {
        (self.pending || self.sampled_at.is_none()).then_some(self.last_progress + grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    #[test]
    fn vanished_peer_with_queued_bytes_is_stalled_after_the_grace() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(5000, at(0));
        // The clock starts at the first reading that finds bytes waiting.
        assert!(p.observe(Some(5000), 0, at(1)));
        assert!(p.observe(Some(5000), 0, at(10)));
        assert!(!p.is_stalled(true, at(10), GRACE));
        assert!(p.observe(Some(5000), 0, at(11)));
        assert!(p.is_stalled(true, at(11), GRACE));
    }

    #[test]
    fn slow_peer_that_keeps_acknowledging_is_never_stalled() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(100_000, at(0));
        let mut queue = 100_000usize;
        for s in 1..=1000 {
            queue -= 100; // 100 bytes acknowledged every 9 s: slow, alive
            let t = at(s * 9);
            let pending = p.observe(Some(queue), 0, t);
            assert!(!p.is_stalled(pending, t, GRACE), "reaped a draining peer at {s}");
        }
    }

    #[test]
    fn idle_connection_with_nothing_queued_is_never_stalled() {
        let mut p = SendProgress::new(at(0));
        for s in 0..100 {
            let pending = p.observe(Some(0), 0, at(s * 60));
            assert!(!pending);
            assert!(!p.is_stalled(pending, at(s * 60), GRACE));
        }
        // Fallback mode too.
        let pending = p.observe(None, 0, at(10_000));
        assert!(!p.is_stalled(pending, at(10_000), GRACE));
    }

    #[test]
    fn readings_are_rate_limited_to_an_eighth_of_the_grace() {
        let mut p = SendProgress::new(at(0));
        assert!(p.sample_due(at(0), GRACE));
        p.observe(Some(0), 0, at(0));
        assert!(!p.sample_due(Instant::from_millis(1249), GRACE));
        assert!(p.sample_due(Instant::from_millis(1250), GRACE));
    }

    #[test]
    fn writing_more_is_not_progress_when_acknowledgements_can_be_read() {
        let mut p = SendProgress::new(at(0));
        p.on_handed(10, at(0));
        assert!(p.observe(Some(10), 0, at(0)));
        for s in 1..=8u64 {
            p.on_handed(10, at(s)); // the application trickles; the peer acks nothing
            let pending = p.observe(Some(10 + 10 * s as usize), 0, at(s));
            assert!(!p.is_stalled(pending, at(s), GRACE), "{s}");
        }
        let pending = p.observe(Some(100), 0, at(10));
        assert!(p.is_stalled(pending, at(10), GRACE));
    }

    #[test]
    fn fallback_counts_bytes_taken_as_progress() {
        let mut p = SendProgress::new(at(0));
        p.blocked = true;
        assert!(p.observe(None, 0, at(1)));
        p.on_handed(10, at(8));
        assert!(!p.is_stalled(true, at(17), GRACE));
        assert!(p.is_stalled(true, at(18), GRACE));
        // Bytes waiting in the coalescing buffer are pending too.
        p.blocked = false;
        assert!(p.observe(None, 3, at(18)));
    }
}
