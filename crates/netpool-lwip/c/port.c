/*
 * Host port of lwIP for netpool-lwip (feature `bundled`): lwIP start-up, the
 * diagnostics counters, random numbers, and one network interface whose packets go
 * to and come from Rust (the simulator's link). `sys_now()` is in Rust (src/ffi.rs).
 *
 * Single context: everything here runs in the thread that owns the LwipStack.
 */
#include <stdarg.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"

/* ------------------------------------------------------------------ diagnostics */

/* What lwIP's TCP_DEBUG messages said about PCB allocation (see lwipopts.h). */
struct np_diag_counts {
    uint32_t alloc_failed;        /* tcp_alloc: pool empty, reclaiming started */
    uint32_t kill_timewait;       /* tcp_kill_timewait: TIME-WAIT PCB reclaimed */
    uint32_t kill_state;          /* tcp_kill_state: LAST-ACK / CLOSING PCB reclaimed */
    uint32_t kill_prio;           /* tcp_kill_prio: a live connection aborted */
    uint32_t backlog_full;        /* tcp_listen_input: SYN dropped, backlog full */
    uint32_t listen_no_pcb;       /* tcp_listen_input: SYN dropped, no PCB */
    uint32_t syn_maxrtx;          /* tcp_slowtmr: connect gave up */
    uint32_t data_maxrtx;         /* tcp_slowtmr: data retransmissions gave up */
    uint32_t stuck_removed;       /* tcp_slowtmr: FIN-WAIT-2 / SYN-RCVD / LAST-ACK removed */
};

static struct np_diag_counts np_counts;

static int starts(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

void np_diag(const char *fmt, ...) {
    if (fmt == NULL) {
        return;
    }
    if (starts(fmt, "tcp_alloc: killing off oldest TIME-WAIT")) {
        np_counts.alloc_failed++;
    } else if (starts(fmt, "tcp_kill_timewait: killing")) {
        np_counts.kill_timewait++;
    } else if (starts(fmt, "tcp_kill_closing: killing") || starts(fmt, "tcp_kill_state: killing")) {
        np_counts.kill_state++;
    } else if (starts(fmt, "tcp_kill_prio: killing")) {
        np_counts.kill_prio++;
    } else if (starts(fmt, "tcp_listen_input: listen backlog exceeded")) {
        np_counts.backlog_full++;
    } else if (starts(fmt, "tcp_listen_input: could not allocate PCB")) {
        np_counts.listen_no_pcb++;
    } else if (starts(fmt, "tcp_slowtmr: max SYN retries")) {
        np_counts.syn_maxrtx++;
    } else if (starts(fmt, "tcp_slowtmr: max DATA retries")) {
        np_counts.data_maxrtx++;
    } else if (starts(fmt, "tcp_slowtmr: removing pcb stuck")) {
        np_counts.stuck_removed++;
    }
}

void np_diag_counts(struct np_diag_counts *out) { *out = np_counts; }

/* ------------------------------------------------------------------ random */

static uint32_t np_rand_state = 0x9e3779b9u;

void np_seed(uint32_t seed) { np_rand_state = seed ? seed : 0x9e3779b9u; }

uint32_t np_rand(void) {
    /* xorshift32 */
    uint32_t x = np_rand_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    np_rand_state = x;
    return x;
}

/* ------------------------------------------------------------------ start-up */

void np_init(uint32_t seed) {
    np_seed(seed);
    lwip_init();
}

/* Reset the statistics that accumulate (high-water marks, error counters); the
 * counts of objects in use stay true. */
void np_reset_stats(void) {
    memset(&np_counts, 0, sizeof np_counts);
    memset(&lwip_stats.tcp, 0, sizeof lwip_stats.tcp);
    memset(&lwip_stats.ip, 0, sizeof lwip_stats.ip);
    lwip_stats.memp[MEMP_TCP_PCB]->max = lwip_stats.memp[MEMP_TCP_PCB]->used;
    lwip_stats.memp[MEMP_TCP_PCB]->err = 0;
    lwip_stats.memp[MEMP_TCP_SEG]->max = lwip_stats.memp[MEMP_TCP_SEG]->used;
    lwip_stats.memp[MEMP_TCP_SEG]->err = 0;
    lwip_stats.mem.max = lwip_stats.mem.used;
    lwip_stats.mem.err = 0;
}

/* Abort every PCB lwIP still has (connections, TIME-WAIT, listeners, bound), so the
 * next LwipStack starts from an empty stack. Callbacks are cleared first: the Rust
 * side has already forgotten these PCBs. */
void np_abort_all(void) {
    struct tcp_pcb *pcb;
    int guard;
    for (guard = 0; tcp_active_pcbs != NULL && guard < 4096; guard++) {
        pcb = tcp_active_pcbs;
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        tcp_err(pcb, NULL);
        tcp_abort(pcb);
    }
    for (guard = 0; tcp_tw_pcbs != NULL && guard < 4096; guard++) {
        tcp_abort(tcp_tw_pcbs);
    }
    for (guard = 0; tcp_listen_pcbs.listen_pcbs != NULL && guard < 4096; guard++) {
        pcb = (struct tcp_pcb *)tcp_listen_pcbs.listen_pcbs;
        tcp_arg(pcb, NULL);
        tcp_accept(pcb, NULL);
        tcp_close(pcb);
    }
    for (guard = 0; tcp_bound_pcbs != NULL && guard < 4096; guard++) {
        pcb = tcp_bound_pcbs;
        tcp_arg(pcb, NULL);
        tcp_err(pcb, NULL);
        tcp_close(pcb);
    }
}

/* ------------------------------------------------------------------ statistics */

struct np_lwip_stats {
    uint32_t pcb_used, pcb_max, pcb_err, pcb_avail;
    uint32_t seg_used, seg_max, seg_err;
    uint32_t mem_used, mem_max, mem_err;
    uint32_t tcp_xmit, tcp_recv, tcp_drop, tcp_memerr, tcp_proterr, tcp_err, tcp_rterr;
    uint32_t active, time_wait, listen, bound;
    uint32_t syn_rcvd, established, fin_wait, close_wait, last_ack, closing;
};

void np_stats(struct np_lwip_stats *s) {
    struct tcp_pcb *pcb;
    struct tcp_pcb_listen *lpcb;
    memset(s, 0, sizeof *s);
    s->pcb_used = lwip_stats.memp[MEMP_TCP_PCB]->used;
    s->pcb_max = lwip_stats.memp[MEMP_TCP_PCB]->max;
    s->pcb_err = lwip_stats.memp[MEMP_TCP_PCB]->err;
    s->pcb_avail = lwip_stats.memp[MEMP_TCP_PCB]->avail;
    s->seg_used = lwip_stats.memp[MEMP_TCP_SEG]->used;
    s->seg_max = lwip_stats.memp[MEMP_TCP_SEG]->max;
    s->seg_err = lwip_stats.memp[MEMP_TCP_SEG]->err;
    s->mem_used = lwip_stats.mem.used;
    s->mem_max = lwip_stats.mem.max;
    s->mem_err = lwip_stats.mem.err;
    s->tcp_xmit = lwip_stats.tcp.xmit;
    s->tcp_recv = lwip_stats.tcp.recv;
    s->tcp_drop = lwip_stats.tcp.drop;
    s->tcp_memerr = lwip_stats.tcp.memerr;
    s->tcp_proterr = lwip_stats.tcp.proterr;
    s->tcp_err = lwip_stats.tcp.err;
    s->tcp_rterr = lwip_stats.tcp.rterr;
    for (pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next) {
        s->active++;
        switch (pcb->state) {
        case SYN_SENT:
        case SYN_RCVD: s->syn_rcvd++; break;
        case ESTABLISHED: s->established++; break;
        case FIN_WAIT_1:
        case FIN_WAIT_2: s->fin_wait++; break;
        case CLOSE_WAIT: s->close_wait++; break;
        case LAST_ACK: s->last_ack++; break;
        case CLOSING: s->closing++; break;
        default: break;
        }
    }
    for (pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next) {
        s->time_wait++;
    }
    for (lpcb = tcp_listen_pcbs.listen_pcbs; lpcb != NULL; lpcb = lpcb->next) {
        s->listen++;
    }
    for (pcb = tcp_bound_pcbs; pcb != NULL; pcb = pcb->next) {
        s->bound++;
    }
}

/* 1 when the listener on `port` would drop a SYN because its backlog is full. */
int np_listen_backlog_full(uint16_t port) {
    struct tcp_pcb_listen *lpcb;
    for (lpcb = tcp_listen_pcbs.listen_pcbs; lpcb != NULL; lpcb = lpcb->next) {
        if (lpcb->local_port == port) {
            return lpcb->accepts_pending >= lpcb->backlog;
        }
    }
    return 0;
}

/* accepts_pending of the listener on `port` (-1: none). */
int np_listen_pending(uint16_t port) {
    struct tcp_pcb_listen *lpcb;
    for (lpcb = tcp_listen_pcbs.listen_pcbs; lpcb != NULL; lpcb = lpcb->next) {
        if (lpcb->local_port == port) {
            return lpcb->accepts_pending;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ network interface */

typedef void (*np_output_fn)(const uint8_t *data, uint16_t len);

static struct netif np_netif;
static int np_netif_added;
static np_output_fn np_out;
static uint16_t np_mtu = 1500;

static err_t np_netif_output(struct netif *netif, struct pbuf *p, const ip4_addr_t *ipaddr) {
    uint8_t buf[2048];
    LWIP_UNUSED_ARG(netif);
    LWIP_UNUSED_ARG(ipaddr);
    if (p->tot_len > sizeof buf || np_out == NULL) {
        return ERR_BUF;
    }
    pbuf_copy_partial(p, buf, p->tot_len, 0);
    np_out(buf, p->tot_len);
    return ERR_OK;
}

static err_t np_netif_init(struct netif *netif) {
    netif->name[0] = 'n';
    netif->name[1] = 'p';
    netif->output = np_netif_output;
    netif->mtu = np_mtu;
    netif->flags = 0; /* point-to-point IP link: no ARP, no broadcast */
    return ERR_OK;
}

/* Addresses in host order (192.0.2.1 is 0xc0000201). */
void np_netif_setup(uint32_t ip, uint32_t mask, uint32_t gw, uint16_t mtu, np_output_fn out) {
    ip4_addr_t a, m, g;
    ip4_addr_set_u32(&a, lwip_htonl(ip));
    ip4_addr_set_u32(&m, lwip_htonl(mask));
    ip4_addr_set_u32(&g, lwip_htonl(gw));
    np_out = out;
    np_mtu = mtu;
    if (!np_netif_added) {
        netif_add(&np_netif, &a, &m, &g, NULL, np_netif_init, ip_input);
        np_netif_added = 1;
    } else {
        np_netif.mtu = mtu;
        netif_set_addr(&np_netif, &a, &m, &g);
    }
    netif_set_default(&np_netif);
    netif_set_up(&np_netif);
    netif_set_link_up(&np_netif);
}

void np_netif_set_link(int up) {
    if (!np_netif_added) {
        return;
    }
    if (up) {
        netif_set_link_up(&np_netif);
    } else {
        netif_set_link_down(&np_netif);
    }
}

/* One IPv4 packet from the link into lwIP. */
err_t np_netif_input(const uint8_t *data, uint16_t len) {
    struct pbuf *p;
    err_t err;
    if (!np_netif_added) {
        return ERR_IF;
    }
    p = pbuf_alloc(PBUF_RAW, len, PBUF_RAM);
    if (p == NULL) {
        return ERR_MEM;
    }
    pbuf_take(p, data, len);
    err = np_netif.input(p, &np_netif);
    if (err != ERR_OK) {
        pbuf_free(p);
    }
    return err;
}

/* ------------------------------------------------------------------ timers */

void np_check_timeouts(void) { sys_check_timeouts(); }

uint32_t np_sleeptime(void) { return sys_timeouts_sleeptime(); }
