/*
 * The C side of the ESP8266 bridge firmware: what the Rust static library
 * (../rust/src/lib.rs) calls, and what it exports. Keep the structs in step with
 * lib.rs (`NetInfo`, `LwipFigures`).
 */
#pragma once

#include <stdint.h>
#include <stddef.h>

/* The protocol's WiFiState numbers (DUET SPI protocol, format 0x3E). */
enum {
    BRIDGE_WIFI_IDLE = 1,
    BRIDGE_WIFI_CONNECTING = 3,
    BRIDGE_WIFI_CONNECTED = 4,
    BRIDGE_WIFI_AUTO_RECONNECTING = 5,
    BRIDGE_WIFI_RECONNECTING = 6,
};

/* Duet pin map on the ESP8266: chip select GPIO15 (a GPIO driven by the bridge, not
 * HSPI's own CS), EspReqTransferPin GPIO0 (out, idle high), SamTfrReadyPin GPIO4 (in);
 * HSPI: SCLK GPIO14, MOSI GPIO13, MISO GPIO12. */
#define BRIDGE_GPIO_CS 15
#define BRIDGE_GPIO_REQUEST 0
#define BRIDGE_GPIO_READY 4

typedef struct {
    uint8_t state;      /* BRIDGE_WIFI_* */
    int8_t rssi;
    uint8_t channel;
    uint8_t reconnects;
    uint32_t ip, netmask, gateway; /* as lwIP holds them */
    uint8_t mac[6];
    uint8_t bssid[6];
    uint8_t ssid[32];
} bridge_net_t;

typedef struct {
    uint32_t heap_free, heap_min_free;
    uint32_t pcb_total, pcb_limit, pcb_time_wait, pcb_last_ack, pcb_closing;
    uint32_t pcb_fin_wait1, pcb_fin_wait2, pcb_listen, pcb_bound;
    uint32_t tcpip_stack_unused, tcpip_stack_size;
    uint32_t sizeof_pcb, sizeof_seg, sizeof_pbuf;
} bridge_lwip_figures_t;

/* Exported by the Rust library. bridge_start and bridge_pass run in lwIP's tcpip
 * thread only. */
int32_t bridge_start(void);
uint32_t bridge_pass(void);
const char *bridge_wifi_ssid(void);
const char *bridge_wifi_password(void);
/* Called by the WiFi task (app_main's), not the tcpip thread. */
void bridge_print_report(void);

/* Requests on the WiFi task's queue: 0 stop, 1 start the client, 2 print the report. */
#define BRIDGE_REQUEST_PRINT_REPORT 2

/* board.c: called by the Rust library (from the tcpip thread). */
void bridge_board_gpio_write(uint32_t gpio, int32_t high);
int32_t bridge_board_gpio_read(uint32_t gpio);
int32_t bridge_board_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len);
void bridge_board_delay_us(uint32_t us);
void bridge_board_console(const uint8_t *text, size_t len);
void bridge_board_net(bridge_net_t *out);
void bridge_board_wifi_request(int32_t start);
void bridge_board_report_ready(void);
void bridge_board_lwip_figures(bridge_lwip_figures_t *out);
void bridge_board_abort(void) __attribute__((noreturn));

/* board.c: set up by app_main (bridge_main.c). */
void bridge_board_init_io(void);
void bridge_board_set_net(const bridge_net_t *net);
void bridge_board_get_net(bridge_net_t *out);
void bridge_board_set_wifi_queue(void *queue);
