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
