/*
 * Hardware and system services for the Rust half of the bridge (../rust/src/lib.rs):
 * GPIO, the HSPI link to the SAM, the console, the WiFi snapshot and lwIP's heap and
 * PCB figures. Everything the Rust side calls runs in lwIP's tcpip thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"
#include "esp_system.h"
#include "esp_log.h"
#include "rom/ets_sys.h"
#include "driver/gpio.h"
#include "driver/spi.h"

#include "lwip/opt.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"

#include "board.h"

static const char *TAG = "bridge";

static bridge_net_t s_net;        /* guarded by a critical section */
static QueueHandle_t s_wifi_queue; /* requests for the WiFi task (bridge_main.c) */

/* ---------------------------------------------------------------- GPIO and SPI */

void bridge_board_init_io(void)
{
    gpio_config_t out = {
        .pin_bit_mask = (1UL << BRIDGE_GPIO_CS) | (1UL << BRIDGE_GPIO_REQUEST),
        .mode = GPIO_MODE_OUTPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    /* Idle levels first: chip select and the request pin high. */
    gpio_set_level(BRIDGE_GPIO_CS, 1);
    gpio_set_level(BRIDGE_GPIO_REQUEST, 1);
    ESP_ERROR_CHECK(gpio_config(&out));
    gpio_set_level(BRIDGE_GPIO_CS, 1);
    gpio_set_level(BRIDGE_GPIO_REQUEST, 1);

    /* The ready pin: input; its rising edge is handled in bridge_main.c. */
    gpio_config_t in = {
        .pin_bit_mask = 1UL << BRIDGE_GPIO_READY,
        .mode = GPIO_MODE_INPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_POSEDGE,
    };
    ESP_ERROR_CHECK(gpio_config(&in));

    /* HSPI master, mode 1 (CPOL 0, CPHA 1), MSB first, full duplex, its own chip
     * select off (GPIO15 is driven as a GPIO around a whole transaction),
     * 80 MHz / 3 = 26.7 MHz as the protocol's default. */
    spi_config_t spi = {0};
    spi.interface.val = SPI_DEFAULT_INTERFACE;
    spi.interface.cs_en = 0;
    spi.interface.cpol = 0;
    spi.interface.cpha = 1;
    spi.intr_enable.val = 0;
    spi.event_cb = NULL;
    spi.mode = SPI_MASTER_MODE;
    spi.clk_div = (spi_clk_div_t)3;
    ESP_ERROR_CHECK(spi_init(HSPI_HOST, &spi));
}

void bridge_board_gpio_write(uint32_t gpio, int32_t high)
{
    gpio_set_level((gpio_num_t)gpio, high ? 1 : 0);
}

int32_t bridge_board_gpio_read(uint32_t gpio)
{
    return gpio_get_level((gpio_num_t)gpio);
}

/* Full duplex in chunks of the HSPI's 64-byte buffer; tx NULL sends zeros, rx NULL
 * drops what comes in. Returns 0, or -1 if the driver refused. */
int32_t bridge_board_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    uint32_t out[16], in[16];
    while (len > 0) {
        size_t n = len > sizeof(out) ? sizeof(out) : len;
        if (tx) {
            memcpy(out, tx, n);
        } else {
            memset(out, 0, n);
        }
        spi_trans_t t = {0};
        t.mosi = out;
        t.miso = in;
        t.bits.mosi = n * 8;
        t.bits.miso = n * 8;
        if (spi_trans(HSPI_HOST, &t) != ESP_OK) {
            return -1;
        }
        if (rx) {
            memcpy(rx, in, n);
            rx += n;
        }
        if (tx) {
            tx += n;
        }
        len -= n;
    }
    return 0;
}

void bridge_board_delay_us(uint32_t us)
{
    ets_delay_us(us);
}

void bridge_board_console(const uint8_t *text, size_t len)
{
    printf("%.*s", (int)len, (const char *)text);
}

void bridge_board_abort(void)
{
    abort();
}

/* ---------------------------------------------------------------- WiFi snapshot */

void bridge_board_set_net(const bridge_net_t *net)
{
    portENTER_CRITICAL();
    s_net = *net;
    portEXIT_CRITICAL();
}

void bridge_board_get_net(bridge_net_t *out)
{
    portENTER_CRITICAL();
    *out = s_net;
    portEXIT_CRITICAL();
}

void bridge_board_net(bridge_net_t *out)
{
    bridge_board_get_net(out);
}

void bridge_board_set_wifi_queue(void *queue)
{
    s_wifi_queue = (QueueHandle_t)queue;
}

/* A mode change the SAM asked for (1: start the client, 0: stop). Called in the
 * tcpip thread: the state changes now, the work is the WiFi task's; never waits. */
void bridge_board_wifi_request(int32_t start)
{
    bridge_net_t net;
    bridge_board_get_net(&net);
    net.state = start ? BRIDGE_WIFI_CONNECTING : BRIDGE_WIFI_IDLE;
    net.reconnects = 0;
    bridge_board_set_net(&net);
    int32_t request = start;
    if (s_wifi_queue == NULL || xQueueSend(s_wifi_queue, &request, 0) != pdTRUE) {
        ESP_LOGE(TAG, "WiFi request queue full: request %d dropped", request);
    }
}

/* The pass has an M122 report for the WiFi task to print (bridge_print_report): the
 * SDK's printf waits on UART0, which the tcpip thread must not. Never waits; if the
 * queue is full the report stays pending and the next one replaces it. */
void bridge_board_report_ready(void)
{
    int32_t request = BRIDGE_REQUEST_PRINT_REPORT;
    if (s_wifi_queue != NULL) {
        xQueueSend(s_wifi_queue, &request, 0);
    }
}

/* ---------------------------------------------------------------- lwIP figures */

static uint32_t count(struct tcp_pcb *pcb, int state)
{
    uint32_t n = 0;
    for (; pcb != NULL; pcb = pcb->next) {
        if (state < 0 || pcb->state == (enum tcp_state)state) {
            n++;
        }
    }
    return n;
}

/* Read in the tcpip thread (the PCB lists are lwIP's). The PCB total is what the
 * SDK's tcp_alloc compares with MEMP_NUM_TCP_PCB: TIME-WAIT, active, listening and
 * bound PCBs together. */
void bridge_board_lwip_figures(bridge_lwip_figures_t *out)
{
    memset(out, 0, sizeof(*out));
    out->heap_free = esp_get_free_heap_size();
    out->heap_min_free = esp_get_minimum_free_heap_size();
    uint32_t listen = 0;
    for (struct tcp_pcb_listen *l = tcp_listen_pcbs.listen_pcbs; l != NULL; l = l->next) {
        listen++;
    }
    out->pcb_time_wait = count(tcp_tw_pcbs, -1);
    out->pcb_last_ack = count(tcp_active_pcbs, LAST_ACK);
    out->pcb_closing = count(tcp_active_pcbs, CLOSING);
    out->pcb_fin_wait1 = count(tcp_active_pcbs, FIN_WAIT_1);
    out->pcb_fin_wait2 = count(tcp_active_pcbs, FIN_WAIT_2);
    out->pcb_listen = listen;
    out->pcb_bound = count(tcp_bound_pcbs, -1);
    out->pcb_total = out->pcb_time_wait + count(tcp_active_pcbs, -1) + listen + out->pcb_bound;
    out->pcb_limit = MEMP_NUM_TCP_PCB;
    out->tcpip_stack_unused = uxTaskGetStackHighWaterMark(NULL) * sizeof(StackType_t);
    out->tcpip_stack_size = TCPIP_THREAD_STACKSIZE;
    out->sizeof_pcb = sizeof(struct tcp_pcb);
    out->sizeof_seg = sizeof(struct tcp_seg);
    out->sizeof_pbuf = sizeof(struct pbuf);
}
