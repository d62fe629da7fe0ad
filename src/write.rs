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
//! On a stack with a native flag, bytes sent with MORE belong to the stack, which
//! sends them on the next push or after its own coalescing delay (Linux: 200 ms).
//! [`Pool::flush`](crate::Pool::flush) asks it to send them now through
//! [`TcpPush`](crate::stack::TcpPush) (lwIP `tcp_output`; Linux: a zero-byte send
//! without `MSG_MORE`), so an application that ends a message late does not need to
//! keep a byte back to carry the push.

use embedded_nal::nb;

use crate::config::Config;
use crate::error::{Classify, ErrorClass};
use crate::sansio::{Slot, Stamp};
use crate::stack::{SendFlag, Stack};
use crate::time::Instant;

/// netpool's coalescing buffer for one connection (fallback for stacks without a
/// native MORE flag): only the bytes. How many are in use is the core's slot record's
/// (`SendProgress::buffered`): the core counts them as pending for the reaper and
/// reports them, and a pool with `TX = 0` pays nothing here. (A hand-kept length
/// instead of `heapless::Vec` for exactly that reason.)
#[derive(Debug)]
pub(crate) struct Coalescer<const TX: usize> {
    bytes: [u8; TX],
}

impl<const TX: usize> Coalescer<TX> {
    pub const fn new() -> Self {
        Coalescer { bytes: [0; TX] }
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

/// The send side of one connection as the write path sees it: the driver's buffer
/// and the core's slot record.
pub(crate) struct TxSide<'a, const TX: usize> {
    pub buf: &'a mut Coalescer<TX>,
    pub slot: &'a mut Slot,
    pub config: &'a Config,
}

impl<const TX: usize> TxSide<'_, TX> {
    /// Bytes buffered.
    pub fn len(&self) -> usize {
        usize::from(self.slot.progress.buffered)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_full(&self) -> bool {
        self.len() == TX
    }

    fn bytes(&self) -> &[u8] {
        &self.buf.bytes[..self.len()]
    }

    fn set_len(&mut self, len: usize, now: Instant) {
        self.slot.progress.set_buffered(len, now);
    }

    /// Copy in as much of `data` as fits; returns how much.
    fn append(&mut self, data: &[u8], now: Instant) -> usize {
        let len = self.len();
        let n = data.len().min(TX - len);
        self.buf.bytes[len..len + n].copy_from_slice(&data[..n]);
        self.set_len(len + n, now);
        n
    }

    /// Forget the first `n` bytes (the stack took them).
    fn consume(&mut self, n: usize, now: Instant) {
        let len = self.len();
        let n = n.min(len);
        self.buf.bytes.copy_within(n..len, 0);
        self.set_len(len - n, now);
    }

    /// Forget the last `n` bytes (appended by a write that then did not take them).
    fn drop_tail(&mut self, n: usize, now: Instant) {
        let keep = self.len().saturating_sub(n);
        self.set_len(keep, now);
    }

    /// The stack took `n` bytes.
    fn handed(&mut self, n: usize, now: Instant) {
        self.slot.progress.on_handed(n, now);
    }

    /// Bytes joined the buffer: they are due after the coalescing delay, counted from
    /// the oldest.
    fn buffered(&mut self, was_empty: bool, now: Instant) {
        if !self.is_empty() && (was_empty || self.slot.flush_due().is_none()) {
            let due = Stamp::of(now).plus(self.config.coalesce_delay);
            self.slot.set_flush_due(Some(due));
        }
    }

    /// After a flush attempt: nothing left, or try again after the coalescing delay
    /// (never at once: a stack that refuses is not asked again in a loop).
    fn after_flush(&mut self, now: Instant) {
        let due = (!self.is_empty()).then(|| Stamp::of(now).plus(self.config.coalesce_delay));
        self.slot.set_flush_due(due);
    }
}

/// One stack send; a would-block (or timeout) is zero bytes, not an error.
#[inline]
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
    tx: &mut TxSide<'_, TX>,
    now: Instant,
) -> Result<usize, ErrorClass> {
    if tx.is_empty() {
        return Ok(0);
    }
    let n = send_once(stack, sock, tx.bytes(), None)?;
    tx.consume(n, now);
    tx.handed(n, now);
    tx.after_flush(now);
    Ok(n)
}

/// Push: hand over what netpool buffers, then ask the stack to send what it holds
/// now ([`TcpPush`](crate::stack::TcpPush); a no-op on stacks that send at once).
/// `Ok(true)` once nothing is left in netpool's buffer.
pub(crate) fn push_now<S: Stack, const TX: usize>(
    stack: &mut S,
    sock: &mut S::TcpSocket,
    tx: &mut TxSide<'_, TX>,
    now: Instant,
) -> Result<bool, ErrorClass> {
    flush(stack, sock, tx, now)?;
    if !tx.is_empty() {
        return Ok(false);
    }
    tx.slot.set_flush_due(None);
    if !S::NATIVE_FLAGS {
        // Everything went out with plain sends: nothing is held back by the stack.
        return Ok(true);
    }
    match stack.push(sock) {
        Ok(()) | Err(nb::Error::WouldBlock) => Ok(true),
        Err(nb::Error::Other(e)) if e.class().is_retry() => Ok(true),
        Err(nb::Error::Other(e)) => Err(e.class()),
    }
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
#[inline]
pub(crate) fn write<S: Stack, const TX: usize>(
    stack: &mut S,
    sock: &mut S::TcpSocket,
    tx: &mut TxSide<'_, TX>,
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
            out.error = push_now(stack, sock, tx, now).err();
        }
        return out;
    }

    if S::NATIVE_FLAGS && tx.is_empty() {
        // The stack coalesces: pass the flag, take what it takes.
        match send_once(stack, sock, data, Some(SendFlag::from_push(push))) {
            Ok(n) => {
                tx.handed(n, now);
                out.taken = n;
                // The stack holds MORE bytes until a push: netpool pushes them when
                // the coalescing delay expires (the one coalescing timer).
                if push && n == data.len() {
                    tx.slot.set_flush_due(None);
                } else if n > 0 && tx.slot.flush_due().is_none() {
                    let due = Stamp::of(now).plus(tx.config.coalesce_delay);
                    tx.slot.set_flush_due(Some(due));
                }
            }
            Err(class) => out.error = Some(class),
        }
    } else if data.len() <= TX - tx.len() {
        // Fits behind what is buffered: join it. A push (or a full buffer) hands the
        // whole buffer over in one stack call.
        let older = tx.len();
        tx.append(data, now);
        out.taken = data.len();
        if push || tx.is_full() {
            match flush(stack, sock, tx, now) {
                Err(class) => {
                    out.error = Some(class);
                    out.taken = 0;
                    tx.drop_tail(data.len(), now);
                }
                Ok(sent) if push => {
                    // Keep only older bytes; what of this push the stack refused is
                    // not taken.
                    out.taken = sent.saturating_sub(older);
                    tx.drop_tail(data.len() - out.taken, now);
                    tx.after_flush(now);
                }
                Ok(_) => {}
            }
        } else {
            tx.buffered(older == 0, now);
        }
    } else {
        // Does not fit: older buffered bytes go first, always.
        let older = if tx.is_empty() {
            Ok(0)
        } else {
            flush(stack, sock, tx, now)
        };
        if let Err(class) = older {
            out.error = Some(class);
            tx.slot.progress.set_blocked(true, now);
            return out;
        }
        if tx.is_empty() {
            // Nothing to coalesce with and too big to buffer: straight to the stack,
            // with the caller's flag (MORE when more follows).
            let flag = S::NATIVE_FLAGS.then_some(SendFlag::from_push(push));
            match send_once(stack, sock, data, flag) {
                Ok(n) => {
                    tx.handed(n, now);
                    out.taken = n;
                }
                Err(class) => {
                    out.error = Some(class);
                    tx.slot.progress.set_blocked(true, now);
                    return out;
                }
            }
        }
        // Under MORE, keep what fits for later (a push's rest is not taken).
        if out.taken < data.len() && !push {
            let direct = out.taken;
            let was_empty = tx.is_empty();
            let added = tx.append(&data[direct..], now);
            out.taken += added;
            tx.buffered(was_empty, now);
            if tx.is_full() {
                if let Err(class) = flush(stack, sock, tx, now) {
                    out.error = Some(class);
                    out.taken = direct;
                    tx.drop_tail(added, now);
                }
            }
        }
    }
    tx.slot.progress.set_blocked(out.taken < data.len(), now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side<'a, const TX: usize>(
        buf: &'a mut Coalescer<TX>,
        slot: &'a mut Slot,
        config: &'a Config,
    ) -> TxSide<'a, TX> {
        TxSide { buf, slot, config }
    }

    #[test]
    fn coalescer_keeps_order_and_reports_what_fits() {
        let (mut buf, mut slot, config) = (Coalescer::<8>::new(), Slot::new(), Config::new());
        let mut tx = side(&mut buf, &mut slot, &config);
        let t = Instant::from_millis(5);
        assert_eq!(tx.append(b"hello", t), 5);
        assert_eq!(tx.append(b"world", t), 3);
        assert!(tx.is_full());
        assert_eq!(tx.bytes(), b"hellowor");
        tx.consume(3, t);
        assert_eq!(tx.bytes(), b"lowor");
        tx.drop_tail(2, t);
        assert_eq!(tx.bytes(), b"low");
        tx.consume(100, t);
        assert!(tx.is_empty());
        assert_eq!(slot.progress.buffered, 0);
    }

    #[test]
    fn zero_capacity_coalescer_takes_nothing_and_costs_nothing() {
        assert_eq!(core::mem::size_of::<Coalescer<0>>(), 0);
        let (mut buf, mut slot, config) = (Coalescer::<0>::new(), Slot::new(), Config::new());
        let mut tx = side(&mut buf, &mut slot, &config);
        assert_eq!(tx.append(b"x", Instant::ZERO), 0);
        assert!(tx.is_empty() && tx.is_full());
    }
}
