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
use crate::sansio::{Stamp, TxTimers};
use crate::stack::{SendFlag, Stack};
use crate::time::Instant;

/// netpool's coalescing buffer for one connection (fallback for stacks without a
/// native MORE flag). Only the bytes: when they are due is the core's
/// [`TxTimers::flush_due`].
#[derive(Debug)]
pub(crate) struct Coalescer<const TX: usize> {
    buf: heapless::Vec<u8, TX>,
}

impl<const TX: usize> Coalescer<TX> {
    pub const fn new() -> Self {
        Coalescer {
            buf: heapless::Vec::new(),
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
    pub fn append(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(TX - self.buf.len());
        // Cannot fail: n fits by construction.
        let _ = self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// Forget the first `n` bytes (the stack took them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        let len = self.buf.len();
        self.buf.copy_within(n.., 0);
        self.buf.truncate(len - n);
    }

    /// Forget the last `n` bytes (appended by a write that then did not take them).
    pub fn drop_tail(&mut self, n: usize) {
        let keep = self.buf.len().saturating_sub(n);
        self.buf.truncate(keep);
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() == TX
    }

    pub fn clear(&mut self) {
        self.buf.clear();
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
/// and the core's timers.
pub(crate) struct TxSide<'a, const TX: usize> {
    pub buf: &'a mut Coalescer<TX>,
    pub timers: &'a mut TxTimers,
    pub config: &'a Config,
}

impl<const TX: usize> TxSide<'_, TX> {
    /// The stack took `n` bytes.
    fn handed(&mut self, n: usize, now: Instant) {
        self.timers.progress.on_handed(n, now);
    }

    /// Bytes joined an empty buffer: they are due after the coalescing delay.
    fn buffered(&mut self, was_empty: bool, now: Instant) {
        if !self.buf.is_empty() {
            if was_empty || self.timers.flush_due.is_none() {
                self.timers.flush_due = Some(Stamp::of(now).plus(self.config.coalesce_delay));
            }
            self.timers.progress.on_buffered(now);
        }
    }

    /// After a flush attempt: nothing left, or try again after the coalescing delay
    /// (never at once: a stack that refuses is not asked again in a loop).
    fn after_flush(&mut self, now: Instant) {
        self.timers.flush_due = if self.buf.is_empty() {
            None
        } else {
            Some(Stamp::of(now).plus(self.config.coalesce_delay))
        };
    }
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
    tx: &mut TxSide<'_, TX>,
    now: Instant,
) -> Result<usize, ErrorClass> {
    if tx.buf.is_empty() {
        return Ok(0);
    }
    let n = send_once(stack, sock, tx.buf.bytes(), None)?;
    tx.buf.consume(n);
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
    if !tx.buf.is_empty() {
        return Ok(false);
    }
    tx.timers.flush_due = None;
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

    if S::NATIVE_FLAGS && tx.buf.is_empty() {
        // The stack coalesces: pass the flag, take what it takes.
        match send_once(stack, sock, data, Some(SendFlag::from_push(push))) {
            Ok(n) => {
                tx.handed(n, now);
                out.taken = n;
                // The stack holds MORE bytes until a push: netpool pushes them when
                // the coalescing delay expires (the one coalescing timer).
                if push && n == data.len() {
                    tx.timers.flush_due = None;
                } else if n > 0 && tx.timers.flush_due.is_none() {
                    tx.timers.flush_due = Some(Stamp::of(now).plus(tx.config.coalesce_delay));
                }
            }
            Err(class) => out.error = Some(class),
        }
    } else if data.len() <= TX - tx.buf.len() {
        // Fits behind what is buffered: join it. A push (or a full buffer) hands the
        // whole buffer over in one stack call.
        let older = tx.buf.len();
        tx.buf.append(data);
        out.taken = data.len();
        if push || tx.buf.is_full() {
            match flush(stack, sock, tx, now) {
                Err(class) => {
                    out.error = Some(class);
                    out.taken = 0;
                    tx.buf.drop_tail(data.len());
                }
                Ok(sent) if push => {
                    // Keep only older bytes; what of this push the stack refused is
                    // not taken.
                    out.taken = sent.saturating_sub(older);
                    tx.buf.drop_tail(data.len() - out.taken);
                    tx.after_flush(now);
                }
                Ok(_) => {}
            }
        } else {
            tx.buffered(older == 0, now);
        }
    } else {
        // Does not fit: older buffered bytes go first, always.
        if let Err(class) = flush(stack, sock, tx, now) {
            out.error = Some(class);
            tx.timers.progress.set_blocked(true, now);
            return out;
        }
        if tx.buf.is_empty() {
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
                    tx.timers.progress.set_blocked(true, now);
                    return out;
                }
            }
        }
        // Under MORE, keep what fits for later (a push's rest is not taken).
        if out.taken < data.len() && !push {
            let direct = out.taken;
            let was_empty = tx.buf.is_empty();
            let added = tx.buf.append(&data[direct..]);
            out.taken += added;
            tx.buffered(was_empty, now);
            if tx.buf.is_full() {
                if let Err(class) = flush(stack, sock, tx, now) {
                    out.error = Some(class);
                    out.taken = direct;
                    tx.buf.drop_tail(added);
                }
            }
        }
    }
    tx.timers.progress.set_blocked(out.taken < data.len(), now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescer_keeps_order_and_reports_what_fits() {
        let mut c = Coalescer::<8>::new();
        assert_eq!(c.append(b"hello"), 5);
        assert_eq!(c.append(b"world"), 3);
        assert!(c.is_full());
        assert_eq!(c.bytes(), b"hellowor");
        c.consume(3);
        assert_eq!(c.bytes(), b"lowor");
        c.drop_tail(2);
        assert_eq!(c.bytes(), b"low");
        c.consume(100);
        assert!(c.is_empty());
    }

    #[test]
    fn zero_capacity_coalescer_takes_nothing() {
        let mut c = Coalescer::<0>::new();
        assert_eq!(c.append(b"x"), 0);
        assert!(c.is_empty());
        assert!(c.is_full());
    }
}
