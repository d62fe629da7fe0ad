//! Plain data read from lwIP: what its callbacks reported ([`Events`]), its
//! compile-time TCP options ([`LwipConfig`]) and a connection's send queue
//! ([`SendQueue`]). Read with [`LwipStack`](crate::LwipStack)'s `events`, `config`
//! and `send_queue_detail`; nothing here touches lwIP.

/// What lwIP's callbacks reported, counted since the stack was created.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Connections lwIP established on a listener and handed to the accept callback.
    pub accepted: u64,
    /// Accept callbacks without a connection: lwIP could not allocate a PCB for a SYN
    /// (`tcp_alloc` failed after reclaiming what it may; the SYN is dropped).
    pub accept_no_pcb: u64,
    /// Connections refused because the backend's table ([`MAX_SOCKETS`](crate::MAX_SOCKETS)) was full.
    pub accept_no_slot: u64,
    /// Connections reset by the peer (`ERR_RST`).
    pub reset: u64,
    /// Connections lwIP aborted while handling a packet or an API call (`ERR_ABRT`
    /// outside the timers): `tcp_kill_prio` reclaiming the PCB for a newcomer. (Only
    /// bundled builds run lwIP's timers through the backend; in a firmware, timer
    /// aborts are counted here too.)
    pub killed: u64,
    /// ... of which were still waiting in a listener's backlog.
    pub killed_in_backlog: u64,
    /// Connections lwIP aborted from its timers (`ERR_ABRT`: retransmissions or SYN
    /// retries exhausted, a PCB stuck in a closing state).
    pub timed_out: u64,
    /// Other err callbacks.
    pub other_errors: u64,
    /// Backlog connections found dead when `accept` came to them (dropped, never
    /// handed out).
    pub died_in_backlog: u64,
    /// `tcp_close` refused (out of memory for the FIN): the connection was aborted
    /// instead, so the close is still immediate.
    pub close_fell_back_to_abort: u64,
    /// `tcp_write` refused with `ERR_MEM` although `tcp_sndbuf` had room (send-queue
    /// length or segment pool exhausted): reported as would-block, nothing taken.
    pub write_mem: u64,
}

/// lwIP's compile-time TCP options, as the C side sees them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LwipConfig {
    /// `TCP_SND_BUF`.
    pub snd_buf: u32,
    /// `TCP_WND`.
    pub wnd: u32,
    /// `TCP_MSS`.
    pub mss: u32,
    /// `MEMP_NUM_TCP_PCB`.
    pub max_pcbs: u32,
    /// `TCP_SND_QUEUELEN`.
    pub snd_queuelen: u32,
}

/// A connection's send queue.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SendQueue {
    /// Bytes taken by `tcp_write` and not yet acknowledged: `TCP_SND_BUF -
    /// tcp_sndbuf(pcb)`.
    pub queued: usize,
    /// pbufs queued (`tcp_sndqueuelen`; lwIP refuses writes at `TCP_SND_QUEUELEN`).
    pub pbufs: u16,
    /// Bytes in segments not yet sent.
    pub unsent: usize,
    /// Bytes sent and not yet acknowledged.
    pub unacked: usize,
}
