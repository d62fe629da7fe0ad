//! Write semantics: MORE vs push, exact partial writes, no spinning.
//!
//! `write(handle, bytes, push)` returns the number of bytes *taken*, never the number
//! requested. `push == false` means MORE ("more data follows, you may coalesce");
//! `push == true` means send now. A write that can make no progress returns
//! `WouldBlock` at once: netpool never retries inside a write.
//!
//! How MORE reaches the wire depends on the stack:
//!
//! - A stack with [`TcpSendFlags`](crate::stack::TcpSendFlags) gets the flag itself:
//!   [`SendFlag::More`] exactly when `push` is false, [`SendFlag::Push`] when it is true.
//! - A plain embedded-nal stack gets coalescing inside netpool: MORE bytes gather in a
//!   per-slot buffer of `TX` bytes, handed to the stack on push, when the buffer fills,
//!   when [`Config::coalesce_delay`](crate::Config::coalesce_delay) expires, and on close.
//!
//! Bytes taken into the buffer are bytes the stack will send: netpool hands them over
//! before anything written later. A push counts only bytes that reached the stack, so
//! after a push whose bytes were all taken, netpool's buffer is empty and a close
//! loses nothing ([`Pool::write_and_close`](crate::Pool::write_and_close) relies on
//! this). The one way to lose taken bytes is to close right after MORE writes while
//! the stack refuses them: the close is still immediate, and those bytes are counted
//! in [`Counters::dropped_on_close`](crate::Counters::dropped_on_close). End a
//! message with a push (or [`Pool::flush`](crate::Pool::flush) until it succeeds)
//! before closing.
//!
//! On a stack with a native flag, `flush` has nothing to hand over: bytes sent with
//! MORE belong to the stack, which sends them on the next push or after its own
//! coalescing delay (Linux: 200 ms).

use embedded_nal::nb;

use crate::error::{Classify, ErrorClass};
use crate::reaper::SendProgress;
use crate::stack::{SendFlag, Stack};
use crate::time::{Duration, Instant};

/// netpool's coalescing buffer for one connection (fallback for stacks without a
/// native MORE flag).
#[derive(Debug)]
pub(crate) struct Coalescer<const TX: usize> {
    buf: heapless::Vec<u8, TX>,
    /// When the oldest buffered byte arrived.
    since: Option<Instant>,
    /// A push arrived while bytes were still buffered: flush as soon as possible.
    push_pending: bool,
}

impl<const TX: usize> Coalescer<TX> {
    pub const fn new() -> Self {
        Coalescer {
            buf: heapless::Vec::new(),
            since: None,
            push_pending: false,
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Copy in as much of `data` as fits; returns how much.
    pub fn append(&mut self, data: &[u8], push: bool, now: Instant) -> usize {
        let n = data.len().min(TX - self.buf.len());
        // Cannot fail: n fits by construction.
        let _ = self.buf.extend_from_slice(&data[..n]);
        if n > 0 && self.since.is_none() {
            self.since = Some(now);
        }
        self.push_pending |= push && n > 0;
        n
    }

    /// Forget the first `n` bytes (the stack took them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        let len = self.buf.len();
        self.buf.copy_within(n.., 0);
        self.buf.truncate(len - n);
        if self.buf.is_empty() {
            self.since = None;
            self.push_pending = false;
        }
    }

    /// Forget the last `n` bytes (appended by a write that then did not take them).
    pub fn drop_tail(&mut self, n: usize) {
        let keep = self.buf.len().saturating_sub(n);
        self.buf.truncate(keep);
        if self.buf.is_empty() {
            self.since = None;
            self.push_pending = false;
        }
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() == TX
    }

    /// Whether the buffer must be handed to the stack now.
    pub fn is_due(&self, now: Instant, delay: Duration) -> bool {
        match self.since {
            None => false,
            Some(t) => self.push_pending || self.is_full() || now.saturating_since(t) >= delay,
        }
    }

    /// When the buffer becomes due by age.
    pub fn deadline(&self, delay: Duration) -> Option<Instant> {
        self.since.map(|t| t + delay)
    }

    pub fn clear(&mut self) {
        self.consume(self.buf.len());
    }
}

/// The send side of one connection: coalescing buffer plus progress.
#[derive(Debug)]
pub(crate) struct TxSide<const TX: usize> {
    pub coalescer: Coalescer<TX>,
    pub progress: SendProgress,
}

impl<const TX: usize> TxSide<TX> {
    pub const fn new(now: Instant) -> Self {
        TxSide {
            coalescer: Coalescer::new(),
            progress: SendProgress::new(now),
        }
    }
}

/// What one write did: bytes taken, and the error that stopped it, if any.
///
/// Both can be set: bytes taken before a failure stay taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct WriteOutcome {
    pub taken: usize,
    pub error: Option<ErrorClass>,
}

/// One stack send; a would-block (or timeout) is zero bytes, not an error.
fn send_once<S: Stack>(
    stack: &mut S,
    sock: &mut S::TcpSocket,
    data: &[u8],
    flag: Option<SendFlag>,
) -> Result<usize, ErrorClass> {
    let r = match flag {
        Some(flag) => stack.send_flagged(sock, data, flag),
        None => stack.send(sock, data),
    };
    match r {
        Ok(n) => Ok(n.min(data.len())),
        Err(nb::Error::WouldBlock) => Ok(0),
        Err(nb::Error::Other(e)) => {
            let class = e.class();
            if class.is_retry() {
                Ok(0)
            } else {
                Err(class)
            }
        }
    }
}

/// Hand netpool's buffered bytes to the stack (one send call at most). Returns how
/// many the stack took, or the class of its error.
pub(crate) fn flush<S: Stack, const TX: usize>(
    stack: &mut S,
    sock: &mut S::TcpSocket,
    tx: &mut TxSide<TX>,
    now: Instant,
) -> Result<usize, ErrorClass> {
    if tx.coalescer.is_empty() {
        return Ok(0);
    }
    let n = send_once(stack, sock, tx.coalescer.bytes(), None)?;
    tx.coalescer.consume(n);
    tx.progress.on_handed(n, now);
    Ok(n)
}

/// The write contract. At most three stack calls, whatever happens: a flush of older
/// buffered bytes, one send of the new bytes, and one flush when the buffer fills.
///
/// What counts as *taken*:
/// - native flag: what the stack took;
/// - fallback, MORE: what the stack took plus what joined netpool's buffer (netpool
///   hands those over later, before anything written after them);
/// - fallback, push: only what reached the stack. Bytes of a push are never left
///   behind in netpool's buffer, so a caller that saw every byte of a push taken can
///   close without losing any of them.
///
/// When the stack fails the connection, bytes that only reached netpool's buffer in
/// this call are not reported as taken.
pub(crate) fn write<S: Stack, const TX: usize>(
    stack: &mut S,
    sock: &mut S::TcpSocket,
    tx: &mut TxSide<TX>,
    data: &[u8],
    push: bool,
    now: Instant,
) -> WriteOutcome {
    let mut out = WriteOutcome {
        taken: 0,
        error: None,
    };
    if data.is_empty() {
        if push {
            out.error = flush(stack, sock, tx, now).err();
        }
        return out;
    }

    if S::NATIVE_FLAGS && tx.coalescer.is_empty() {
        // The stack coalesces: pass the flag, take what it takes.
        match send_once(stack, sock, data, Some(SendFlag::from_push(push))) {
            Ok(n) => {
                tx.progress.on_handed(n, now);
                out.taken = n;
            }
            Err(class) => out.error = Some(class),
        }
    } else if data.len() <= TX - tx.coalescer.len() {
        // Fits behind what is buffered: join it. A push (or a full buffer) hands the
        // whole buffer over in one stack call.
        let older = tx.coalescer.len();
        tx.coalescer.append(data, push, now);
        out.taken = data.len();
        if push || tx.coalescer.is_full() {
            match flush(stack, sock, tx, now) {
                Err(class) => {
                    out.error = Some(class);
                    out.taken = 0;
                }
                Ok(sent) if push => {
                    // Keep only older bytes; what of this push the stack refused is
                    // not taken.
                    out.taken = sent.saturating_sub(older);
                    tx.coalescer.drop_tail(data.len() - out.taken);
                }
                Ok(_) => {}
            }
        }
    } else {
        // Does not fit: older buffered bytes go first, always.
        if let Err(class) = flush(stack, sock, tx, now) {
            out.error = Some(class);
            tx.progress.blocked = true;
            return out;
        }
        if tx.coalescer.is_empty() {
            // Nothing to coalesce with and too big to buffer: straight to the stack.
            match send_once(stack, sock, data, None) {
                Ok(n) => {
                    tx.progress.on_handed(n, now);
                    out.taken = n;
                }
                Err(class) => {
                    out.error = Some(class);
                    tx.progress.blocked = true;
                    return out;
                }
            }
        }
        // Under MORE, keep what fits for later (a push's rest is not taken).
        if out.taken < data.len() && !push {
            let direct = out.taken;
            let added = tx.coalescer.append(&data[direct..], false, now);
            out.taken += added;
            if tx.coalescer.is_full() {
                if let Err(class) = flush(stack, sock, tx, now) {
                    out.error = Some(class);
                    out.taken = direct;
                }
            }
        }
    }
    tx.progress.blocked = out.taken < data.len();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescer_keeps_order_and_reports_what_fits() {
        let mut c = Coalescer::<8>::new();
        let t = Instant::from_millis(5);
        assert_eq!(c.append(b"hello", false, t), 5);
        assert_eq!(c.append(b"world", false, t), 3);
        assert!(c.is_full());
        assert_eq!(c.bytes(), b"hellowor");
        c.consume(3);
        assert_eq!(c.bytes(), b"lowor");
        assert!(!c.is_due(t, Duration::from_millis(200)));
        assert!(c.is_due(Instant::from_millis(205), Duration::from_millis(200)));
        c.consume(100);
        assert!(c.is_empty());
        assert_eq!(c.deadline(Duration::from_millis(1)), None);
    }

    #[test]
    fn zero_capacity_coalescer_takes_nothing() {
        let mut c = Coalescer::<0>::new();
        assert_eq!(c.append(b"x", true, Instant::ZERO), 0);
        assert!(c.is_empty());
        assert!(!c.is_due(Instant::from_millis(1_000_000), Duration::ZERO));
    }
}
