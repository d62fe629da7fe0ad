/*
 * Accessors over lwIP's macros and structs for netpool-lwip's Rust side, which treats
 * `struct tcp_pcb` and `struct pbuf` as opaque. Compiled against whatever lwipopts.h
 * the lwIP build uses (bundled, or the firmware's through NETPOOL_LWIP_INCLUDE), so
 * the Rust side never depends on a struct layout or an option.
 *
 * Call only where lwIP may be called: from the context that runs lwIP (NO_SYS main
 * loop, or with the tcpip core lock held).
 */
#include "lwip/opt.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"

#if !LWIP_TCP || !LWIP_CALLBACK_API || !LWIP_IPV4
#error "netpool-lwip needs LWIP_TCP, LWIP_CALLBACK_API and LWIP_IPV4"
#endif

uint16_t np_tcp_sndbuf(const struct tcp_pcb *pcb) { return (uint16_t)tcp_sndbuf(pcb); }

uint16_t np_tcp_sndqueuelen(const struct tcp_pcb *pcb) { return (uint16_t)tcp_sndqueuelen(pcb); }

/* Bytes of the segments written but not yet sent, and sent but not yet acknowledged. */
void np_tcp_queues(const struct tcp_pcb *pcb, uint32_t *unsent, uint32_t *unacked) {
    const struct tcp_seg *seg;
    uint32_t n = 0;
    for (seg = pcb->unsent; seg != NULL; seg = seg->next) {
        n += seg->len;
    }
    *unsent = n;
    n = 0;
    for (seg = pcb->unacked; seg != NULL; seg = seg->next) {
        n += seg->len;
    }
    *unacked = n;
}

int np_tcp_state(const struct tcp_pcb *pcb) { return (int)pcb->state; }

uint8_t np_tcp_prio(const struct tcp_pcb *pcb) { return pcb->prio; }

/* Remote address (host order: 192.0.2.1 is 0xc0000201) and port. */
void np_tcp_remote(const struct tcp_pcb *pcb, uint32_t *ip, uint16_t *port) {
    *ip = IP_IS_V4(&pcb->remote_ip) ? lwip_ntohl(ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip))) : 0;
    *port = pcb->remote_port;
}

uint16_t np_tcp_local_port(const struct tcp_pcb *pcb) { return pcb->local_port; }

err_t np_tcp_bind(struct tcp_pcb *pcb, uint16_t port) { return tcp_bind(pcb, IP_ANY_TYPE, port); }

err_t np_tcp_connect(struct tcp_pcb *pcb, uint32_t ip, uint16_t port, tcp_connected_fn connected) {
    ip_addr_t addr;
    IP_ADDR4(&addr, (ip >> 24) & 0xff, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
    return tcp_connect(pcb, &addr, port, connected);
}

void np_tcp_nagle_disable(struct tcp_pcb *pcb) { tcp_nagle_disable(pcb); }

void np_tcp_backlog_delayed(struct tcp_pcb *pcb) {
#if TCP_LISTEN_BACKLOG
    tcp_backlog_delayed(pcb);
#else
    LWIP_UNUSED_ARG(pcb);
#endif
}

void np_tcp_backlog_accepted(struct tcp_pcb *pcb) {
#if TCP_LISTEN_BACKLOG
    tcp_backlog_accepted(pcb);
#else
    LWIP_UNUSED_ARG(pcb);
#endif
}

uint16_t np_pbuf_tot_len(const struct pbuf *p) { return p->tot_len; }

/* The options the Rust side needs to know (TCP_SND_BUF: the send-queue arithmetic). */
uint32_t np_cfg_snd_buf(void) { return TCP_SND_BUF; }
uint32_t np_cfg_wnd(void) { return TCP_WND; }
uint32_t np_cfg_mss(void) { return TCP_MSS; }
uint32_t np_cfg_max_pcbs(void) { return MEMP_NUM_TCP_PCB; }
uint32_t np_cfg_snd_queuelen(void) { return TCP_SND_QUEUELEN; }

/* ------------------------------------------------------------------------------------
 * The handshake lease (src/lease.rs): a listener's SYN-RCVD PCBs, seen and dropped.
 *
 * lwIP keeps a SYN-RCVD PCB apart from its listener (in tcp_active_pcbs, `listener`
 * pointing at the listening PCB, the listener's callback_arg, no err callback), counted
 * in the listener's accepts_pending (TCP_LISTEN_BACKLOG) and holding a PCB of the pool
 * until the handshake completes or lwIP's own SYN-RCVD timeout (TCP_SYN_RCVD_TIMEOUT,
 * 20 s) / TCP_SYNMAXRTX give up. The Rust side keeps each one's first-seen time on its
 * own clock (lwIP's `tmr` counts TCP_SLOW_INTERVAL ticks of 500 ms, too coarse for the
 * 250 ms round trip) and a PCB pointer only as an identity: it is compared against
 * lwIP's lists here, never dereferenced on the Rust side, and a pointer no longer in the
 * list is simply not found.
 * ---------------------------------------------------------------------------------- */

/* One SYN-RCVD PCB of a listener. */
struct np_half_open {
    const void *pcb;      /* identity only */
    uint32_t remote_ip;   /* host order */
    uint32_t rcv_nxt;     /* the peer's ISN + 1: tells a reused PCB apart */
    uint16_t remote_port;
    uint16_t pad;
};

static int np_is_half_open_of(const struct tcp_pcb *pcb, const struct tcp_pcb *lpcb) {
    /* `listener` exists with LWIP_CALLBACK_API (required above) or TCP_LISTEN_BACKLOG;
     * lwIP clears it when the listener closes. */
    return pcb->state == SYN_RCVD && (const void *)pcb->listener == (const void *)lpcb;
}

/* The SYN-RCVD PCBs of listening PCB `lpcb`, newest first (lwIP's list order): up to
 * `max` into `out`; returns how many there are (possibly more than `max`). */
int np_tcp_half_open(const struct tcp_pcb *lpcb, struct np_half_open *out, int max) {
    const struct tcp_pcb *pcb;
    int n = 0;
    for (pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next) {
        if (!np_is_half_open_of(pcb, lpcb)) {
            continue;
        }
        if (n < max) {
            out[n].pcb = pcb;
            out[n].remote_ip =
                IP_IS_V4(&pcb->remote_ip) ? lwip_ntohl(ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip))) : 0;
            out[n].rcv_nxt = pcb->rcv_nxt;
            out[n].remote_port = pcb->remote_port;
            out[n].pad = 0;
        }
        n++;
    }
    return n;
}

/* Drop the SYN-RCVD PCB `id` of listening PCB `lpcb` without a word to the peer
 * (tcp_abandon(pcb, 0): no RST, so a real client whose SYN-ACK was lost retransmits its
 * SYN and is served; a RST would refuse it). lwIP decrements the listener's
 * accepts_pending (tcp_backlog_accepted) and frees the PCB; the err callback is not
 * called (a SYN-RCVD PCB has none: tcp_alloc zeroes it, tcp_listen_input sets only the
 * listener's callback_arg). Returns 1 if it was found (still SYN-RCVD, same listener)
 * and dropped, 0 otherwise. */
int np_tcp_drop_half_open(const struct tcp_pcb *lpcb, const void *id) {
    struct tcp_pcb *pcb;
    for (pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next) {
        if ((const void *)pcb == id && np_is_half_open_of(pcb, lpcb)) {
            tcp_abandon(pcb, 0);
            return 1;
        }
    }
    return 0;
}

/* The listen backlog of listening PCB `lpcb` and what counts against it now
 * (accepts_pending: SYN-RCVD PCBs and connections not yet accepted). Returns 0 without
 * TCP_LISTEN_BACKLOG (lwIP then takes SYNs while it has PCBs). */
int np_tcp_listen_backlog(const struct tcp_pcb *lpcb, uint8_t *backlog, uint8_t *pending) {
#if TCP_LISTEN_BACKLOG
    const struct tcp_pcb_listen *l = (const struct tcp_pcb_listen *)lpcb;
    *backlog = l->backlog;
    *pending = l->accepts_pending;
    return 1;
#else
    LWIP_UNUSED_ARG(lpcb);
    *backlog = 0;
    *pending = 0;
    return 0;
#endif
}

/* PCBs a SYN could get now: those free in the pool plus those tcp_alloc reclaims for it
 * (TIME-WAIT, LAST-ACK, CLOSING; not tcp_kill_prio's victims). `unlisted`: PCBs in no
 * lwIP list (tcp_new, not yet bound or connected), which only the caller knows.
 * UINT32_MAX with MEMP_MEM_MALLOC (the pool is the heap: no count to go by). */
uint32_t np_tcp_pcbs_for_syn(uint32_t unlisted) {
#if MEMP_MEM_MALLOC
    LWIP_UNUSED_ARG(unlisted);
    return UINT32_MAX;
#else
    const struct tcp_pcb *pcb;
    uint32_t used = unlisted, reclaimable = 0;
    for (pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next) {
        used++;
        if (pcb->state == LAST_ACK || pcb->state == CLOSING) {
            reclaimable++;
        }
    }
    for (pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next) {
        used++;
        reclaimable++;
    }
    for (pcb = tcp_bound_pcbs; pcb != NULL; pcb = pcb->next) {
        used++;
    }
    return (used < MEMP_NUM_TCP_PCB ? MEMP_NUM_TCP_PCB - used : 0) + reclaimable;
#endif
}

/* Set the listen backlog of listening PCB `lpcb` (at least 1; lwIP's tcp_backlog_set).
 * Nothing without TCP_LISTEN_BACKLOG. */
void np_tcp_backlog_set(struct tcp_pcb *lpcb, uint8_t backlog) {
#if TCP_LISTEN_BACKLOG
    tcp_backlog_set(lpcb, backlog);
#else
    LWIP_UNUSED_ARG(lpcb);
    LWIP_UNUSED_ARG(backlog);
#endif
}
