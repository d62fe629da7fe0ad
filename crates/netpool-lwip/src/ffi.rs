//! The one module that talks to lwIP: every `unsafe` of the crate is here.
//!
//! # Why the rest of the crate can stay safe
//!
//! lwIP hands out raw pointers (`struct tcp_pcb *`, `struct pbuf *`) and calls back
//! into the application with them. This module keeps every such pointer in one global
//! table, the *registry*, and gives the rest of the crate only a [`LwipSocket`] token
//! (table index + generation). Every operation resolves the token here, checks the
//! generation, and touches a PCB only while the table says it is alive. The rules that
//! make that true:
//!
//! 1. **lwIP frees a PCB behind our back only through the err callback** (`tcp_abort`
//!    by `tcp_kill_prio`, a reset, a retransmission timeout: "the pcb is already freed
//!    when this callback is called"). [`on_err`] clears the table's pointer before
//!    anything else can run, so the freed PCB is never touched again.
//! 2. **The application gives a PCB back only here** ([`release`], closing or
//!    aborting, and [`shutdown`]). The PCB's callbacks and argument are cleared *before* lwIP is told
//!    to close or abort it (so lwIP's own err callback during `tcp_abort` finds
//!    nothing), and the slot's generation changes, so every copy of the token goes
//!    stale.
//! 3. **Callback arguments are table indices** (`tcp_arg(pcb, index + 1)`), never
//!    pointers to Rust objects, which could move.
//! 4. **Received pbufs belong to the table** until read ([`read`]) or the slot is
//!    released (freed with `pbuf_free`). They are never shared.
//! 5. **No borrow of the table is held across a call into lwIP** that may call back
//!    (`tcp_new`, `tcp_close`, `tcp_abort`, packet input, timers): callbacks borrow the
//!    table themselves. The table sits in a [`critical_section::Mutex`]; a nested
//!    borrow would panic (and abort, crossing `extern "C"`) rather than alias.
//! 6. **One lwIP per process, used from one context.** lwIP is global state and its raw
//!    API is single-threaded: [`acquire`] hands out one [`LwipStack`](crate::LwipStack)
//!    at a time, and the stack is `!Send`.
//!
//! Everything lwIP-specific about structs and macros (`tcp_sndbuf`, the PCB state,
//! addresses) goes through the C accessors of `c/shim.c`, so no struct layout is
//! assumed here.
#![allow(unsafe_code)]

use core::cell::RefCell;
use core::ffi::c_void;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use critical_section::Mutex;

use crate::diagnostics::{Events, LwipConfig, SendQueue};
use crate::error::{LwipErr, LwipError, ERR_ABRT, ERR_CLSD, ERR_MEM, ERR_OK, ERR_RST};
use crate::socket::LwipSocket;

/// How many sockets (listeners, connections, connections waiting in a backlog) the
/// backend tracks at once. lwIP's own limits (`MEMP_NUM_TCP_PCB`,
/// `MEMP_NUM_TCP_PCB_LISTEN`) usually bind first; a connection lwIP accepts while the
/// table is full is aborted (counted in [`Events::accept_no_slot`](crate::Events::accept_no_slot)).
pub const MAX_SOCKETS: usize = 32;

const TCP_WRITE_FLAG_COPY: u8 = 0x01;
const TCP_WRITE_FLAG_MORE: u8 = 0x02;

// ---------------------------------------------------------------------------------
// The C side
// ---------------------------------------------------------------------------------

/// `struct tcp_pcb`, opaque.
#[repr(C)]
struct TcpPcb {
    _opaque: [u8; 0],
}

/// `struct pbuf`, opaque.
#[repr(C)]
struct Pbuf {
    _opaque: [u8; 0],
}

type RecvFn = unsafe extern "C" fn(*mut c_void, *mut TcpPcb, *mut Pbuf, i8) -> i8;
type SentFn = unsafe extern "C" fn(*mut c_void, *mut TcpPcb, u16) -> i8;
type ErrFn = unsafe extern "C" fn(*mut c_void, i8);
type AcceptFn = unsafe extern "C" fn(*mut c_void, *mut TcpPcb, i8) -> i8;
type ConnectedFn = unsafe extern "C" fn(*mut c_void, *mut TcpPcb, i8) -> i8;

extern "C" {
    // lwIP raw API (functions in every configuration).
    fn tcp_new() -> *mut TcpPcb;
    fn tcp_arg(pcb: *mut TcpPcb, arg: *mut c_void);
    fn tcp_recv(pcb: *mut TcpPcb, recv: Option<RecvFn>);
    fn tcp_sent(pcb: *mut TcpPcb, sent: Option<SentFn>);
    fn tcp_err(pcb: *mut TcpPcb, err: Option<ErrFn>);
    fn tcp_accept(pcb: *mut TcpPcb, accept: Option<AcceptFn>);
    fn tcp_write(pcb: *mut TcpPcb, data: *const c_void, len: u16, flags: u8) -> i8;
    fn tcp_output(pcb: *mut TcpPcb) -> i8;
    fn tcp_recved(pcb: *mut TcpPcb, len: u16);
    fn tcp_close(pcb: *mut TcpPcb) -> i8;
    fn tcp_abort(pcb: *mut TcpPcb);
    fn tcp_setprio(pcb: *mut TcpPcb, prio: u8);
    fn tcp_listen_with_backlog_and_err(pcb: *mut TcpPcb, backlog: u8, err: *mut i8) -> *mut TcpPcb;
    fn pbuf_cat(head: *mut Pbuf, tail: *mut Pbuf);
    fn pbuf_copy_partial(p: *const Pbuf, data: *mut c_void, len: u16, offset: u16) -> u16;
    fn pbuf_free_header(p: *mut Pbuf, size: u16) -> *mut Pbuf;
    fn pbuf_free(p: *mut Pbuf) -> u8;

    // c/shim.c
    fn np_tcp_sndbuf(pcb: *const TcpPcb) -> u16;
    fn np_tcp_sndqueuelen(pcb: *const TcpPcb) -> u16;
    fn np_tcp_queues(pcb: *const TcpPcb, unsent: *mut u32, unacked: *mut u32);
    fn np_tcp_state(pcb: *const TcpPcb) -> i32;
    fn np_tcp_prio(pcb: *const TcpPcb) -> u8;
    fn np_tcp_remote(pcb: *const TcpPcb, ip: *mut u32, port: *mut u16);
    fn np_tcp_local_port(pcb: *const TcpPcb) -> u16;
    fn np_tcp_bind(pcb: *mut TcpPcb, port: u16) -> i8;
    fn np_tcp_connect(pcb: *mut TcpPcb, ip: u32, port: u16, connected: Option<ConnectedFn>) -> i8;
    fn np_tcp_nagle_disable(pcb: *mut TcpPcb);
    fn np_tcp_backlog_delayed(pcb: *mut TcpPcb);
    fn np_tcp_backlog_accepted(pcb: *mut TcpPcb);
    fn np_pbuf_tot_len(p: *const Pbuf) -> u16;
    fn np_cfg_snd_buf() -> u32;
    fn np_cfg_wnd() -> u32;
    fn np_cfg_mss() -> u32;
    fn np_cfg_max_pcbs() -> u32;
    fn np_cfg_snd_queuelen() -> u32;
    fn np_tcp_half_open(lpcb: *const TcpPcb, out: *mut RawHalfOpen, max: i32) -> i32;
    fn np_tcp_drop_half_open(lpcb: *const TcpPcb, id: *const c_void) -> i32;
    fn np_tcp_listen_backlog(lpcb: *const TcpPcb, backlog: *mut u8, pending: *mut u8) -> i32;
    fn np_tcp_pcbs_for_syn(unlisted: u32) -> u32;
    fn np_tcp_backlog_set(lpcb: *mut TcpPcb, backlog: u8);
}

/// `struct np_half_open` (c/shim.c).
#[repr(C)]
#[derive(Copy, Clone)]
struct RawHalfOpen {
    pcb: *const c_void,
    remote_ip: u32,
    rcv_nxt: u32,
    remote_port: u16,
    pad: u16,
}

#[cfg(feature = "bundled")]
extern "C" {
    // c/port.c
    fn np_init(seed: u32);
    fn np_reset_stats();
    fn np_abort_all();
    fn np_stats(out: *mut RawStats);
    fn np_diag_counts(out: *mut DiagCounts);
    fn np_check_timeouts();
    fn np_sleeptime() -> u32;
    fn np_listen_pending(port: u16) -> i32;
}

#[cfg(feature = "sim")]
extern "C" {
    fn np_netif_setup(ip: u32, mask: u32, gw: u32, mtu: u16, out: Option<OutputFn>);
    fn np_netif_set_link(up: i32);
    fn np_netif_input(data: *const u8, len: u16) -> i8;
}

#[cfg(feature = "sim")]
type OutputFn = unsafe extern "C" fn(*const u8, u16);

/// `struct np_lwip_stats` (c/port.c).
#[cfg(feature = "bundled")]
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct RawStats {
    pub pcb_used: u32,
    pub pcb_max: u32,
    pub pcb_err: u32,
    pub pcb_avail: u32,
    pub seg_used: u32,
    pub seg_max: u32,
    pub seg_err: u32,
    pub mem_used: u32,
    pub mem_max: u32,
    pub mem_err: u32,
    pub tcp_xmit: u32,
    pub tcp_recv: u32,
    pub tcp_drop: u32,
    pub tcp_memerr: u32,
    pub tcp_proterr: u32,
    pub tcp_err: u32,
    pub tcp_rterr: u32,
    pub active: u32,
    pub time_wait: u32,
    pub listen: u32,
    pub bound: u32,
    pub syn: u32,
    pub established: u32,
    pub fin_wait: u32,
    pub close_wait: u32,
    pub last_ack: u32,
    pub closing: u32,
}

/// `struct np_diag_counts` (c/port.c).
#[cfg(feature = "bundled")]
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct DiagCounts {
    pub alloc_failed: u32,
    pub kill_timewait: u32,
    pub kill_state: u32,
    pub kill_prio: u32,
    pub backlog_full: u32,
    pub listen_no_pcb: u32,
    pub syn_maxrtx: u32,
    pub data_maxrtx: u32,
    pub stuck_removed: u32,
}

// ---------------------------------------------------------------------------------
// The clock
// ---------------------------------------------------------------------------------

/// lwIP's millisecond clock: what `sys_now()` returns.
static NOW_MS: AtomicU32 = AtomicU32::new(0);

/// lwIP's clock (`sys_now`) for the bundled build: the virtual time the application
/// last gave [`LwipStack::poll`](crate::LwipStack::poll).
#[cfg(feature = "bundled")]
#[no_mangle]
pub extern "C" fn sys_now() -> u32 {
    NOW_MS.load(Ordering::Relaxed)
}

/// The clock now.
pub(crate) fn clock() -> u32 {
    NOW_MS.load(Ordering::Relaxed)
}

/// Move the clock to `ms` (never backwards, modulo wrap-around).
pub(crate) fn set_clock(ms: u32) {
    let now = NOW_MS.load(Ordering::Relaxed);
    if (ms.wrapping_sub(now) as i32) > 0 {
        NOW_MS.store(ms, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------

/// A PCB pointer the registry owns. Only touched from the context that runs lwIP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Pcb(NonNull<TcpPcb>);

// SAFETY: lwIP objects are used from one context at a time (rule 6); the pointer is
// moved between threads only together with the whole (single) stack instance, under
// the registry's critical section.
unsafe impl Send for Pcb {}

/// A received pbuf chain, owned by the registry until read.
#[derive(Debug)]
struct Chain(NonNull<Pbuf>);

// SAFETY: as for `Pcb`.
unsafe impl Send for Chain {}

/// What a table slot holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Nothing.
    Free,
    /// Taken by [`new_socket`] before `tcp_new` returned.
    Reserved,
    /// From `tcp_new`, nothing done.
    Fresh,
    /// `tcp_bind` done.
    Bound,
    /// A listening PCB.
    Listener,
    /// `tcp_connect` sent the SYN.
    Connecting,
    /// Accepted by lwIP for listener slot `listener`, not yet handed out (`seq`:
    /// arrival order).
    Pending { listener: u16, seq: u32 },
    /// Connected (by connect or accept), held by the application.
    Connected,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    kind: Kind,
    /// `None` once lwIP freed the PCB (err callback) or the slot is free.
    pcb: Option<Pcb>,
    /// Received, not yet read.
    rx: Option<Chain>,
    rx_len: usize,
    /// The peer sent FIN (recv callback with no pbuf).
    fin: bool,
    /// The `err_t` of the err callback, once lwIP freed the PCB.
    err: i8,
    /// The port bound or listened on.
    port: u16,
    remote: Option<SocketAddrV4>,
    /// Bytes the peer acknowledged (sent callback).
    acked: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        generation: 0,
        kind: Kind::Free,
        pcb: None,
        rx: None,
        rx_len: 0,
        fin: false,
        err: ERR_OK,
        port: 0,
        remote: None,
        acked: 0,
    };

    /// Empty the slot and bump its generation; returns what it owned.
    fn release(&mut self) -> (Option<Pcb>, Kind, Option<Chain>) {
        let out = (self.pcb.take(), self.kind, self.rx.take());
        let generation = self.generation.wrapping_add(1);
        *self = Slot::EMPTY;
        self.generation = generation;
        out
    }
}

struct Registry {
    slots: [Slot; MAX_SOCKETS],
    seq: u32,
    events: Events,
    /// Priority given to accepted connections (0: keep the listener's).
    accept_prio: u8,
    /// A stack instance is alive (one at a time).
    taken: bool,
    /// `lwip_init` ran (bundled).
    initialized: bool,
}

impl Registry {
    const fn new() -> Self {
        Registry {
            slots: [const { Slot::EMPTY }; MAX_SOCKETS],
            seq: 0,
            events: Events {
                accepted: 0,
                accept_no_pcb: 0,
                accept_no_slot: 0,
                reset: 0,
                killed: 0,
                killed_in_backlog: 0,
                timed_out: 0,
                other_errors: 0,
                died_in_backlog: 0,
                close_fell_back_to_abort: 0,
                write_mem: 0,
            },
            accept_prio: 0,
            taken: false,
            initialized: false,
        }
    }

    fn free_index(&self) -> Option<usize> {
        self.slots.iter().position(|s| s.kind == Kind::Free)
    }

    fn token(&self, i: usize) -> LwipSocket {
        LwipSocket::new(i as u16, self.slots[i].generation)
    }

    /// The slot of a live token.
    fn resolve(&self, s: LwipSocket) -> Result<usize, LwipError> {
        let i = s.index();
        match self.slots.get(i) {
            Some(slot)
                if slot.generation == s.generation() && !matches!(slot.kind, Kind::Free | Kind::Reserved) =>
            {
                Ok(i)
            }
            _ => Err(LwipError::Stale),
        }
    }
}

static REGISTRY: Mutex<RefCell<Registry>> = Mutex::new(RefCell::new(Registry::new()));

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    critical_section::with(|cs| f(&mut REGISTRY.borrow_ref_mut(cs)))
}

/// Where lwIP is running when a callback fires: it tells a `tcp_kill_prio` victim
/// (packet input or an API call allocating a PCB) from a timer abort.
static CONTEXT: AtomicU8 = AtomicU8::new(CTX_API);
const CTX_API: u8 = 0;
#[cfg(feature = "sim")]
const CTX_INPUT: u8 = 1;
#[cfg(feature = "bundled")]
const CTX_TIMERS: u8 = 2;

fn arg_of(index: usize) -> *mut c_void {
    // An integer, never dereferenced: index + 1 so that NULL means "no slot".
    ptr::without_provenance_mut(index + 1)
}

fn index_of(arg: *mut c_void) -> Option<usize> {
    let v = arg as usize;
    (1..=MAX_SOCKETS).contains(&v).then(|| v - 1)
}

// ---------------------------------------------------------------------------------
// Life cycle
// ---------------------------------------------------------------------------------

/// Take the process's one lwIP instance. With `bundled`, the first call runs
/// `lwip_init`; every call resets lwIP's statistics. `false` if it is taken.
pub(crate) fn acquire() -> bool {
    // Flags under the critical section (no atomic read-modify-write on every target).
    let first = with(|r| {
        if r.taken {
            return None;
        }
        r.taken = true;
        r.events = Events::default();
        r.accept_prio = 0;
        Some(!core::mem::replace(&mut r.initialized, true))
    });
    let Some(first) = first else {
        return false;
    };
    #[cfg(feature = "bundled")]
    {
        if first {
            // SAFETY: runs once per process, before any other lwIP call.
            unsafe { np_init(0x5eed_1234) };
        }
        // SAFETY: plain counter writes in lwIP's statistics.
        unsafe { np_reset_stats() };
    }
    #[cfg(not(feature = "bundled"))]
    let _ = first;
    true
}

/// Give every socket back to lwIP (connections aborted with RST, listeners closed),
/// free every received pbuf, and release the instance. With `bundled`, lwIP is left
/// without a single PCB (TIME-WAIT and closing connections are aborted too).
pub(crate) fn shutdown() {
    let mut owned: [(Option<Pcb>, Kind, Option<Chain>); MAX_SOCKETS] =
        [const { (None, Kind::Free, None) }; MAX_SOCKETS];
    with(|r| {
        for (slot, out) in r.slots.iter_mut().zip(owned.iter_mut()) {
            if slot.kind != Kind::Free {
                *out = slot.release();
            }
        }
    });
    // Connections first (a backlog connection's abort updates its listener), then
    // listeners.
    for (pcb, kind, chain) in owned.iter_mut() {
        free_chain(chain.take());
        if let Some(pcb) = pcb.filter(|_| *kind != Kind::Listener) {
            // SAFETY: the registry owned this live PCB and no longer knows it.
            unsafe {
                detach(pcb);
                tcp_abort(pcb.0.as_ptr());
            }
        }
    }
    for (pcb, kind, _) in owned.iter() {
        if let Some(pcb) = pcb.filter(|_| *kind == Kind::Listener) {
            // SAFETY: as above; a listening PCB gets only its argument and accept
            // callback cleared (lwIP asserts against the others on LISTEN PCBs).
            unsafe { close_listener_pcb(pcb) };
        }
    }
    #[cfg(feature = "bundled")]
    // SAFETY: aborts the PCBs lwIP still has (closing, TIME-WAIT), none of which the
    // registry knows any more.
    unsafe {
        np_abort_all()
    };
    with(|r| r.taken = false);
}

/// Clear a live PCB's callbacks and argument: lwIP will not call back for it again.
///
/// # Safety
/// `pcb` is alive and not listening.
unsafe fn detach(pcb: Pcb) {
    let p = pcb.0.as_ptr();
    unsafe {
        tcp_arg(p, ptr::null_mut());
        tcp_recv(p, None);
        tcp_sent(p, None);
        tcp_err(p, None);
    }
}

/// Close a listening PCB.
///
/// # Safety
/// `pcb` is a live listening PCB the registry no longer knows.
unsafe fn close_listener_pcb(pcb: Pcb) {
    let p = pcb.0.as_ptr();
    unsafe {
        tcp_arg(p, ptr::null_mut());
        tcp_accept(p, None);
        // Closing a listener always succeeds and frees it.
        let _ = tcp_close(p);
    }
}

fn free_chain(chain: Option<Chain>) {
    if let Some(c) = chain {
        // SAFETY: the registry owned this chain alone.
        unsafe { pbuf_free(c.0.as_ptr()) };
    }
}

pub(crate) fn config() -> LwipConfig {
    // SAFETY: constant getters.
    unsafe {
        LwipConfig {
            snd_buf: np_cfg_snd_buf(),
            wnd: np_cfg_wnd(),
            mss: np_cfg_mss(),
            max_pcbs: np_cfg_max_pcbs(),
            snd_queuelen: np_cfg_snd_queuelen(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------------

/// lwIP freed the PCB (rule 1): forget the pointer first.
unsafe extern "C" fn on_err(arg: *mut c_void, err: i8) {
    let Some(i) = index_of(arg) else {
        return;
    };
    let ctx = CONTEXT.load(Ordering::Relaxed);
    with(|r| {
        let slot = &mut r.slots[i];
        if slot.pcb.take().is_none() {
            return;
        }
        slot.err = if err == ERR_OK { ERR_CLSD } else { err };
        let pending = matches!(slot.kind, Kind::Pending { .. });
        let e = &mut r.events;
        match err {
            ERR_RST => e.reset += 1,
            #[cfg(feature = "bundled")]
            ERR_ABRT if ctx == CTX_TIMERS => e.timed_out += 1,
            ERR_ABRT => {
                let _ = ctx;
                e.killed += 1;
                if pending {
                    e.killed_in_backlog += 1;
                }
            }
            _ => e.other_errors += 1,
        }
    });
}

/// Data (or the peer's FIN, `p == NULL`) for a connection: queue it until read.
unsafe extern "C" fn on_recv(arg: *mut c_void, pcb: *mut TcpPcb, p: *mut Pbuf, err: i8) -> i8 {
    let Some(p) = NonNull::new(p) else {
        if let Some(i) = index_of(arg) {
            with(|r| r.slots[i].fin = true);
        }
        return ERR_OK;
    };
    // SAFETY: lwIP passes a valid pbuf chain, now ours.
    let len = usize::from(unsafe { np_pbuf_tot_len(p.as_ptr()) });
    let queued = index_of(arg).filter(|_| err == ERR_OK).map(|i| {
        with(|r| {
            let slot = &mut r.slots[i];
            if slot.pcb.is_none() || slot.rx_len + len > usize::from(u16::MAX) {
                // Refused: lwIP keeps it and offers it again from its fast timer.
                return false;
            }
            match &slot.rx {
                // SAFETY: both chains are ours; `pbuf_cat` takes over `p`.
                Some(head) => unsafe { pbuf_cat(head.0.as_ptr(), p.as_ptr()) },
                None => slot.rx = Some(Chain(p)),
            }
            slot.rx_len += len;
            true
        })
    });
    match queued {
        Some(true) => ERR_OK,
        Some(false) => ERR_MEM,
        None => {
            // Not ours (cannot happen: callbacks are cleared before release): behave
            // like lwIP's tcp_recv_null.
            // SAFETY: `pcb` is the live PCB lwIP called us for; `p` is ours.
            unsafe {
                tcp_recved(pcb, len as u16);
                pbuf_free(p.as_ptr());
            }
            ERR_OK
        }
    }
}

unsafe extern "C" fn on_sent(arg: *mut c_void, _pcb: *mut TcpPcb, len: u16) -> i8 {
    if let Some(i) = index_of(arg) {
        with(|r| r.slots[i].acked += u64::from(len));
    }
    ERR_OK
}

unsafe extern "C" fn on_connected(arg: *mut c_void, _pcb: *mut TcpPcb, _err: i8) -> i8 {
    if let Some(i) = index_of(arg) {
        with(|r| {
            if r.slots[i].kind == Kind::Connecting {
                r.slots[i].kind = Kind::Connected;
            }
        });
    }
    ERR_OK
}

/// A listener's new connection (or `newpcb == NULL`: no PCB could be allocated for a
/// SYN). It waits in a table slot, counted in lwIP's backlog
/// (`tcp_backlog_delayed`), until [`accept`] hands it out.
unsafe extern "C" fn on_accept(arg: *mut c_void, newpcb: *mut TcpPcb, err: i8) -> i8 {
    let (Some(pcb), ERR_OK) = (NonNull::new(newpcb), err) else {
        with(|r| r.events.accept_no_pcb += 1);
        return ERR_MEM;
    };
    let Some(listener) = index_of(arg) else {
        return ERR_MEM; // lwIP aborts it
    };
    let pcb = Pcb(pcb);
    let (mut ip, mut port) = (0u32, 0u16);
    // SAFETY: `pcb` is the live new connection.
    unsafe { np_tcp_remote(pcb.0.as_ptr(), &mut ip, &mut port) };
    let remote = SocketAddrV4::new(Ipv4Addr::from(ip), port);
    let taken = with(|r| {
        let Some(i) = r.free_index() else {
            r.events.accept_no_slot += 1;
            return None;
        };
        r.seq = r.seq.wrapping_add(1);
        let seq = r.seq;
        let local = r.slots[listener].port;
        let slot = &mut r.slots[i];
        slot.kind = Kind::Pending {
            listener: listener as u16,
            seq,
        };
        slot.pcb = Some(pcb);
        slot.remote = Some(remote);
        slot.port = local;
        r.events.accepted += 1;
        Some((i, r.accept_prio))
    });
    let Some((i, prio)) = taken else {
        return ERR_MEM; // lwIP aborts it (no err callback is set yet)
    };
    // SAFETY: `pcb` is live; none of these calls back.
    unsafe {
        attach(pcb, i);
        np_tcp_backlog_delayed(pcb.0.as_ptr());
        if prio != 0 {
            tcp_setprio(pcb.0.as_ptr(), prio);
        }
    }
    ERR_OK
}

/// Point a connection PCB's callbacks at slot `i`; Nagle off (the application decides
/// with MORE/push when data goes out).
///
/// # Safety
/// `pcb` is alive and not listening.
unsafe fn attach(pcb: Pcb, i: usize) {
    let p = pcb.0.as_ptr();
    unsafe {
        tcp_arg(p, arg_of(i));
        tcp_recv(p, Some(on_recv));
        tcp_sent(p, Some(on_sent));
        tcp_err(p, Some(on_err));
        np_tcp_nagle_disable(p);
    }
}

// ---------------------------------------------------------------------------------
// Operations (safe: every one resolves its token first)
// ---------------------------------------------------------------------------------

/// What the table knows about a socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub kind: Kind,
    pub alive: bool,
    pub err: i8,
    pub fin: bool,
    pub rx_len: usize,
    pub port: u16,
    pub remote: Option<SocketAddrV4>,
    pub acked: u64,
}

pub(crate) fn view(s: LwipSocket) -> Result<View, LwipError> {
    with(|r| {
        let i = r.resolve(s)?;
        let slot = &r.slots[i];
        Ok(View {
            kind: slot.kind,
            alive: slot.pcb.is_some(),
            err: slot.err,
            fin: slot.fin,
            rx_len: slot.rx_len,
            port: slot.port,
            remote: slot.remote,
            acked: slot.acked,
        })
    })
}

/// The live PCB of a token whose slot is of a kind `ok` accepts.
fn pcb_of(s: LwipSocket, ok: impl Fn(Kind) -> bool) -> Result<Pcb, LwipError> {
    with(|r| {
        let i = r.resolve(s)?;
        let slot = &r.slots[i];
        if !ok(slot.kind) {
            return Err(LwipError::InvalidState);
        }
        slot.pcb.ok_or(LwipError::Lwip(LwipErr(slot.err)))
    })
}

/// `tcp_new`, in a fresh slot.
pub(crate) fn new_socket() -> Result<LwipSocket, LwipError> {
    let i = with(|r| {
        let i = r.free_index()?;
        r.slots[i].kind = Kind::Reserved;
        Some(i)
    })
    .ok_or(LwipError::NoSlot)?;
    // SAFETY: may reclaim PCBs (TIME-WAIT, or tcp_kill_prio: an err callback, which
    // borrows the table itself); no borrow is held here.
    let pcb = unsafe { tcp_new() };
    let Some(pcb) = NonNull::new(pcb).map(Pcb) else {
        with(|r| r.slots[i].kind = Kind::Free);
        return Err(LwipError::Lwip(LwipErr(ERR_MEM)));
    };
    // SAFETY: a new, live, closed PCB.
    unsafe { attach(pcb, i) };
    Ok(with(|r| {
        r.slots[i].kind = Kind::Fresh;
        r.slots[i].pcb = Some(pcb);
        r.token(i)
    }))
}

/// `tcp_bind` to `port` (0: an ephemeral port); returns the port.
pub(crate) fn bind(s: LwipSocket, port: u16) -> Result<u16, LwipError> {
    let pcb = pcb_of(s, |k| k == Kind::Fresh)?;
    // SAFETY: live PCB; tcp_bind does not call back.
    let (err, bound) = unsafe {
        (
            np_tcp_bind(pcb.0.as_ptr(), port),
            np_tcp_local_port(pcb.0.as_ptr()),
        )
    };
    if err != ERR_OK {
        return Err(LwipError::Lwip(LwipErr(err)));
    }
    with(|r| {
        let i = r.resolve(s)?;
        r.slots[i].kind = Kind::Bound;
        r.slots[i].port = bound;
        Ok(bound)
    })
}

/// `tcp_listen_with_backlog`: the slot now holds the listening PCB.
pub(crate) fn listen(s: LwipSocket, backlog: u8) -> Result<(), LwipError> {
    let pcb = pcb_of(s, |k| k == Kind::Bound)?;
    let mut err = ERR_OK;
    // SAFETY: live bound PCB. On success lwIP frees it and returns the listening PCB
    // (which keeps its argument); on failure it is untouched.
    let lpcb = unsafe { tcp_listen_with_backlog_and_err(pcb.0.as_ptr(), backlog.max(1), &mut err) };
    let Some(lpcb) = NonNull::new(lpcb).map(Pcb) else {
        return Err(LwipError::Lwip(LwipErr(if err == ERR_OK {
            ERR_MEM
        } else {
            err
        })));
    };
    // SAFETY: live listening PCB.
    unsafe { tcp_accept(lpcb.0.as_ptr(), Some(on_accept)) };
    with(|r| {
        let i = r.resolve(s)?;
        r.slots[i].kind = Kind::Listener;
        r.slots[i].pcb = Some(lpcb);
        Ok(())
    })
}

/// `tcp_connect` (sends the SYN).
pub(crate) fn connect(s: LwipSocket, remote: SocketAddrV4) -> Result<(), LwipError> {
    let pcb = pcb_of(s, |k| matches!(k, Kind::Fresh | Kind::Bound))?;
    // SAFETY: live PCB; tcp_connect sends a SYN (output only, no callbacks).
    let err = unsafe {
        np_tcp_connect(
            pcb.0.as_ptr(),
            u32::from(*remote.ip()),
            remote.port(),
            Some(on_connected),
        )
    };
    if err != ERR_OK {
        return Err(LwipError::Lwip(LwipErr(err)));
    }
    with(|r| {
        let i = r.resolve(s)?;
        r.slots[i].kind = Kind::Connecting;
        r.slots[i].remote = Some(remote);
        Ok(())
    })
}

/// Hand out the oldest connection waiting on listener `s`; connections that died
/// while waiting are dropped on the way (counted).
pub(crate) fn accept(s: LwipSocket) -> Result<Option<(LwipSocket, SocketAddrV4)>, LwipError> {
    for _ in 0..MAX_SOCKETS {
        let next = with(|r| {
            let li = r.resolve(s)?;
            if r.slots[li].kind != Kind::Listener {
                return Err(LwipError::InvalidState);
            }
            let oldest = r
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| match slot.kind {
                    Kind::Pending { listener, seq } if usize::from(listener) == li => Some((seq, i)),
                    _ => None,
                })
                .max_by_key(|&(seq, _)| r.seq.wrapping_sub(seq))
                .map(|(_, i)| i);
            let Some(i) = oldest else {
                return Ok(None);
            };
            let slot = &mut r.slots[i];
            match slot.pcb {
                Some(pcb) => {
                    slot.kind = Kind::Connected;
                    let remote = slot.remote.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
                    Ok(Some(Ok((r.token(i), remote, pcb))))
                }
                None => {
                    let (_, _, chain) = slot.release();
                    r.events.died_in_backlog += 1;
                    Ok(Some(Err(chain)))
                }
            }
        })?;
        match next {
            None => return Ok(None),
            Some(Err(chain)) => free_chain(chain),
            Some(Ok((token, remote, pcb))) => {
                // SAFETY: live PCB, handed out now: it leaves the listener's backlog.
                unsafe { np_tcp_backlog_accepted(pcb.0.as_ptr()) };
                return Ok(Some((token, remote)));
            }
        }
    }
    Ok(None)
}

/// `tcp_write` as much of `data` as `tcp_sndbuf` allows, with `TCP_WRITE_FLAG_COPY`
/// and, exactly when `more`, `TCP_WRITE_FLAG_MORE`; `tcp_output` unless `more`.
/// Returns the bytes lwIP took (0: nothing fits now).
pub(crate) fn write(s: LwipSocket, data: &[u8], more: bool) -> Result<usize, LwipError> {
    let pcb = pcb_of(s, |k| matches!(k, Kind::Connected | Kind::Pending { .. }))?;
    let p = pcb.0.as_ptr();
    // SAFETY: live PCB.
    let room = usize::from(unsafe { np_tcp_sndbuf(p) });
    let n = data.len().min(room).min(usize::from(u16::MAX));
    let mut taken = 0;
    if n > 0 {
        let flags = TCP_WRITE_FLAG_COPY | if more { TCP_WRITE_FLAG_MORE } else { 0 };
        // SAFETY: live PCB; `data[..n]` is valid for `n` bytes and lwIP copies it
        // (TCP_WRITE_FLAG_COPY) before returning. tcp_write does not call back.
        let err = unsafe { tcp_write(p, data.as_ptr().cast(), n as u16, flags) };
        match err {
            ERR_OK => taken = n,
            // Queue length or segment memory: nothing taken, try again later.
            ERR_MEM => with(|r| r.events.write_mem += 1),
            err => return Err(LwipError::Lwip(LwipErr(err))),
        }
    }
    if !more {
        // SAFETY: live PCB (checked above in this same call); tcp_output only sends.
        // An error (no route, no memory) leaves the data queued for lwIP's timers.
        let _ = unsafe { tcp_output(p) };
    }
    Ok(taken)
}

/// What a read found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// This many bytes were copied.
    Data(usize),
    /// Nothing yet.
    Empty,
    /// The peer sent FIN and everything was read.
    End,
    /// lwIP freed the connection with this `err_t`, and everything was read.
    Gone(i8),
}

/// Copy received bytes into `buf`, free the pbufs they came in, and open the window
/// by as much (`tcp_recved`).
pub(crate) fn read(s: LwipSocket, buf: &mut [u8]) -> Result<Read, LwipError> {
    let (chain, pcb, fin, err) = with(|r| {
        let i = r.resolve(s)?;
        let slot = &mut r.slots[i];
        if !matches!(slot.kind, Kind::Connected | Kind::Pending { .. }) {
            return Err(LwipError::InvalidState);
        }
        Ok((slot.rx.take(), slot.pcb, slot.fin, slot.err))
    })?;
    let Some(chain) = chain else {
        return Ok(match (err, fin) {
            (ERR_OK, false) => Read::Empty,
            (ERR_OK, true) => Read::End,
            (err, _) => Read::Gone(err),
        });
    };
    let want = buf.len().min(usize::from(u16::MAX)) as u16;
    // SAFETY: the chain is ours (taken out of the table); `buf` holds `want` bytes.
    // Neither call reaches a callback.
    let (copied, rest) = unsafe {
        let copied = pbuf_copy_partial(chain.0.as_ptr(), buf.as_mut_ptr().cast(), want, 0);
        (copied, pbuf_free_header(chain.0.as_ptr(), copied))
    };
    with(|r| {
        // The slot cannot have changed: nothing ran since (single context).
        if let Ok(i) = r.resolve(s) {
            let slot = &mut r.slots[i];
            slot.rx = NonNull::new(rest).map(Chain);
            slot.rx_len -= usize::from(copied);
        }
    });
    if let Some(pcb) = pcb {
        // SAFETY: live PCB (no callback ran since it was read from the table);
        // tcp_recved may send a window update, nothing else.
        unsafe { tcp_recved(pcb.0.as_ptr(), copied) };
    }
    Ok(Read::Data(usize::from(copied)))
}

/// Give the socket back: a listener is closed (connections waiting in its backlog
/// are aborted first); a connection is closed gracefully with `tcp_close` (FIN after
/// the queued data; lwIP sends RST instead if received data was left unread), or,
/// when `abort`, with `tcp_abort` (RST, PCB freed at once).
pub(crate) fn release(s: LwipSocket, abort: bool) -> Result<(), LwipError> {
    let mut backlog: [Option<(Option<Pcb>, Option<Chain>)>; MAX_SOCKETS] = [const { None }; MAX_SOCKETS];
    let (pcb, kind, chain) = with(|r| {
        let i = r.resolve(s)?;
        if r.slots[i].kind == Kind::Listener {
            for (j, out) in backlog.iter_mut().enumerate() {
                if matches!(r.slots[j].kind, Kind::Pending { listener, .. } if usize::from(listener) == i) {
                    let (pcb, _, chain) = r.slots[j].release();
                    *out = Some((pcb, chain));
                }
            }
        }
        Ok(r.slots[i].release())
    })?;
    free_chain(chain);
    for (pcb, chain) in backlog.into_iter().flatten() {
        free_chain(chain);
        if let Some(pcb) = pcb {
            // SAFETY: live connection PCB the table no longer knows.
            unsafe {
                detach(pcb);
                tcp_abort(pcb.0.as_ptr());
            }
        }
    }
    let Some(pcb) = pcb else {
        return Ok(()); // lwIP already freed it
    };
    if kind == Kind::Listener {
        // SAFETY: live listening PCB the table no longer knows.
        unsafe { close_listener_pcb(pcb) };
        return Ok(());
    }
    // SAFETY: live connection PCB the table no longer knows; callbacks cleared first
    // so lwIP's own err callback (tcp_abort) or later events find nothing.
    unsafe {
        detach(pcb);
        if abort {
            tcp_abort(pcb.0.as_ptr());
        } else if tcp_close(pcb.0.as_ptr()) != ERR_OK {
            // Out of memory for the FIN: abort rather than keep the PCB.
            tcp_abort(pcb.0.as_ptr());
            with(|r| r.events.close_fell_back_to_abort += 1);
        }
    }
    Ok(())
}

pub(crate) fn send_queue(s: LwipSocket) -> Option<SendQueue> {
    let pcb = pcb_of(s, |k| {
        matches!(k, Kind::Connected | Kind::Connecting | Kind::Pending { .. })
    })
    .ok()?;
    let p = pcb.0.as_ptr();
    let (mut unsent, mut unacked) = (0u32, 0u32);
    // SAFETY: live PCB; read-only accessors.
    let (sndbuf, pbufs, snd_buf) = unsafe {
        np_tcp_queues(p, &mut unsent, &mut unacked);
        (np_tcp_sndbuf(p), np_tcp_sndqueuelen(p), np_cfg_snd_buf())
    };
    Some(SendQueue {
        queued: (snd_buf as usize).saturating_sub(usize::from(sndbuf)),
        pbufs,
        unsent: unsent as usize,
        unacked: unacked as usize,
    })
}

/// lwIP's `enum tcp_state` of a live PCB, and its priority.
pub(crate) fn tcp_state(s: LwipSocket) -> Option<(i32, u8)> {
    let pcb = pcb_of(s, |_| true).ok()?;
    // SAFETY: live PCB; read-only accessors.
    Some(unsafe { (np_tcp_state(pcb.0.as_ptr()), np_tcp_prio(pcb.0.as_ptr())) })
}

/// Set a live connection's priority (`tcp_setprio`; lwIP's `tcp_kill_prio` only
/// kills connections of lower priority than the newcomer's).
pub(crate) fn set_priority(s: LwipSocket, prio: u8) -> Result<(), LwipError> {
    let pcb = pcb_of(s, |k| k != Kind::Listener)?;
    // SAFETY: live PCB.
    unsafe { tcp_setprio(pcb.0.as_ptr(), prio) };
    Ok(())
}

/// Priority given to connections accepted from now on (0: the listener's).
pub(crate) fn set_accept_prio(prio: u8) {
    with(|r| r.accept_prio = prio);
}

pub(crate) fn events() -> Events {
    with(|r| r.events)
}

/// Sockets in the table by kind: (listeners, connecting, connected, waiting in a
/// backlog, dead but not yet released).
pub(crate) fn census() -> [usize; 5] {
    with(|r| {
        let mut c = [0; 5];
        for s in &r.slots {
            match s.kind {
                Kind::Listener => c[0] += 1,
                Kind::Connecting => c[1] += 1,
                Kind::Connected => c[2] += 1,
                Kind::Pending { .. } => c[3] += 1,
                _ => {}
            }
            if !matches!(s.kind, Kind::Free | Kind::Reserved) && s.pcb.is_none() {
                c[4] += 1;
            }
        }
        c
    })
}

// ---------------------------------------------------------------------------------
// The handshake lease: a listener's SYN-RCVD PCBs (c/shim.c)
// ---------------------------------------------------------------------------------

/// Most SYN-RCVD PCBs of one listener read in one pass (lwIP's `MEMP_NUM_TCP_PCB`
/// bounds them; firmware pools are 5 to 16).
pub(crate) const MAX_HALF_OPEN: usize = 32;

/// A SYN-RCVD PCB lwIP holds for a listener: not in the registry (lwIP made it on its
/// own from a SYN; the application never saw it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct HalfOpen {
    /// The PCB's address, as an identity only: handed back to the C side, which
    /// compares it against lwIP's list and never follows a pointer it did not find
    /// there.
    pub id: usize,
    /// The peer's initial sequence number + 1: with `id`, tells a PCB lwIP freed and
    /// reused for another handshake apart.
    pub rcv_nxt: u32,
    pub remote: SocketAddrV4,
}

impl HalfOpen {
    pub(crate) const NONE: HalfOpen = HalfOpen {
        id: 0,
        rcv_nxt: 0,
        remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    };
}

/// The SYN-RCVD PCBs of `listener` now: up to `out.len()` into `out`; returns how
/// many there are (possibly more). 0 for anything but a live listener.
pub(crate) fn half_opens(listener: LwipSocket, out: &mut [HalfOpen]) -> usize {
    let Ok(lpcb) = pcb_of(listener, |k| k == Kind::Listener) else {
        return 0;
    };
    let mut raw = [RawHalfOpen {
        pcb: ptr::null(),
        remote_ip: 0,
        rcv_nxt: 0,
        remote_port: 0,
        pad: 0,
    }; MAX_HALF_OPEN];
    let max = out.len().min(MAX_HALF_OPEN);
    // SAFETY: live listening PCB; the C side walks lwIP's active list (no callback)
    // and writes at most `max` entries of `raw`.
    let n = unsafe { np_tcp_half_open(lpcb.0.as_ptr(), raw.as_mut_ptr(), max as i32) };
    let n = usize::try_from(n).unwrap_or(0);
    for (o, r) in out.iter_mut().zip(&raw[..n.min(max)]) {
        *o = HalfOpen {
            id: r.pcb as usize,
            rcv_nxt: r.rcv_nxt,
            remote: SocketAddrV4::new(Ipv4Addr::from(r.remote_ip), r.remote_port),
        };
    }
    n
}

/// Drop `listener`'s SYN-RCVD PCB `id` without a word to the peer (`tcp_abandon(pcb,
/// 0)`: the listener's backlog count goes down, the PCB back to the pool, no
/// callback). `false` if lwIP no longer has it half-open for that listener.
pub(crate) fn drop_half_open(listener: LwipSocket, id: usize) -> bool {
    let Ok(lpcb) = pcb_of(listener, |k| k == Kind::Listener) else {
        return false;
    };
    // SAFETY: live listening PCB; `id` is only compared with the PCBs of lwIP's active
    // list, and the one found is abandoned: no err callback (a SYN-RCVD PCB has none),
    // so nothing re-enters the registry. No borrow of the table is held.
    unsafe { np_tcp_drop_half_open(lpcb.0.as_ptr(), id as *const c_void) != 0 }
}

/// `listener`'s listen backlog and what counts against it now (`accepts_pending`).
/// `None` without `TCP_LISTEN_BACKLOG` (no limit but the PCBs) or for a stale token.
pub(crate) fn listen_backlog_of(listener: LwipSocket) -> Option<(u8, u8)> {
    let lpcb = pcb_of(listener, |k| k == Kind::Listener).ok()?;
    let (mut backlog, mut pending) = (0u8, 0u8);
    // SAFETY: live listening PCB; reads two fields.
    let has = unsafe { np_tcp_listen_backlog(lpcb.0.as_ptr(), &mut backlog, &mut pending) };
    (has != 0).then_some((backlog, pending))
}

/// Set `listener`'s listen backlog (at least 1; nothing without `TCP_LISTEN_BACKLOG`).
pub(crate) fn set_listen_backlog(listener: LwipSocket, backlog: u8) {
    if let Ok(lpcb) = pcb_of(listener, |k| k == Kind::Listener) {
        // SAFETY: live listening PCB; writes one field.
        unsafe { np_tcp_backlog_set(lpcb.0.as_ptr(), backlog.max(1)) };
    }
}

/// PCBs a SYN could get now (free, or reclaimed by `tcp_alloc` from TIME-WAIT,
/// LAST-ACK, CLOSING). `u32::MAX` when lwIP allocates PCBs from the heap.
pub(crate) fn pcbs_for_syn() -> u32 {
    // Fresh PCBs (tcp_new, not bound): in no lwIP list.
    let unlisted = with(|r| {
        r.slots
            .iter()
            .filter(|s| s.kind == Kind::Fresh && s.pcb.is_some())
            .count() as u32
    });
    // SAFETY: walks lwIP's PCB lists.
    unsafe { np_tcp_pcbs_for_syn(unlisted) }
}

/// Connections established on `listener` and waiting for `accept` (alive: each holds
/// an entry of lwIP's backlog).
pub(crate) fn waiting(listener: LwipSocket) -> usize {
    with(|r| {
        let Ok(li) = r.resolve(listener) else {
            return 0;
        };
        r.slots
            .iter()
            .filter(|s| matches!(s.kind, Kind::Pending { listener, .. } if usize::from(listener) == li))
            .filter(|s| s.pcb.is_some())
            .count()
    })
}

/// Every live listener in the table: its tokens in `out`, how many.
pub(crate) fn listeners(out: &mut [LwipSocket; MAX_SOCKETS]) -> usize {
    with(|r| {
        let mut n = 0;
        for i in 0..MAX_SOCKETS {
            if r.slots[i].kind == Kind::Listener && r.slots[i].pcb.is_some() {
                out[n] = r.token(i);
                n += 1;
            }
        }
        n
    })
}

// ---------------------------------------------------------------------------------
// Bundled lwIP: timers, statistics
// ---------------------------------------------------------------------------------

/// `sys_check_timeouts()`: lwIP's timers due at the current clock.
#[cfg(feature = "bundled")]
pub(crate) fn check_timeouts() {
    CONTEXT.store(CTX_TIMERS, Ordering::Relaxed);
    // SAFETY: may call back (err, recv of refused data); no borrow is held.
    unsafe { np_check_timeouts() };
    CONTEXT.store(CTX_API, Ordering::Relaxed);
}

/// Milliseconds until lwIP's next timer (`None`: none).
#[cfg(feature = "bundled")]
pub(crate) fn sleeptime() -> Option<u32> {
    // SAFETY: reads lwIP's timer list.
    let ms = unsafe { np_sleeptime() };
    (ms != u32::MAX).then_some(ms)
}

#[cfg(feature = "bundled")]
pub(crate) fn raw_stats() -> (RawStats, DiagCounts) {
    let (mut s, mut d) = (RawStats::default(), DiagCounts::default());
    // SAFETY: the C side fills plain structs of u32 with the same layout.
    unsafe {
        np_stats(&mut s);
        np_diag_counts(&mut d);
    }
    (s, d)
}

/// The backlog count lwIP keeps for the listener on `port` (`accepts_pending`).
#[cfg(feature = "bundled")]
pub(crate) fn listen_pending(port: u16) -> Option<u8> {
    // SAFETY: reads lwIP's listener list.
    let n = unsafe { np_listen_pending(port) };
    u8::try_from(n).ok()
}

// ---------------------------------------------------------------------------------
// Simulator network interface
// ---------------------------------------------------------------------------------

#[cfg(feature = "sim")]
static OUTBOX: Mutex<RefCell<std::vec::Vec<std::vec::Vec<u8>>>> =
    Mutex::new(RefCell::new(std::vec::Vec::new()));

/// lwIP's netif output: one IPv4 packet, copied.
#[cfg(feature = "sim")]
unsafe extern "C" fn on_output(data: *const u8, len: u16) {
    if data.is_null() {
        return;
    }
    // SAFETY: the C side passes a buffer of `len` bytes, valid during this call.
    let bytes = unsafe { core::slice::from_raw_parts(data, usize::from(len)) }.to_vec();
    critical_section::with(|cs| OUTBOX.borrow_ref_mut(cs).push(bytes));
}

/// Set up (or re-address) the one network interface: `ip`/`prefix`, default route.
#[cfg(feature = "sim")]
pub(crate) fn netif_setup(ip: Ipv4Addr, prefix: u8, mtu: u16) {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    let ip = u32::from(ip);
    // SAFETY: configures lwIP's static netif; packets go to `on_output`.
    unsafe { np_netif_setup(ip, mask, (ip & mask) | 1, mtu, Some(on_output)) };
    critical_section::with(|cs| OUTBOX.borrow_ref_mut(cs).clear());
}

#[cfg(feature = "sim")]
pub(crate) fn netif_set_link(up: bool) {
    // SAFETY: lwIP netif flag change (may call back on address change: not here).
    unsafe { np_netif_set_link(i32::from(up)) };
}

/// One IPv4 packet from the link into lwIP (`ip_input`). Returns lwIP's `err_t`.
#[cfg(feature = "sim")]
pub(crate) fn netif_input(packet: &[u8]) -> i8 {
    let Ok(len) = u16::try_from(packet.len()) else {
        return crate::error::ERR_VAL;
    };
    CONTEXT.store(CTX_INPUT, Ordering::Relaxed);
    // SAFETY: lwIP copies the bytes into a pbuf before processing; callbacks borrow
    // the table themselves (no borrow held here).
    let err = unsafe { np_netif_input(packet.as_ptr(), len) };
    CONTEXT.store(CTX_API, Ordering::Relaxed);
    err
}

/// The packets lwIP sent since the last call.
#[cfg(feature = "sim")]
pub(crate) fn take_output() -> std::vec::Vec<std::vec::Vec<u8>> {
    critical_section::with(|cs| core::mem::take(&mut *OUTBOX.borrow_ref_mut(cs)))
}
