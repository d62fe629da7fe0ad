//! A fixed ring buffer of recent temperatures for the UI's chart.

use heapless::HistoryBuf;

use crate::temp::Temp;

/// One history sample: a temperature in quarter °C, or no valid reading.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sample(i16);

impl Sample {
    /// No valid reading (sensor fault) at this sample.
    pub const NONE: Sample = Sample(i16::MIN);

    /// A sample of `t` (clamped to what fits; the MAX6675 range always fits) or none.
    pub const fn new(t: Option<Temp>) -> Sample {
        match t {
            None => Sample::NONE,
            Some(t) => {
                let q = t.quarters();
                let q = if q < i16::MIN as i32 + 1 {
                    i16::MIN as i32 + 1
                } else if q > i16::MAX as i32 {
                    i16::MAX as i32
                } else {
                    q
                };
                Sample(q as i16)
            }
        }
    }

    /// The temperature, if there was a valid reading.
    pub const fn temp(self) -> Option<Temp> {
        if self.0 == i16::MIN {
            None
        } else {
            Some(Temp::from_quarters(self.0 as i32))
        }
    }
}

/// The last `N` samples, one every `period_ms`.
#[derive(Clone, Debug)]
pub struct History<const N: usize> {
    samples: HistoryBuf<Sample, N>,
    period_ms: u32,
    next_ms: u64,
}

impl<const N: usize> History<N> {
    /// An empty history taking one sample every `period_ms` (at least 1).
    pub const fn new(period_ms: u32) -> Self {
        History {
            samples: HistoryBuf::new(),
            period_ms: if period_ms == 0 { 1 } else { period_ms },
            next_ms: 0,
        }
    }

    /// Record `t` if a sample is due at `now_ms`. Returns whether it recorded. O(1).
    ///
    /// Samples are due every `period_ms`; after a gap (time jumped), the next sample
    /// is taken at once and the schedule restarts from it.
    pub fn record(&mut self, now_ms: u64, t: Option<Temp>) -> bool {
        if now_ms < self.next_ms {
            return false;
        }
        self.samples.write(Sample::new(t));
        let period = u64::from(self.period_ms);
        self.next_ms = if now_ms - self.next_ms >= period {
            now_ms.saturating_add(period)
        } else {
            self.next_ms.saturating_add(period)
        };
        true
    }

    /// Append a sample now, whatever the schedule.
    pub fn push(&mut self, sample: Sample) {
        self.samples.write(sample);
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.oldest_ordered().copied()
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.recent().copied()
    }

    /// Samples held (at most `N`).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// No sample yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The sampling period (ms).
    pub const fn period_ms(&self) -> u32 {
        self.period_ms
    }

    /// The lowest and highest valid temperatures held.
    pub fn range(&self) -> Option<(Temp, Temp)> {
        self.iter()
            .filter_map(Sample::temp)
            .fold(None, |acc, t| match acc {
                None => Some((t, t)),
                Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
            })
    }

    /// Replace `self` with a copy of `other` (no allocation; O(N)).
    pub fn copy_from(&mut self, other: &History<N>) {
        self.samples.clear();
        self.samples.extend(other.samples.oldest_ordered().copied());
        self.period_ms = other.period_ms;
        self.next_ms = other.next_ms;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn ring_keeps_the_last_n_in_order() {
        let mut h: History<4> = History::new(1000);
        assert!(h.is_empty());
        let mut recorded = 0;
        for i in 0..20u64 {
            // Every 500 ms; a sample is due every 1000 ms.
            if h.record(i * 500, Some(Temp::from_c(i as i32))) {
                recorded += 1;
            }
        }
        assert_eq!(recorded, 10);
        assert_eq!(h.len(), 4);
        let got: Vec<_> = h.iter().map(|s| s.temp().unwrap().whole_c()).collect();
        assert_eq!(got, [12, 14, 16, 18]);
        assert_eq!(h.range(), Some((Temp::from_c(12), Temp::from_c(18))));
        let mut copy: History<4> = History::new(1);
        copy.copy_from(&h);
        assert!(copy.iter().eq(h.iter()));
        assert_eq!(copy.period_ms(), 1000);
    }

    #[test]
    fn faults_are_gaps_and_time_jumps_restart_the_schedule() {
        let mut h: History<8> = History::new(1000);
        assert!(h.record(0, None));
        assert_eq!(h.latest(), Some(Sample::NONE));
        assert_eq!(h.range(), None);
        assert!(h.record(60_000, Some(Temp::from_c(5))));
        assert!(!h.record(60_999, Some(Temp::from_c(5))));
        assert!(h.record(61_000, Some(Temp::from_c(5))));
        assert_eq!(
            Sample::new(Some(Temp::from_c(-100_000))).temp(),
            Some(Temp::from_quarters(-32767))
        );
        assert_eq!(
            Sample::new(Some(Temp::from_c(100_000))).temp(),
            Some(Temp::from_quarters(32767))
        );
    }
}
