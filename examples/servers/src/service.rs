//! The application of the two sync examples, over any `Pool`: accept, read one
//! request (within [`REQUEST_DEADLINE`](crate::http::REQUEST_DEADLINE)), answer it,
//! close. What a firmware's main loop calls after polling its stack.

use netpool::stack::Stack;
use netpool::{nb, ConnHandle, Instant, Pool};

use crate::http::{self, Response, MAX_REQUEST};

/// One connection's request and response.
#[derive(Default)]
struct Exchange {
    handle: Option<ConnHandle>,
    accepted: Instant,
    request: heapless::Vec<u8, MAX_REQUEST>,
    /// The answer, and how much of it the pool has taken.
    response: Option<(Response, usize)>,
}

/// The connections of a pool of `N` slots: one request and its response each.
pub struct Service<const N: usize> {
    exchanges: [Exchange; N],
    /// Responses handed over completely.
    pub answered: u32,
}

impl<const N: usize> Default for Service<N> {
    fn default() -> Self {
        Service {
            exchanges: core::array::from_fn(|_| Exchange::default()),
            answered: 0,
        }
    }
}

impl<const N: usize> Service<N> {
    /// When it next needs a pass even if nothing arrives: the earliest request deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.exchanges
            .iter()
            .filter(|x| x.handle.is_some() && x.response.is_none())
            .map(|x| x.accepted + http::REQUEST_DEADLINE)
            .min()
    }

    /// After `pool.poll(now)`: take new connections and move every exchange on.
    pub fn serve<S: Stack, const L: usize, const TX: usize>(
        &mut self,
        pool: &mut Pool<S, N, L, TX>,
        now: Instant,
    ) {
        while let Some(new) = pool.accept_next() {
            self.exchanges[new.handle.slot()] = Exchange {
                handle: Some(new.handle),
                accepted: now,
                ..Exchange::default()
            };
        }
        let in_use = N - pool.free_slots();
        for x in &mut self.exchanges {
            let Some(h) = x.handle else { continue };
            if x.response.is_none() {
                x.response = read(pool, h, x, in_use, now).map(|r| (r, 0));
            }
            let Some((response, sent)) = &mut x.response else {
                if pool.state(h).is_err() {
                    x.handle = None; // ended under us (reset, reaped): nothing to answer
                }
                continue;
            };
            match pool.write_and_close(h, &response[*sent..], now) {
                Ok(n) => *sent += n,
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(_)) => *sent = response.len(), // the peer left
            }
            if *sent == response.len() {
                // Every byte is with the stack and the connection closed: the slot is free.
                self.answered += 1;
                x.handle = None;
            }
        }
    }
}

/// Read what arrived; the answer once the request is complete, malformed or late.
fn read<S: Stack, const N: usize, const L: usize, const TX: usize>(
    pool: &mut Pool<S, N, L, TX>,
    h: ConnHandle,
    x: &mut Exchange,
    in_use: usize,
    now: Instant,
) -> Option<Response> {
    let mut buf = [0u8; MAX_REQUEST];
    let room = MAX_REQUEST - x.request.len();
    match pool.read(h, &mut buf[..room], now) {
        Ok(0) | Err(nb::Error::Other(_)) => {
            // End of stream or the connection ended before a whole request: close.
            let _ = pool.close(h, now);
            x.handle = None;
            return None;
        }
        Ok(n) => {
            let _ = x.request.extend_from_slice(&buf[..n]);
        }
        Err(nb::Error::WouldBlock) => {}
    }
    http::answer(&x.request, in_use, N)
        .or_else(|| (now.saturating_since(x.accepted) >= http::REQUEST_DEADLINE).then(http::timed_out))
}
