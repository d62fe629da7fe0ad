//! The Duet WiFi-to-SPI bridge on an ESP32-C3: WiFi station (esp-radio), smoltcp with
//! DHCP over esp-radio's station interface, netpool's `SmoltcpStack` and a `Pool` of 8
//! under the `esp8266-bridge` service loop, on SPI2 as master (mode 1) with the
//! ESP32-C3 handshake pins of the protocol.
//!
//! Pins (GPIO numbers):
//!
//! | signal | GPIO | direction |
//! |---|---|---|
//! | chip select (`SamSSPin`) | 7 | out (driven by the bridge as a GPIO) |
//! | `EspReqTransferPin` | 9 | out, idle high (also a strapping pin: high = normal boot) |
//! | `SamTfrReadyPin` | 10 | in |
//! | SCLK | 4 | out |
//! | MOSI (bridge → SAM) | 6 | out |
//! | MISO (SAM → bridge) | 5 | in |
//!
//! The three handshake pins are the protocol's; SCLK/MOSI/MISO are the ones the
//! ESP32-C3 build of the public RTOS bridge firmware uses (any pins work through the
//! GPIO matrix).
//!
//! WiFi credentials come from the build environment (`WIFI_SSID`, `WIFI_PASSWORD`).
//! Like the original firmware, the module starts `idle` and joins the network when the
//! SAM sends `networkStartClient` (RepRapFirmware `M552 S1`); `networkStop` leaves it.
//! Untested on hardware.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::vec::Vec;
use core::future::Future;
use core::pin::{pin, Pin};
use core::task::{Context, Poll, Waker};

use embedded_hal::spi::{ErrorType, Operation, SpiBus, SpiDevice};
use esp8266_bridge::protocol::{ip_to_wire, pins, set_c_str, WiFiState, SSID_LENGTH};
use esp8266_bridge::{pool_config, Bridge, ModeRequest};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
use esp_hal::rng::Rng;
use esp_hal::spi::master::{Config as SpiConfig, Spi};
use esp_hal::spi::Mode;
use esp_hal::time::Rate;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::Blocking;
use esp_println::println;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, WifiController};
use netpool::stack::smoltcp::SmoltcpStack;
use netpool::LinkState;
use netpool::{Duration, Instant, Pool};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

esp_bootloader_esp_idf::esp_app_desc!();

/// Build-time WiFi credentials (`WIFI_SSID=… WIFI_PASSWORD=… cargo build --release`).
const WIFI_SSID: Option<&str> = option_env!("WIFI_SSID");
const WIFI_PASSWORD: Option<&str> = option_env!("WIFI_PASSWORD");

/// TCP sockets given to smoltcp: the pool's 8 connections, the listening sockets the
/// pool's room on each port asks for (netpool's smoltcp backend listens with armed
/// sockets), and closing connections held until a socket is needed.
const TCP_SOCKETS: usize = 14;
/// Receive and transmit buffer of each TCP socket.
const TCP_BUFFER: usize = 2048;
/// Listener slots of the pool: HTTP, FTP, Telnet, FTP data.
const LISTENERS: usize = 4;
/// Coalescing bytes per pool slot (smoltcp has no per-write MORE/PSH flag).
const COALESCE: usize = 512;
/// esp-radio's default `ESP_RADIO_CONFIG_WIFI_MTU` (frame bytes, Ethernet header
/// included). A transmit token panics on longer frames, so smoltcp must not exceed it.
const WIFI_MTU: usize = 1492;

type Stack = SmoltcpStack<'static, TCP_SOCKETS>;
type Bus = NoCs<Spi<'static, Blocking>>;
type BoardBridge = Bridge<Stack, Bus, Output<'static>, Input<'static>, Output<'static>, LISTENERS, COALESCE>;

#[esp_hal::main]
fn main() -> ! {
    // The heap is for esp-radio (its driver allocates) and for the socket buffers below.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 96 * 1024);

    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    println!(
        "esp8266-bridge on ESP32-C3 (netpool {})",
        env!("CARGO_PKG_VERSION")
    );

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    // --- the SAM's link: SPI2 master, mode 1, ≈26.7 MHz (80 MHz / 3), MSB first.
    let spi_config = SpiConfig::default()
        .with_frequency(Rate::from_hz(26_670_000))
        .with_mode(Mode::_1);
    let spi = Spi::new(peripherals.SPI2, spi_config)
        .expect("SPI2 configuration")
        .with_sck(peripherals.GPIO4)
        .with_mosi(peripherals.GPIO6)
        .with_miso(peripherals.GPIO5);
    const _: () =
        assert!(pins::ESP32C3.chip_select == 7 && pins::ESP32C3.request == 9 && pins::ESP32C3.ready == 10);
    let cs = Output::new(peripherals.GPIO7, Level::High, OutputConfig::default());
    let request = Output::new(peripherals.GPIO9, Level::High, OutputConfig::default());
    let ready = Input::new(peripherals.GPIO10, InputConfig::default().with_pull(Pull::Down));

    // --- WiFi (station) and the smoltcp interface over it.
    let station_config = match (WIFI_SSID, WIFI_PASSWORD) {
        (Some(ssid), password) => {
            let auth = match password {
                Some(p) if !p.is_empty() => AuthenticationMethodConfig::Wpa2Personal(
                    p.try_into().expect("WIFI_PASSWORD: at most 64 bytes"),
                ),
                _ => AuthenticationMethodConfig::Open,
            };
            StationConfig::default()
                .with_ssid(ssid.try_into().expect("WIFI_SSID: at most 32 bytes"))
                .with_authentication(auth)
        }
        (None, _) => StationConfig::default(),
    };
    let mut controller = WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(WifiConfig::Station(station_config)),
    )
    .expect("WiFi initialisation");
    let mut phy = WifiPhy(esp_radio::wifi::Interface::station());
    let mac = phy.0.mac_address();
    println!("station MAC {:02x?}", mac);

    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    iface_config.random_seed = seed;
    let iface = Interface::new(iface_config, &mut phy, smol_now());

    // Socket storage and buffers, allocated once and never freed (leaked `Vec`s: no
    // `static mut`, no `unsafe`).
    let storage: &'static mut [SocketStorage<'static>] = (0..TCP_SOCKETS + 1)
        .map(|_| SocketStorage::EMPTY)
        .collect::<Vec<_>>()
        .leak();
    let mut sockets = SocketSet::new(storage);
    for _ in 0..TCP_SOCKETS {
        let rx = tcp::SocketBuffer::new(alloc::vec![0u8; TCP_BUFFER].leak());
        let tx = tcp::SocketBuffer::new(alloc::vec![0u8; TCP_BUFFER].leak());
        let mut socket = tcp::Socket::new(rx, tx);
        // A peer that vanishes mid-close must not hold a socket forever (half-open
        // handshakes are the pool's handshake lease's).
        socket.set_timeout(Some(smoltcp::time::Duration::from_secs(30)));
        sockets.add(socket);
    }
    let dhcp = sockets.add(dhcpv4::Socket::new());
    // Closing sockets are reclaimed when one is needed (TIME-WAIT first, as lwIP's
    // tcp_alloc); each listener keeps as many sockets listening as the pool has room
    // for on its port and, as an accept queue, as the 8 connections the SAM may ask
    // for on one port: those beyond the room wait for a slot instead of being refused.
    // Half-open handshakes are leased (Config::handshake_deadline).
    let stack = SmoltcpStack::new(iface, sockets)
        .with_port_seed(seed as u32)
        .with_accept_queue(8);

    // --- netpool and the bridge.
    let pool: Pool<Stack, 8, LISTENERS, COALESCE> =
        Pool::new(stack, pool_config());
    let mut board = Board {
        bridge: Bridge::new(pool, NoCs(spi), cs, ready, request),
        phy,
        dhcp,
        ip: None,
    };
    {
        let status = board.bridge.network_status_mut();
        status.mac_address = mac;
        status.using_dhcpc = 1;
        status.flash_size = 4 * 1024 * 1024;
        set_c_str(&mut status.version_text, b"netpool-c3-0.1");
    }
    board.bridge.start(now());
    match WIFI_SSID {
        Some(ssid) => println!("WiFi: will join \"{}\" when the SAM starts the client", ssid),
        None => println!(
            "WiFi: built without WIFI_SSID/WIFI_PASSWORD: the bridge serves the SAM but cannot \
             join a network (rebuild with WIFI_SSID=... WIFI_PASSWORD=...)"
        ),
    }

    // --- the service loop, with the WiFi state machine around it. Each phase polls
    // its esp-radio future once per pass (no executor needed: a no-op waker and a
    // pass every millisecond), so the SAM is served throughout.
    loop {
        // Idle: wait for the SAM's networkStartClient.
        board.set_state(WiFiState::Idle);
        loop {
            match board.pass() {
                Some(ModeRequest::StartClient { ssid }) => {
                    if WIFI_SSID.is_some() {
                        if !ssid_matches(&ssid) {
                            println!("WiFi: SAM asked for another SSID; only the built-in one is known");
                        }
                        break;
                    }
                    board
                        .bridge
                        .set_error("No WiFi credentials in this build (WIFI_SSID)");
                }
                Some(ModeRequest::StartAccessPoint) => {
                    board
                        .bridge
                        .set_error("Access point mode is not supported by this build");
                }
                Some(ModeRequest::Stop) | None => {}
            }
        }

        // Client: connect, stay, reconnect after losing the access point.
        let mut attempts = 0u32;
        'client: loop {
            board.set_state(if attempts == 0 {
                WiFiState::Connecting
            } else {
                WiFiState::AutoReconnecting
            });
            attempts += 1;
            let connected = {
                let mut connect = pin!(controller.connect_async());
                loop {
                    if let Poll::Ready(r) = poll_once(connect.as_mut()) {
                        break Some(r);
                    }
                    if let Some(ModeRequest::Stop) = board.pass() {
                        break None;
                    }
                }
            };
            match connected {
                None => {
                    // networkStop while connecting: cancel the attempt.
                    let mut leave = pin!(controller.disconnect_async());
                    while poll_once(leave.as_mut()).is_pending() {
                        board.pass();
                    }
                    break 'client;
                }
                Some(Err(e)) => {
                    println!("WiFi: connect failed: {:?}", e);
                    board.bridge.set_error("WiFi connection failed, retrying");
                    // Retry in 5 s, serving the SAM meanwhile.
                    let until = now() + Duration::from_secs(5);
                    while now() < until {
                        if let Some(ModeRequest::Stop) = board.pass() {
                            break 'client;
                        }
                    }
                    continue 'client;
                }
                Some(Ok(info)) => {
                    println!(
                        "WiFi: associated with {:?} on channel {}",
                        info.ssid, info.channel
                    );
                    let status = board.bridge.network_status_mut();
                    set_c_str::<SSID_LENGTH>(&mut status.ssid, info.ssid.as_str().as_bytes());
                    status.channel = info.channel & 0x0F;
                    status.ap_mac = info.bssid;
                    status.num_reconnects = attempts.saturating_sub(1);
                    board.reset_dhcp();
                }
            }
            // Associated: `connected` once DHCP gives an address (see `pass`).
            let stop = {
                let mut lost = pin!(controller.wait_for_disconnect_async());
                loop {
                    if poll_once(lost.as_mut()).is_ready() {
                        break false;
                    }
                    if let Some(ModeRequest::Stop) = board.pass() {
                        break true;
                    }
                }
            };
            board.lose_address();
            if stop {
                let mut leave = pin!(controller.disconnect_async());
                while poll_once(leave.as_mut()).is_pending() {
                    board.pass();
                }
                break 'client;
            }
            println!("WiFi: lost the access point, reconnecting");
        }
    }
}

/// Whether the SSID the SAM asked for is the built-in one (or empty: "any known").
fn ssid_matches(requested: &[u8; SSID_LENGTH]) -> bool {
    let requested = esp8266_bridge::protocol::c_str(requested);
    requested.is_empty() || Some(requested) == WIFI_SSID.map(str::as_bytes)
}

/// The board's parts that every pass uses (the WiFi controller stays outside, borrowed
/// by whichever esp-radio future is being polled).
struct Board {
    bridge: BoardBridge,
    phy: WifiPhy,
    dhcp: SocketHandle,
    ip: Option<IpCidr>,
}

impl Board {
    /// One pass: the network interface and DHCP, the bridge (pool poll, sockets, one
    /// SPI transfer if the SAM is ready), then a 1 ms yield to the WiFi driver's task.
    /// Returns the mode change the SAM asked for, if any.
    fn pass(&mut self) -> Option<ModeRequest> {
        let stack = self.bridge.pool_mut().stack_mut();
        stack.poll(smol_now(), &mut self.phy);
        let event = stack
            .socket_mut::<dhcpv4::Socket>(self.dhcp)
            .and_then(|s| s.poll().map(dhcp_event));
        match event {
            Some(Some((cidr, router))) => self.configure(cidr, router),
            Some(None) => self.lose_address(),
            None => {}
        }
        self.bridge.service(now());
        if let Some(report) = self.bridge.take_diagnostics() {
            println!("diagnostics: {:?}", report);
        }
        let request = self.bridge.take_mode_request();
        esp_rtos::CurrentThreadHandle::get().delay(esp_hal::time::Duration::from_millis(1));
        request
    }

    fn set_state(&mut self, state: WiFiState) {
        if self.bridge.wifi_state() != state {
            println!("WiFi state: {:?}", state);
            self.bridge.set_wifi_state(state);
        }
    }

    fn configure(&mut self, cidr: smoltcp::wire::Ipv4Cidr, router: Option<smoltcp::wire::Ipv4Address>) {
        println!("DHCP: {} via {:?}", cidr, router);
        let stack = self.bridge.pool_mut().stack_mut();
        let iface = stack.iface_mut();
        iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        match router {
            Some(r) => {
                let _ = iface.routes_mut().add_default_ipv4_route(r);
            }
            None => {
                iface.routes_mut().remove_default_ipv4_route();
            }
        }
        stack.set_link(LinkState::Up);
        self.ip = Some(IpCidr::Ipv4(cidr));
        let status = self.bridge.network_status_mut();
        status.ip_address = ip_to_wire(cidr.address());
        status.netmask = ip_to_wire(cidr.netmask());
        status.gateway = router.map_or(0, ip_to_wire);
        self.set_state(WiFiState::Connected);
    }

    /// The address is gone (DHCP lease lost, or the access point): the link is down.
    fn lose_address(&mut self) {
        let stack = self.bridge.pool_mut().stack_mut();
        stack.set_link(LinkState::Down);
        stack.iface_mut().update_ip_addrs(|addrs| addrs.clear());
        stack.iface_mut().routes_mut().remove_default_ipv4_route();
        if self.ip.take().is_some() {
            println!("DHCP: address lost");
        }
        let status = self.bridge.network_status_mut();
        status.ip_address = 0;
        status.netmask = 0;
        status.gateway = 0;
        if self.bridge.wifi_state() == WiFiState::Connected {
            self.set_state(WiFiState::Reconnecting);
        }
    }

    fn reset_dhcp(&mut self) {
        if let Some(s) = self
            .bridge
            .pool_mut()
            .stack_mut()
            .socket_mut::<dhcpv4::Socket>(self.dhcp)
        {
            s.reset();
        }
    }
}

/// A DHCP event reduced to what the board needs: `Some((address, router))` when
/// configured, `None` when deconfigured.
fn dhcp_event(
    event: dhcpv4::Event<'_>,
) -> Option<(smoltcp::wire::Ipv4Cidr, Option<smoltcp::wire::Ipv4Address>)> {
    match event {
        dhcpv4::Event::Configured(config) => Some((config.address, config.router)),
        dhcpv4::Event::Deconfigured => None,
    }
}

/// Poll a future once with a waker that does nothing: the service loop polls again on
/// its next pass anyway.
fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Milliseconds since boot, for netpool and the bridge.
fn now() -> Instant {
    Instant::from_millis(esp_hal::time::Instant::now().duration_since_epoch().as_millis())
}

/// The same clock for smoltcp.
fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(
        esp_hal::time::Instant::now().duration_since_epoch().as_millis() as i64
    )
}

// ------------------------------------------------------------------------ smoltcp device

/// esp-radio's station interface as a smoltcp `Device`. esp-radio 1.0.0-beta.1
/// implements embassy-net's driver trait, not smoltcp's, but exposes the same
/// receive/transmit tokens, which this adapter forwards.
struct WifiPhy(esp_radio::wifi::Interface);

struct WifiRx(esp_radio::wifi::WifiRxToken);
struct WifiTx(esp_radio::wifi::WifiTxToken);

impl Device for WifiPhy {
    type RxToken<'a> = WifiRx;
    type TxToken<'a> = WifiTx;

    fn receive(&mut self, _timestamp: smoltcp::time::Instant) -> Option<(WifiRx, WifiTx)> {
        self.0.receive().map(|(rx, tx)| (WifiRx(rx), WifiTx(tx)))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<WifiTx> {
        self.0.transmit().map(WifiTx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = WIFI_MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}

impl smoltcp::phy::RxToken for WifiRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.consume_token(|frame| f(frame))
    }
}

impl smoltcp::phy::TxToken for WifiTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume_token(len, f)
    }
}

// ------------------------------------------------------------------------ SPI

/// The SPI bus as an embedded-hal `SpiDevice` that leaves chip select alone: the
/// bridge drives chip select itself around a whole transaction (header, response
/// word, data), which is several SPI operations.
struct NoCs<B>(B);

impl<B: SpiBus> ErrorType for NoCs<B> {
    type Error = B::Error;
}

impl<B: SpiBus> SpiDevice for NoCs<B> {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), B::Error> {
        for op in operations {
            match op {
                Operation::Read(buf) => self.0.read(buf)?,
                Operation::Write(buf) => self.0.write(buf)?,
                Operation::Transfer(read, write) => self.0.transfer(read, write)?,
                Operation::TransferInPlace(buf) => self.0.transfer_in_place(buf)?,
                Operation::DelayNs(ns) => {
                    embedded_hal::delay::DelayNs::delay_ns(&mut esp_hal::delay::Delay::new(), *ns)
                }
            }
        }
        self.0.flush()
    }
}
