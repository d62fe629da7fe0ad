//! How much flash netpool adds to a small RP2040 (Cortex-M0+) firmware.
//!
//! One service loop over a do-nothing embedded-nal stack ([`DummyStack`]), built twice:
//!
//! - feature `pool` on: through a netpool [`Pool`] (`poll`, `accept_next`, `read`,
//!   `write`, `close`, `report`), the stack wrapped in [`Plain`] (every fallback, the
//!   case of any embedded-nal stack), 4 slots, 2 listeners, 256 coalescing bytes each;
//! - feature `pool` off: the same work on the raw stack (accept into a fixed table of
//!   sockets, receive, send back, close on error).
//!
//! Every result the stack returns goes through [`black_box`], so the compiler cannot
//! tell which outcome happens and keeps every path of both loops: the difference in
//! `.text` is the code netpool adds. `benches/footprint.sh` builds both and prints it.
//!
//! Both builds also keep, in the no-load `.uninit` RAM section, one uninitialised
//! object per pool shape (`NETPOOL_SIZE_*`), so the script reads `size_of` of pools
//! on this target from the symbol table (`llvm-nm -S`).
#![no_std]
#![no_main]

use core::hint::black_box;
use core::mem::MaybeUninit;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use cortex_m_rt::entry;
use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use netpool::stack::Plain;
use netpool::Pool;
use panic_halt as _;

/// Connection slots of the service loop.
const SLOTS: usize = 4;
/// Listener slots.
#[cfg(feature = "pool")]
const LISTENERS: usize = 2;
/// Coalescing bytes per slot (the stack has no MORE flag).
#[cfg(feature = "pool")]
const TX: usize = 256;
/// The port served.
const PORT: u16 = 80;

// -------------------------------------------------------------------------------------
// A stack that does nothing, opaquely
// -------------------------------------------------------------------------------------

/// A socket handle, pointer-sized as in lwIP-style stacks.
#[derive(Debug)]
pub struct Sock(u32);

/// An error whose kind the compiler cannot see.
#[derive(Debug)]
pub struct DummyError;

impl TcpError for DummyError {
    fn kind(&self) -> TcpErrorKind {
        black_box(TcpErrorKind::Other)
    }
}

/// An embedded-nal stack whose every answer is opaque to the optimiser.
pub struct DummyStack;

fn peer() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), black_box(40_000)))
}

impl TcpClientStack for DummyStack {
    type TcpSocket = Sock;
    type Error = DummyError;

    fn socket(&mut self) -> Result<Sock, DummyError> {
        black_box(Ok(Sock(black_box(1))))
    }
    fn connect(&mut self, socket: &mut Sock, remote: SocketAddr) -> nb::Result<(), DummyError> {
        black_box((socket, remote));
        black_box(Err(nb::Error::WouldBlock))
    }
    fn send(&mut self, socket: &mut Sock, buffer: &[u8]) -> nb::Result<usize, DummyError> {
        black_box((socket, buffer));
        black_box(Err(nb::Error::WouldBlock))
    }
    fn receive(&mut self, socket: &mut Sock, buffer: &mut [u8]) -> nb::Result<usize, DummyError> {
        black_box((socket, buffer));
        black_box(Err(nb::Error::WouldBlock))
    }
    fn close(&mut self, socket: Sock) -> Result<(), DummyError> {
        black_box(socket.0);
        black_box(Ok(()))
    }
}

impl TcpFullStack for DummyStack {
    fn bind(&mut self, socket: &mut Sock, port: u16) -> Result<(), DummyError> {
        black_box((socket, port));
        black_box(Ok(()))
    }
    fn listen(&mut self, socket: &mut Sock) -> Result<(), DummyError> {
        black_box(socket);
        black_box(Ok(()))
    }
    fn accept(&mut self, socket: &mut Sock) -> nb::Result<(Sock, SocketAddr), DummyError> {
        black_box(socket);
        black_box(match black_box(0u8) {
            0 => Err(nb::Error::WouldBlock),
            _ => Ok((Sock(black_box(2)), peer())),
        })
    }
}

// -------------------------------------------------------------------------------------
// size_of probes (no flash: `.uninit` is NOLOAD)
// -------------------------------------------------------------------------------------

type ProbePool<const N: usize, const L: usize, const T: usize> = Pool<Plain<DummyStack>, N, L, T>;

macro_rules! probe {
    ($name:ident, $t:ty) => {
        #[no_mangle]
        #[link_section = ".uninit.netpool_size_probe"]
        static $name: MaybeUninit<$t> = MaybeUninit::uninit();
    };
}

probe!(NETPOOL_SIZE_POOL_8_2_0, ProbePool<8, 2, 0>);
probe!(NETPOOL_SIZE_POOL_8_2_256, ProbePool<8, 2, 256>);
probe!(NETPOOL_SIZE_POOL_16_2_0, ProbePool<16, 2, 0>);
probe!(NETPOOL_SIZE_POOL_16_2_256, ProbePool<16, 2, 256>);
probe!(NETPOOL_SIZE_POOL_8_4_0, ProbePool<8, 4, 0>);
// What a slot spends on holding its socket (the pool keeps an `Option` of it).
probe!(NETPOOL_SIZE_SOCKET_SLOT, Option<Sock>);

/// Referenced from `main` in both builds, so the linker keeps the probes.
#[inline(always)]
fn keep_probes() {
    black_box((
        &NETPOOL_SIZE_POOL_8_2_0,
        &NETPOOL_SIZE_POOL_8_2_256,
        &NETPOOL_SIZE_POOL_16_2_0,
        &NETPOOL_SIZE_POOL_16_2_256,
        &NETPOOL_SIZE_POOL_8_4_0,
        &NETPOOL_SIZE_SOCKET_SLOT,
    ));
}

// -------------------------------------------------------------------------------------
// The service loop
// -------------------------------------------------------------------------------------

/// The clock: opaque milliseconds (a real firmware reads a timer).
fn now_ms(previous: u64) -> u64 {
    black_box(previous.wrapping_add(1))
}

#[cfg(feature = "pool")]
fn run() -> ! {
    use netpool::{nb, Config, Instant, ListenParams};

    let mut pool: Pool<Plain<DummyStack>, SLOTS, LISTENERS, TX> =
        Pool::new(Plain::new(DummyStack), Config::new());
    black_box(pool.listen(PORT, ListenParams::new(SLOTS as u8)).is_ok());
    let mut buf = [0u8; 256];
    let mut ms = 0;
    loop {
        ms = now_ms(ms);
        let now = Instant::from_millis(ms);
        black_box(pool.poll(now));
        while let Some(new) = pool.accept_next() {
            black_box(new);
        }
        for slot in 0..SLOTS {
            let Some(h) = pool.handle_at(slot) else {
                continue;
            };
            match pool.read(h, &mut buf, now) {
                Ok(n) => {
                    let n = n.min(buf.len());
                    black_box(pool.write(h, &buf[..n], true, now).is_ok());
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(_)) => {
                    black_box(pool.close(h, now).is_ok());
                }
            }
        }
        black_box(pool.report(now));
    }
}

#[cfg(not(feature = "pool"))]
fn run() -> ! {
    let mut stack = DummyStack;
    let mut listener = stack.socket().ok();
    if let Some(l) = listener.as_mut() {
        let ok = stack.bind(l, PORT).is_ok() && stack.listen(l).is_ok();
        black_box(ok);
    }
    let mut socks: [Option<Sock>; SLOTS] = [const { None }; SLOTS];
    let mut buf = [0u8; 256];
    let mut ms = 0;
    loop {
        ms = now_ms(ms);
        black_box(ms);
        if let Some(l) = listener.as_mut() {
            if let Ok((s, remote)) = stack.accept(l) {
                black_box(remote);
                match socks.iter_mut().find(|s| s.is_none()) {
                    Some(free) => *free = Some(s),
                    None => {
                        black_box(stack.close(s).is_ok());
                    }
                }
            }
        }
        for slot in socks.iter_mut() {
            let Some(s) = slot.as_mut() else {
                continue;
            };
            match stack.receive(s, &mut buf) {
                Ok(n) => {
                    let n = n.min(buf.len());
                    black_box(stack.send(s, &buf[..n]).is_ok());
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(_)) => {
                    if let Some(s) = slot.take() {
                        black_box(stack.close(s).is_ok());
                    }
                }
            }
        }
        black_box(&socks);
    }
}

#[entry]
fn main() -> ! {
    keep_probes();
    run()
}
