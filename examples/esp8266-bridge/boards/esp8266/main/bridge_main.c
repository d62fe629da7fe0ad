/*
 * The ESP8266 bridge firmware's C side: app_main, the WiFi station, and the
 * scheduling of the bridge's service pass in lwIP's tcpip thread.
 *
 * - The service pass (Rust: bridge_pass, on netpool's Pool of 8 over the SDK's lwIP)
 *   calls lwIP's raw API, which this SDK allows in the tcpip thread only
 *   (LWIP_TCPIP_CORE_LOCKING 0). It runs there, from three places, none blocking:
 *     1. a sys_timeout that each pass re-arms (every PASS_MS = 10 ms when idle);
 *     2. a preallocated callback message posted from the ready pin's interrupt
 *        (tcpip_callbackmsg_trycallback_fromisr), so a transfer the SAM arms starts
 *        at once;
 *     3. the same message posted by the pass itself when it served a transfer (the
 *        SAM may have more): it queues behind the packets already waiting, so lwIP's
 *        input is never starved (a 0 ms sys_timeout would be: lwIP's tcpip thread
 *        runs due timers before it looks at its mailbox again).
 * - WiFi: station only, credentials from the build (WIFI_SSID/WIFI_PASSWORD, kept by
 *   the Rust library). Like the original module, it starts idle and joins when the
 *   SAM sends networkStartClient (RepRapFirmware M552 S1); networkStop leaves. The
 *   WiFi calls run in app_main's task, fed by a queue the pass posts to; so does
 *   printing the M122 report (the SDK's printf waits on UART0).
 */
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_wifi.h"
#include "tcpip_adapter.h"
#include "driver/gpio.h"

#include "lwip/tcpip.h"
#include "lwip/timeouts.h"

#include "board.h"

static const char *TAG = "bridge";

/* The service pass's scheduling (tcpip thread). */
static struct tcpip_callback_msg *s_pass_msg;
static volatile int s_pass_queued;
static int s_started;

/* WiFi (event task and app_main's task). */
static QueueHandle_t s_wifi_queue;
static volatile int s_want_client;

/* ---------------------------------------------------------------- the pass */

static void pass_timer(void *arg);

static void run_pass(void)
{
    if (!s_started) {
        return;
    }
    sys_untimeout(pass_timer, NULL);
    uint32_t next = bridge_pass();
    if (next == 0 && !s_pass_queued) {
        s_pass_queued = 1;
        if (tcpip_callbackmsg_trycallback(s_pass_msg) != ERR_OK) {
            s_pass_queued = 0;
        }
    }
    /* The timer stays armed either way, never below one FreeRTOS tick: this port
     * turns a shorter wait into a zero-tick mailbox poll, and the tcpip thread would
     * spin until the tick count moves. */
    sys_timeout(next < portTICK_PERIOD_MS ? portTICK_PERIOD_MS : next, pass_timer, NULL);
}

static void pass_timer(void *arg)
{
    (void)arg;
    run_pass();
}

static void pass_msg(void *arg)
{
    (void)arg;
    s_pass_queued = 0;
    run_pass();
}

static void ready_isr(void *arg)
{
    (void)arg;
    if (!s_pass_queued) {
        s_pass_queued = 1;
        if (tcpip_callbackmsg_trycallback_fromisr(s_pass_msg) != ERR_OK) {
            s_pass_queued = 0;
        }
    }
}

/* Runs once, in the tcpip thread. */
static void start_in_tcpip(void *arg)
{
    (void)arg;
    if (bridge_start() != 0) {
        ESP_LOGE(TAG, "bridge_start failed");
        return;
    }
    s_started = 1;
    sys_timeout(1, pass_timer, NULL);
}

/* ---------------------------------------------------------------- WiFi */

static void on_wifi_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    bridge_net_t net;
    bridge_board_get_net(&net);
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        net.ip = net.netmask = net.gateway = 0;
        net.rssi = 0;
        if (s_want_client) {
            net.state = net.state == BRIDGE_WIFI_CONNECTED ? BRIDGE_WIFI_RECONNECTING
                                                            : BRIDGE_WIFI_AUTO_RECONNECTING;
            if (net.reconnects < 255) {
                net.reconnects++;
            }
            bridge_board_set_net(&net);
            esp_wifi_connect();
        } else {
            net.state = BRIDGE_WIFI_IDLE;
            bridge_board_set_net(&net);
        }
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        ip_event_got_ip_t *got = (ip_event_got_ip_t *)data;
        wifi_ap_record_t ap;
        net.ip = got->ip_info.ip.addr;
        net.netmask = got->ip_info.netmask.addr;
        net.gateway = got->ip_info.gw.addr;
        if (esp_wifi_sta_get_ap_info(&ap) == ESP_OK) {
            memcpy(net.ssid, ap.ssid, sizeof(net.ssid));
            memcpy(net.bssid, ap.bssid, sizeof(net.bssid));
            net.channel = ap.primary;
            net.rssi = ap.rssi;
        }
        net.state = BRIDGE_WIFI_CONNECTED;
        bridge_board_set_net(&net);
        ESP_LOGI(TAG, "got address %s", ip4addr_ntoa(&got->ip_info.ip));
    } else if (base == IP_EVENT && id == IP_EVENT_STA_LOST_IP) {
        net.ip = net.netmask = net.gateway = 0;
        if (net.state == BRIDGE_WIFI_CONNECTED) {
            net.state = BRIDGE_WIFI_RECONNECTING;
        }
        bridge_board_set_net(&net);
    }
}

static void wifi_start_client(void)
{
    wifi_config_t config;
    memset(&config, 0, sizeof(config));
    strncpy((char *)config.sta.ssid, bridge_wifi_ssid(), sizeof(config.sta.ssid));
    strncpy((char *)config.sta.password, bridge_wifi_password(), sizeof(config.sta.password));
    config.sta.threshold.authmode = config.sta.password[0] ? WIFI_AUTH_WPA2_PSK : WIFI_AUTH_OPEN;
    s_want_client = 1;
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(ESP_IF_WIFI_STA, &config));
    ESP_ERROR_CHECK(esp_wifi_start());
    esp_wifi_connect();
}

static void wifi_stop(void)
{
    s_want_client = 0;
    esp_wifi_disconnect();
    esp_wifi_stop();
    bridge_net_t net;
    bridge_board_get_net(&net);
    net.state = BRIDGE_WIFI_IDLE;
    net.ip = net.netmask = net.gateway = 0;
    bridge_board_set_net(&net);
}

/* ---------------------------------------------------------------- app_main */

void app_main(void)
{
    printf("esp8266-bridge on the ESP8266 RTOS SDK: netpool Pool of 8 on the SDK's lwIP\n");

    tcpip_adapter_init(); /* starts lwIP's tcpip thread */
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    wifi_init_config_t cfg = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&cfg));
    /* Nothing about the network is kept in flash: credentials come from the build. */
    ESP_ERROR_CHECK(esp_wifi_set_storage(WIFI_STORAGE_RAM));
    ESP_ERROR_CHECK(esp_event_handler_register(WIFI_EVENT, WIFI_EVENT_STA_DISCONNECTED, &on_wifi_event, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, &on_wifi_event, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_LOST_IP, &on_wifi_event, NULL));

    bridge_net_t net;
    memset(&net, 0, sizeof(net));
    net.state = BRIDGE_WIFI_IDLE;
    esp_wifi_get_mac(ESP_IF_WIFI_STA, net.mac);
    bridge_board_set_net(&net);

    s_wifi_queue = xQueueCreate(4, sizeof(int32_t));
    bridge_board_set_wifi_queue(s_wifi_queue);
    if (bridge_wifi_ssid()[0] == '\0') {
        printf("WiFi: this image was built without WIFI_SSID/WIFI_PASSWORD: it serves the SAM but stays "
               "offline (rebuild with WIFI_SSID=... WIFI_PASSWORD=... bash build.sh)\n");
    }

    bridge_board_init_io();
    s_pass_msg = tcpip_callbackmsg_new(pass_msg, NULL);
    if (s_pass_msg == NULL) {
        ESP_LOGE(TAG, "no memory for the pass message");
        abort();
    }
    /* Once, blocking only this task: the bridge is built in the tcpip thread. */
    if (tcpip_callback(start_in_tcpip, NULL) != ERR_OK) {
        ESP_LOGE(TAG, "cannot reach the tcpip thread");
        abort();
    }
    ESP_ERROR_CHECK(gpio_install_isr_service(0));
    ESP_ERROR_CHECK(gpio_isr_handler_add(BRIDGE_GPIO_READY, ready_isr, NULL));

    /* The WiFi task: mode changes the SAM asked for, and printing the M122 report. */
    for (;;) {
        int32_t request;
        if (xQueueReceive(s_wifi_queue, &request, portMAX_DELAY) != pdTRUE) {
            continue;
        }
        if (request == BRIDGE_REQUEST_PRINT_REPORT) {
            bridge_print_report();
            printf("main task stack: %u of %u bytes never used\n",
                   (unsigned)(uxTaskGetStackHighWaterMark(NULL) * sizeof(StackType_t)),
                   (unsigned)CONFIG_ESP_MAIN_TASK_STACK_SIZE);
        } else if (request) {
            if (bridge_wifi_ssid()[0] == '\0') {
                continue; /* the pass has already told the SAM */
            }
            ESP_LOGI(TAG, "WiFi: joining \"%s\"", bridge_wifi_ssid());
            wifi_start_client();
        } else {
            ESP_LOGI(TAG, "WiFi: stop");
            wifi_stop();
        }
    }
}
