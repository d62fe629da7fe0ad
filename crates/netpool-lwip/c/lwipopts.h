/*
 * lwIP configuration for netpool-lwip's host build (feature `bundled`).
 *
 * The TCP numbers are the ESP8266 bridge's (shared/reference/000: MEMP_NUM_TCP_PCB
 * ~10, TCP_MSS 1460, TCP_SND_BUF 7300, TCP_WND 7300, listen backlog 8). The rest is a
 * single-context (NO_SYS) raw-API host build: no sockets, no netconn, no UDP, no
 * ethernet/ARP (the simulator's link carries bare IPv4 packets).
 *
 * Deliberate differences from the ESP8266 RTOS SDK (components/lwip/port/esp8266/
 * include/lwipopts.h): NO_SYS=1 instead of a tcpip thread; static memory pools
 * (MEMP_MEM_MALLOC=0) so MEMP_NUM_TCP_PCB is a hard limit (the SDK allocates pools
 * from the heap); a large heap (MEM_SIZE), so PCBs, not bytes, are what runs out;
 * MEMP_NUM_TCP_SEG 64 (SDK: 16) so the send queues of 10 connections fit.
 */
#ifndef NETPOOL_LWIP_LWIPOPTS_H
#define NETPOOL_LWIP_LWIPOPTS_H

/* ---- infrastructure ---- */
#define NO_SYS                      1
#define LWIP_TIMERS                 1
#define SYS_LIGHTWEIGHT_PROT        0
#define LWIP_SOCKET                 0
#define LWIP_NETCONN                0
#define LWIP_NETIF_API              0
#define LWIP_CALLBACK_API           1
#define LWIP_EVENT_API              0

/* ---- protocols ---- */
#define LWIP_IPV4                   1
#define LWIP_IPV6                   0
#define LWIP_ARP                    0
#define LWIP_ETHERNET               0
#define LWIP_ICMP                   1
#define LWIP_RAW                    0
#define LWIP_UDP                    0
#define LWIP_TCP                    1
#define LWIP_DHCP                   0
#define LWIP_AUTOIP                 0
#define LWIP_IGMP                   0
#define LWIP_DNS                    0
#define LWIP_SINGLE_NETIF           1

/* ---- memory ---- */
#define MEM_ALIGNMENT               8
#define MEM_SIZE                    (256 * 1024)
#define MEMP_MEM_MALLOC             0
#define MEMP_NUM_TCP_PCB            10
#define MEMP_NUM_TCP_PCB_LISTEN     4
#define MEMP_NUM_TCP_SEG            64
#define MEMP_NUM_PBUF               16
#define PBUF_POOL_SIZE              32

/* ---- TCP: the ESP8266 bridge ---- */
#define TCP_MSS                     1460
#define TCP_SND_BUF                 7300
#define TCP_WND                     7300
#define TCP_SND_QUEUELEN            ((4 * (TCP_SND_BUF) + (TCP_MSS - 1)) / (TCP_MSS))
#define TCP_LISTEN_BACKLOG          1
#define TCP_DEFAULT_LISTEN_BACKLOG  8
#define TCP_QUEUE_OOSEQ             1
#define TCP_OVERSIZE                TCP_MSS
#define LWIP_TCP_KEEPALIVE          0
/* TCP_MSL (TIME-WAIT = 2 * 60 s), TCP_MAXRTX (12), TCP_SYNMAXRTX (6): lwIP defaults,
 * which are also the ESP8266 SDK's Kconfig defaults. */

/* ---- statistics and diagnostics ----
 * LWIP_DEBUG with TCP_DEBUG routes lwIP's TCP diagnostics to np_diag() (port.c),
 * which prints nothing: it counts the messages that name a PCB-allocation event
 * (tcp_kill_prio, tcp_kill_timewait, backlog exceeded...). Behaviour is unchanged. */
#define LWIP_STATS                  1
#define LWIP_STATS_DISPLAY          0
#define MEMP_STATS                  1
#define TCP_STATS                   1
#define LWIP_DEBUG                  1
#define LWIP_DBG_MIN_LEVEL          LWIP_DBG_LEVEL_ALL
#define LWIP_DBG_TYPES_ON           LWIP_DBG_ON
#define TCP_DEBUG                   LWIP_DBG_ON

#endif /* NETPOOL_LWIP_LWIPOPTS_H */
