//! The Duet WiFi-to-SPI bridge on an ESP8266 under Espressif's ESP8266 RTOS SDK: the
//! bridge's service loop (`esp8266-bridge`, `no_std`) on netpool's `Pool` of 8 over
//! netpool-lwip's `LwipStack`, i.e. over the SDK's own lwIP through its raw API.
//!
//! This static library is one half of the firmware; the SDK project around it
//! (`../main/`) owns the hardware and the threads:
//!
//! - **lwIP's tcpip thread runs every pass.** The SDK's lwIP has
//!   `LWIP_TCPIP_CORE_LOCKING 0`: its raw API may only be called from the tcpip
//!   thread. `main/bridge_main.c` posts one callback that calls [`bridge_start`]
//!   there, then re-arms a `sys_timeout` after each [`bridge_pass`] (which returns
//!   the delay to the next pass), and a preallocated callback message (posted from
//!   the ready pin's interrupt) runs a pass at once when the SAM raises it. Nothing
//!   here blocks: every lwIP call is the raw API's, every SPI transfer is a few
//!   hundred microseconds at most.
//! - **The WiFi station belongs to the C side**: its event handler keeps a snapshot of
//!   the connection (state, address, SSID, channel, RSSI) that each pass copies
//!   ([`NetInfo`]); a mode change the SAM asks for (`networkStartClient`,
//!   `networkStop`) is handed to the C side's WiFi task without waiting.
//! - **GPIO, SPI and the console are C functions** (`main/board.c`), called through
//!   the FFI below: chip select GPIO15, request GPIO0, ready GPIO4, HSPI (mode 1).
//!
//! The WiFi credentials are set at build time (`WIFI_SSID`, `WIFI_PASSWORD`), as for
//! the ESP32-C3 image, and exported to the C side ([`bridge_wifi_ssid`],
//! [`bridge_wifi_password`]). Built without them, the firmware says so at boot and
//! answers `networkStartClient` with an error message.
//!
//! Untested on hardware.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::cell::{RefCell, UnsafeCell};
use core::convert::Infallible;
use core::fmt::{self, Write as _};
use core::mem::MaybeUninit;

use embedded_hal::digital::{ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::spi::{ErrorType as SpiErrorType, Operation, SpiDevice};
use esp8266_bridge::protocol::{pins, set_c_str, WiFiState, SSID_LENGTH};
use esp8266_bridge::{pool_config, Bridge, BridgeStats, ModeRequest};
use netpool::LinkState;
use netpool::{Instant, Pool, Report};
use netpool_lwip::{Events, LwipStack};

/// Build-time WiFi credentials (`WIFI_SSID=… WIFI_PASSWORD=… bash build.sh`).
const WIFI_SSID: Option<&str> = option_env!("WIFI_SSID");
const WIFI_PASSWORD: Option<&str> = option_env!("WIFI_PASSWORD");

/// Listener slots of the pool: HTTP, FTP, Telnet, FTP data.
const LISTENERS: usize = 4;
/// Coalescing bytes per pool slot: none. lwIP has a native MORE flag
/// (`TCP_WRITE_FLAG_MORE`), so the pool hands bytes straight to `tcp_write`.
const COALESCE: usize = 0;
/// lwIP listen backlog per listener: connections lwIP holds (each with its PCB)
/// until the pool accepts them.
const BACKLOG: u8 = 2;
/// Receive buffer and transmit hold per socket in the bridge: 1 KiB, half the
/// default. 8 sockets × 2 buffers × 2048 bytes would take 32 KiB of the ESP8266's
/// 96 KiB of DRAM, and its heap (lwIP's PCBs, segments and pbufs, WiFi) is what runs
/// out first (README, "Heap budget"). The SAM reads and writes in pieces of any size:
/// a transfer then moves at most 1024 bytes of one socket.
const SOCKET_BUF: usize = 1024;
/// Milliseconds between passes when the SAM is quiet (a pass also runs at once when
/// the ready pin rises). The FreeRTOS tick is 10 ms: this is one tick.
const PASS_MS: u32 = 10;

type Stack = LwipStack;
type BoardBridge = Bridge<Stack, HspiNoCs, Gpio, Gpio, Gpio, LISTENERS, COALESCE, SOCKET_BUF>;

// ------------------------------------------------------------------------ FFI

/// The C side's copy of the WiFi station's state (`main/board.h`, `bridge_net_t`).
#[repr(C)]
#[derive(Copy, Clone)]
pub struct NetInfo {
    /// The protocol's `WiFiState` number the station is in.
    pub state: u8,
    /// RSSI of the access point (dBm), 0 when not associated.
    pub rssi: i8,
    /// Channel, 0 when not associated.
    pub channel: u8,
    /// Reconnect attempts since the last `networkStartClient`.
    pub reconnects: u8,
    /// Address, netmask and gateway as lwIP holds them (network order in memory).
    pub ip: u32,
    pub netmask: u32,
    pub gateway: u32,
    /// Station MAC and the access point's BSSID.
    pub mac: [u8; 6],
    pub bssid: [u8; 6],
    /// SSID (NUL-padded).
    pub ssid: [u8; 32],
}

/// lwIP's heap and PCB figures for the M122 report (`main/board.h`,
/// `bridge_lwip_figures_t`), read in the tcpip thread.
#[repr(C)]
#[derive(Copy, Clone, Default)]
pub struct LwipFigures {
    /// Free heap now, the least it has been since boot (`esp_get_free_heap_size`,
    /// `esp_get_minimum_free_heap_size`).
    pub heap_free: u32,
    pub heap_min_free: u32,
    /// PCBs by list, as the SDK's `tcp_alloc` counts them against
    /// `MEMP_NUM_TCP_PCB` (`tcp_pcb_num_cal`).
    pub pcb_total: u32,
    pub pcb_limit: u32,
    pub pcb_time_wait: u32,
    pub pcb_last_ack: u32,
    pub pcb_closing: u32,
    pub pcb_fin_wait1: u32,
    pub pcb_fin_wait2: u32,
    pub pcb_listen: u32,
    pub pcb_bound: u32,
    /// Bytes of the tcpip thread's stack never used since boot
    /// (`uxTaskGetStackHighWaterMark`), and its size.
    pub tcpip_stack_unused: u32,
    pub tcpip_stack_size: u32,
    /// `sizeof(struct tcp_pcb)`, `sizeof(struct tcp_seg)`, `sizeof(struct pbuf)`.
    pub sizeof_pcb: u32,
    pub sizeof_seg: u32,
    pub sizeof_pbuf: u32,
}

extern "C" {
    // main/board.c
    fn bridge_board_gpio_write(gpio: u32, high: i32);
    fn bridge_board_gpio_read(gpio: u32) -> i32;
    fn bridge_board_spi_transfer(tx: *const u8, rx: *mut u8, len: usize) -> i32;
    fn bridge_board_delay_us(us: u32);
    fn bridge_board_console(text: *const u8, len: usize);
    fn bridge_board_net(out: *mut NetInfo);
    fn bridge_board_wifi_request(start: i32);
    fn bridge_board_report_ready();
    fn bridge_board_lwip_figures(out: *mut LwipFigures);
    fn bridge_board_abort() -> !;
    // the FreeRTOS port
    fn vPortEnterCritical();
    fn vPortExitCritical();
    // lwIP's clock in the SDK port (sys_arch.c): FreeRTOS ticks in milliseconds
    fn sys_now() -> u32;
}

// ------------------------------------------------------------------------ state

/// The bridge, touched only by the tcpip thread ([`bridge_start`] and [`bridge_pass`]
/// are called there and nowhere else).
struct TcpipOnly<T>(UnsafeCell<MaybeUninit<T>>, UnsafeCell<bool>);

// SAFETY: the contents are only ever reached from lwIP's tcpip thread (see the C
// side, main/bridge_main.c): one thread, so no two references exist at once.
unsafe impl<T> Sync for TcpipOnly<T> {}

impl<T> TcpipOnly<T> {
    /// # Safety
    /// Call only from the tcpip thread, and do not keep the reference across calls.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> Option<&mut T> {
        // SAFETY: one thread (the caller's contract); initialised when the flag is set.
        unsafe {
            if *self.1.get() {
                Some((*self.0.get()).assume_init_mut())
            } else {
                None
            }
        }
    }

    /// # Safety
    /// As [`get`](Self::get); call once.
    unsafe fn init(&self, value: T) -> &mut T {
        // SAFETY: as above; the flag is set only after the write.
        unsafe {
            let slot = (*self.0.get()).write(value);
            *self.1.get() = true;
            slot
        }
    }
}

/// The board's state: the bridge (pool, sockets, buffers) and the clock.
struct Board {
    bridge: BoardBridge,
    clock: Clock,
    /// The WiFi state last copied from the C side.
    wifi: WiFiState,
}

static BOARD: TcpipOnly<Board> = TcpipOnly(UnsafeCell::new(MaybeUninit::uninit()), UnsafeCell::new(false));

/// Milliseconds since boot from lwIP's 32-bit `sys_now`, widened across its wrap
/// (after 49.7 days).
struct Clock {
    last: u32,
    high: u64,
}

impl Clock {
    fn now(&mut self) -> Instant {
        // SAFETY: a plain read of the FreeRTOS tick count.
        let ms = unsafe { sys_now() };
        if ms < self.last {
            self.high += 1 << 32;
        }
        self.last = ms;
        Instant::from_millis(self.high + u64::from(ms))
    }
}

// ------------------------------------------------------------------------ entry points

/// Build the pool and the bridge. Called once, in the tcpip thread. Returns 0, or -1
/// when lwIP is already taken (it cannot be: this is the only `LwipStack`).
#[no_mangle]
pub extern "C" fn bridge_start() -> i32 {
    let stack = match LwipStack::new() {
        Ok(stack) => stack.with_backlog(BACKLOG),
        Err(e) => {
            let _ = writeln!(Console, "bridge: no lwIP stack: {e:?}");
            return -1;
        }
    };
    let pool: Pool<Stack, 8, LISTENERS, COALESCE> =
        Pool::new(stack, pool_config());
    const _: () =
        assert!(pins::ESP8266.chip_select == 15 && pins::ESP8266.request == 0 && pins::ESP8266.ready == 4);
    let bridge = Bridge::new(
        pool,
        HspiNoCs,
        Gpio(pins::ESP8266.chip_select.into()),
        Gpio(pins::ESP8266.ready.into()),
        Gpio(pins::ESP8266.request.into()),
    );
    let mut clock = Clock { last: 0, high: 0 };
    let now = clock.now();
    // SAFETY: called once, from the tcpip thread (bridge_main.c).
    let board = unsafe {
        BOARD.init(Board {
            bridge,
            clock,
            wifi: WiFiState::Idle,
        })
    };
    let mut net = empty_net();
    // SAFETY: the C side fills the whole struct.
    unsafe { bridge_board_net(&mut net) };
    {
        let status = board.bridge.network_status_mut();
        status.mac_address = net.mac;
        status.using_dhcpc = 1;
        status.flash_size = 4 * 1024 * 1024;
        set_c_str(&mut status.version_text, b"netpool-8266-0.1");
    }
    board.bridge.start(now);
    let _ = writeln!(
        Console,
        "bridge: netpool Pool of 8 on the SDK's lwIP (LwipStack, backlog {BACKLOG}), {} bytes of bridge state",
        core::mem::size_of::<Board>()
    );
    match WIFI_SSID {
        Some(ssid) if !ssid.is_empty() => {
            let _ = writeln!(
                Console,
                "WiFi: will join \"{ssid}\" when the SAM starts the client"
            );
        }
        _ => {
            let _ = writeln!(
                Console,
                "WiFi: built without WIFI_SSID/WIFI_PASSWORD: the bridge serves the SAM but cannot join a \
                 network (rebuild with WIFI_SSID=... WIFI_PASSWORD=...)"
            );
        }
    }
    0
}

/// One pass of the service loop, in the tcpip thread: the WiFi state from the C side,
/// the pool's poll, the bridge (one SPI transfer if the SAM is ready), the M122
/// report if the SAM asked for one, a mode change for the C side. Returns the delay
/// in milliseconds before the next pass (0: again as soon as lwIP has handled what is
/// queued; the SAM may have more).
#[no_mangle]
pub extern "C" fn bridge_pass() -> u32 {
    // SAFETY: called only from the tcpip thread (bridge_main.c); the reference dies
    // at the end of this function.
    let Some(board) = (unsafe { BOARD.get() }) else {
        return PASS_MS;
    };
    let now = board.clock.now();
    board.sync_wifi();
    board.bridge.pool_mut().stack_mut().poll(now);
    let served = board.bridge.service(now);
    take_m122(board);
    match board.bridge.take_mode_request() {
        Some(ModeRequest::StartClient { ssid }) => match WIFI_SSID {
            Some(known) if !known.is_empty() => {
                if !ssid_matches(&ssid, known) {
                    let _ = writeln!(
                        Console,
                        "WiFi: SAM asked for another SSID; only the built-in one is known"
                    );
                }
                // SAFETY: posts to the WiFi task's queue without waiting.
                unsafe { bridge_board_wifi_request(1) };
            }
            _ => board
                .bridge
                .set_error("No WiFi credentials in this build (WIFI_SSID)"),
        },
        Some(ModeRequest::StartAccessPoint) => board
            .bridge
            .set_error("Access point mode is not supported by this build"),
        // SAFETY: as above.
        Some(ModeRequest::Stop) => unsafe { bridge_board_wifi_request(0) },
        None => {}
    }
    if served.transfer.is_some() {
        0
    } else {
        PASS_MS
    }
}

/// An M122 report waiting to be printed: the pool's report, the bridge's counters,
/// lwIP's events as the backend saw them, and lwIP's heap and PCB figures.
struct M122 {
    report: Report<8, LISTENERS>,
    bridge: BridgeStats,
    events: Events,
    lwip: LwipFigures,
}

/// The one report waiting for [`bridge_print_report`] (a newer one replaces it).
static PENDING_M122: critical_section::Mutex<RefCell<Option<M122>>> =
    critical_section::Mutex::new(RefCell::new(None));

/// If the SAM asked for the M122 report (`diagnostics`), take it with lwIP's figures
/// and hand it to the C side's WiFi task, which prints it ([`bridge_print_report`]):
/// printing ~2 KB through the SDK's `printf` waits on UART0 for a few hundred
/// milliseconds, which the tcpip thread must not. Its own function, never inlined,
/// so that the report (a copy of every slot) is on the stack only on this path.
#[inline(never)]
fn take_m122(board: &mut Board) {
    let Some(report) = board.bridge.take_diagnostics() else {
        return;
    };
    let mut lwip = LwipFigures::default();
    // SAFETY: fills the struct; reads lwIP's PCB lists in the tcpip thread.
    unsafe { bridge_board_lwip_figures(&mut lwip) };
    let m122 = M122 {
        report,
        bridge: board.bridge.stats(),
        events: board.bridge.pool().stack().events(),
        lwip,
    };
    critical_section::with(|cs| PENDING_M122.borrow_ref_mut(cs).replace(m122));
    // SAFETY: posts to the WiFi task's queue without waiting.
    unsafe { bridge_board_report_ready() };
}

/// Print the pending M122 report, if any, on the console. Called by the C side's
/// WiFi task (`app_main`'s), never by the tcpip thread.
#[no_mangle]
pub extern "C" fn bridge_print_report() {
    // Swapped out (in chunks, with no second copy on this task's stack).
    let mut pending: Option<M122> = None;
    critical_section::with(|cs| core::mem::swap(&mut pending, &mut *PENDING_M122.borrow_ref_mut(cs)));
    if let Some(m) = &pending {
        print_m122(m);
    }
}

/// Write one M122 report to the console (its own frame: the report is not copied).
#[inline(never)]
fn print_m122(m: &M122) {
    let lwip = &m.lwip;
    let _ = writeln!(Console, "=== M122: netpool bridge ===\n{}", m.report);
    let _ = writeln!(Console, "bridge: {:?}", m.bridge);
    let _ = writeln!(Console, "lwIP events: {:?}", m.events);
    let _ = writeln!(
        Console,
        "lwIP: heap free {} (min {}); PCBs {}/{} (TIME-WAIT {}, LAST-ACK {}, CLOSING {}, FIN-WAIT-1 {}, \
         FIN-WAIT-2 {}, listening {}, bound {}); sizeof pcb {} seg {} pbuf {}; tcpip stack {} of {} never used",
        lwip.heap_free,
        lwip.heap_min_free,
        lwip.pcb_total,
        lwip.pcb_limit,
        lwip.pcb_time_wait,
        lwip.pcb_last_ack,
        lwip.pcb_closing,
        lwip.pcb_fin_wait1,
        lwip.pcb_fin_wait2,
        lwip.pcb_listen,
        lwip.pcb_bound,
        lwip.sizeof_pcb,
        lwip.sizeof_seg,
        lwip.sizeof_pbuf,
        lwip.tcpip_stack_unused,
        lwip.tcpip_stack_size,
    );
}

impl Board {
    /// Copy the C side's WiFi snapshot into the bridge: state, link, addresses.
    fn sync_wifi(&mut self) {
        let mut net = empty_net();
        // SAFETY: the C side fills the whole struct (under a critical section).
        unsafe { bridge_board_net(&mut net) };
        let state = WiFiState::try_from(net.state).unwrap_or(WiFiState::Idle);
        let status = self.bridge.network_status_mut();
        status.rssi = net.rssi;
        if state == self.wifi {
            return;
        }
        let _ = writeln!(Console, "WiFi state: {:?}", state);
        self.wifi = state;
        let up = state == WiFiState::Connected;
        let status = self.bridge.network_status_mut();
        // lwIP keeps addresses in network order; the protocol's first octet is the low
        // byte of a little-endian u32: the same bytes.
        status.ip_address = if up { net.ip } else { 0 };
        status.netmask = if up { net.netmask } else { 0 };
        status.gateway = if up { net.gateway } else { 0 };
        status.channel = net.channel & 0x0F;
        status.ap_mac = net.bssid;
        status.num_reconnects = net.reconnects.into();
        set_c_str::<SSID_LENGTH>(&mut status.ssid, esp8266_bridge::protocol::c_str(&net.ssid));
        self.bridge.set_wifi_state(state);
        self.bridge
            .pool_mut()
            .stack_mut()
            .set_link(if up { LinkState::Up } else { LinkState::Down });
    }
}

fn empty_net() -> NetInfo {
    NetInfo {
        state: WiFiState::Idle as u8,
        rssi: 0,
        channel: 0,
        reconnects: 0,
        ip: 0,
        netmask: 0,
        gateway: 0,
        mac: [0; 6],
        bssid: [0; 6],
        ssid: [0; 32],
    }
}

/// Whether the SSID the SAM asked for is the built-in one (or empty: "any known").
fn ssid_matches(requested: &[u8; SSID_LENGTH], known: &str) -> bool {
    let requested = esp8266_bridge::protocol::c_str(requested);
    requested.is_empty() || requested == known.as_bytes()
}

// ------------------------------------------------------------------------ credentials

/// `s` as a NUL-terminated C string in `N` bytes (truncated to `N - 1`).
const fn c_string<const N: usize>(s: Option<&str>) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = s {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && i < N - 1 {
            out[i] = bytes[i];
            i += 1;
        }
    }
    out
}

static SSID_C: [u8; 33] = c_string(WIFI_SSID);
static PASSWORD_C: [u8; 65] = c_string(WIFI_PASSWORD);
const _: () = assert!(
    match WIFI_SSID {
        Some(s) => s.len() <= 32,
        None => true,
    },
    "WIFI_SSID: at most 32 bytes"
);
const _: () = assert!(
    match WIFI_PASSWORD {
        Some(s) => s.len() <= 64,
        None => true,
    },
    "WIFI_PASSWORD: at most 64 bytes"
);

/// The build-time SSID, NUL-terminated; empty when built without `WIFI_SSID`.
#[no_mangle]
pub extern "C" fn bridge_wifi_ssid() -> *const u8 {
    SSID_C.as_ptr()
}

/// The build-time password, NUL-terminated; empty for an open network.
#[no_mangle]
pub extern "C" fn bridge_wifi_password() -> *const u8 {
    PASSWORD_C.as_ptr()
}

// ------------------------------------------------------------------------ hardware

/// A GPIO by number, through the SDK's GPIO driver (`main/board.c`).
struct Gpio(u32);

impl PinErrorType for Gpio {
    type Error = Infallible;
}

impl OutputPin for Gpio {
    fn set_low(&mut self) -> Result<(), Infallible> {
        // SAFETY: writes one configured output pin.
        unsafe { bridge_board_gpio_write(self.0, 0) };
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        // SAFETY: as above.
        unsafe { bridge_board_gpio_write(self.0, 1) };
        Ok(())
    }
}

impl InputPin for Gpio {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        // SAFETY: reads one configured input pin.
        Ok(unsafe { bridge_board_gpio_read(self.0) } != 0)
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

/// HSPI as master, mode 1, as an embedded-hal `SpiDevice` that leaves chip select
/// alone: the bridge drives chip select (GPIO15) itself around a whole transaction.
struct HspiNoCs;

/// An SPI transfer the SDK's driver refused.
#[derive(Debug)]
struct SpiFailed;

impl embedded_hal::spi::Error for SpiFailed {
    fn kind(&self) -> embedded_hal::spi::ErrorKind {
        embedded_hal::spi::ErrorKind::Other
    }
}

impl SpiErrorType for HspiNoCs {
    type Error = SpiFailed;
}

impl SpiDevice for HspiNoCs {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), SpiFailed> {
        for op in operations {
            let rc = match op {
                // SAFETY (all four): the pointers and length describe live buffers of
                // this operation; the C side writes at most `len` bytes to `rx`.
                Operation::Read(buf) => unsafe {
                    bridge_board_spi_transfer(core::ptr::null(), buf.as_mut_ptr(), buf.len())
                },
                Operation::Write(buf) => unsafe {
                    bridge_board_spi_transfer(buf.as_ptr(), core::ptr::null_mut(), buf.len())
                },
                Operation::Transfer(read, write) => {
                    let n = read.len().min(write.len());
                    let rc = unsafe { bridge_board_spi_transfer(write.as_ptr(), read.as_mut_ptr(), n) };
                    if rc == 0 && read.len() > n {
                        unsafe {
                            bridge_board_spi_transfer(
                                core::ptr::null(),
                                read[n..].as_mut_ptr(),
                                read.len() - n,
                            )
                        }
                    } else if rc == 0 && write.len() > n {
                        unsafe {
                            bridge_board_spi_transfer(
                                write[n..].as_ptr(),
                                core::ptr::null_mut(),
                                write.len() - n,
                            )
                        }
                    } else {
                        rc
                    }
                }
                Operation::TransferInPlace(buf) => unsafe {
                    bridge_board_spi_transfer(buf.as_ptr(), buf.as_mut_ptr(), buf.len())
                },
                Operation::DelayNs(ns) => {
                    // SAFETY: the ROM's busy wait.
                    unsafe { bridge_board_delay_us(ns.div_ceil(1000)) };
                    0
                }
            };
            if rc != 0 {
                return Err(SpiFailed);
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------ runtime

/// The SDK's console (UART0 through its `printf`).
struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: the C side copies `len` bytes out of `s`.
        unsafe { bridge_board_console(s.as_ptr(), s.len()) };
        Ok(())
    }
}

/// critical-section for netpool-lwip's socket table: the FreeRTOS port's critical
/// section (interrupts off, nestable). Everything runs in the tcpip thread anyway.
struct FreeRtosCs;
critical_section::set_impl!(FreeRtosCs);

// SAFETY: vPortEnterCritical/vPortExitCritical nest and pair up as acquire/release.
unsafe impl critical_section::Impl for FreeRtosCs {
    unsafe fn acquire() {
        // SAFETY: see the impl.
        unsafe { vPortEnterCritical() };
    }

    unsafe fn release(_: ()) {
        // SAFETY: see the impl.
        unsafe { vPortExitCritical() };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Console, "bridge panic: {info}");
    // SAFETY: the SDK's abort (prints the backtrace, restarts).
    unsafe { bridge_board_abort() }
}
