//! The network side (feature `wifi`), all in the thread-mode executor: CYW43439 over
//! PIO SPI, embassy-net with DHCP, a join/rejoin loop, and the tasks of
//! [`pico_w_furnace::net`] — the link/reaper tick, the web UI on port 80
//! ([`WEB_TASKS`] tasks accepting through one netpool `AsyncPool`) and the background
//! closer that finishes their connections' FINs. This file is the
//! board bring-up only; the web server is the library's module, the same code the
//! host runs over a TAP device (`furnace-net-host`, test `tap_net`).
//!
//! Nothing here is awaited by the control loop. The link state is *read* from the
//! CYW43 driver's link state and the netif's configuration (`Stack::is_link_up`,
//! `Stack::is_config_up`) — never probed.

use cyw43::JoinOptions;
use cyw43_pio::{PioSpi, DEFAULT_CLOCK_DIVIDER};
use defmt::{error, info, unwrap, warn};
use embassy_executor::Spawner;
use embassy_net::Stack;
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{DMA_CH0, PIN_23, PIN_24, PIN_25, PIN_29, PIO0};
use embassy_rp::pio::{self, Pio};
use embassy_rp::{bind_interrupts, dma, Peri};
use netpool::LinkState;
use pico_w_furnace::net::embassy::{self as board, Acceptor, Resources, Socket, TcpBuffers};
use pico_w_furnace::net::{self, WebBacklog, WebCloser, WEB_TASKS};
use static_cell::{ConstStaticCell, StaticCell};

use crate::SHARED;

bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => pio::InterruptHandler<PIO0>;
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>;
});

/// WiFi network name, from the build environment (`WIFI_SSID`).
const WIFI_SSID: Option<&str> = option_env!("WIFI_SSID");
/// WiFi passphrase, from the build environment (`WIFI_PASSWORD`); unset or empty
/// joins an open network.
const WIFI_PASSWORD: Option<&str> = option_env!("WIFI_PASSWORD");

/// Wait between failed joins.
const REJOIN_BACKOFF: embassy_time::Duration = embassy_time::Duration::from_secs(5);

/// What the network side owns.
pub struct Peripherals {
    /// WL_ON (CYW43 power).
    pub pwr: Peri<'static, PIN_23>,
    /// WL_CS.
    pub cs: Peri<'static, PIN_25>,
    /// WL_D (data in/out).
    pub dio: Peri<'static, PIN_24>,
    /// WL_CLK.
    pub clk: Peri<'static, PIN_29>,
    /// The PIO block running the CYW43 SPI.
    pub pio: Peri<'static, PIO0>,
    /// DMA channel for the PIO SPI.
    pub dma: Peri<'static, DMA_CH0>,
}

type Cyw43Runner = cyw43::Runner<'static, cyw43::SpiBus<Output<'static>, PioSpi<'static, PIO0, 0>>>;

#[embassy_executor::task]
async fn cyw43_task(runner: Cyw43Runner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn stack_task(mut runner: embassy_net::Runner<'static, cyw43::NetDriver<'static>>) -> ! {
    runner.run().await
}

/// Bring the network up and start its tasks. Without credentials it stays off.
#[embassy_executor::task]
pub async fn net_main(spawner: Spawner, p: Peripherals) {
    // `black_box`: decided at run time, so a build without credentials links the
    // same network code as one with them (same image size, same code under test).
    let Some(ssid) = core::hint::black_box(WIFI_SSID).filter(|s| !s.is_empty()) else {
        SHARED.set_link(LinkState::Down);
        error!(
            "no WiFi credentials in this build: set WIFI_SSID (and WIFI_PASSWORD) when \
             building the firmware. The network side stays off; the control loop runs."
        );
        return;
    };
    SHARED.set_link(LinkState::Down);

    let pwr = Output::new(p.pwr, Level::Low);
    let cs = Output::new(p.cs, Level::High);
    let mut pio = Pio::new(p.pio, Irqs);
    let spi = PioSpi::new(
        &mut pio.common,
        pio.sm0,
        DEFAULT_CLOCK_DIVIDER,
        pio.irq0,
        cs,
        p.dio,
        p.clk,
        dma::Channel::new(p.dma, Irqs),
    );

    info!("CYW43: loading firmware");
    static CYW43_STATE: StaticCell<cyw43::State> = StaticCell::new();
    let state = CYW43_STATE.init(cyw43::State::new());
    let (net_device, mut control, runner) =
        cyw43::new(state, pwr, spi, &cyw43_setup::FW, &cyw43_setup::NVRAM).await;
    spawner.spawn(unwrap!(cyw43_task(runner)));
    control.init(cyw43_setup::CLM).await;
    control
        .set_power_management(cyw43::PowerManagementMode::PowerSave)
        .await;

    static RESOURCES: StaticCell<Resources> = StaticCell::new();
    let seed = RoscRng.next_u64() ^ embassy_time::Instant::now().as_ticks();
    let (stack, runner) = embassy_net::new(
        net_device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(Resources::new()),
        seed,
    );
    spawner.spawn(unwrap!(stack_task(runner)));
    spawner.spawn(unwrap!(link_task(stack)));

    // netpool's leased acceptor: its sockets over these buffers (zeroed in .bss, never
    // copied through the stack), armed by the backlog with the handshake lease.
    // `'static` sockets borrow a `'static` acceptor; the closer that takes them is not
    // `Sync` (embassy-net sockets are not `Send`), so it cannot be a `static`: a
    // `StaticCell` each (see `WebCloser`).
    static BUFFERS: ConstStaticCell<TcpBuffers> = ConstStaticCell::new(TcpBuffers::new());
    static ACCEPTOR: StaticCell<Acceptor> = StaticCell::new();
    static CLOSER: StaticCell<WebCloser<Socket<'static>>> = StaticCell::new();
    static BACKLOG: StaticCell<WebBacklog<Socket<'static>>> = StaticCell::new();
    let acceptor: &'static Acceptor = ACCEPTOR.init(board::acceptor(stack, BUFFERS.take()));
    let closer: &'static WebCloser<Socket<'static>> = CLOSER.init(net::closer());
    let backlog: &'static WebBacklog<Socket<'static>> = BACKLOG.init(net::backlog());
    spawner.spawn(unwrap!(closer_task(closer)));
    spawner.spawn(unwrap!(backlog_task(backlog, acceptor)));
    for id in 0..WEB_TASKS {
        spawner.spawn(unwrap!(web_task(id, stack, backlog, closer)));
    }

    // Join, and rejoin whenever the driver reports the link down.
    let options = || match core::hint::black_box(WIFI_PASSWORD).filter(|p| !p.is_empty()) {
        Some(pass) => JoinOptions::new(pass.as_bytes()),
        None => JoinOptions::new_open(),
    };
    loop {
        info!("WiFi: joining {=str}", ssid);
        match control.join(ssid, options()).await {
            Ok(()) => {
                info!("WiFi: joined; waiting for DHCP");
                stack.wait_link_down().await;
                warn!("WiFi: link lost; rejoining");
            }
            Err(e) => {
                warn!("WiFi: join failed ({}); retrying", e);
                embassy_time::Timer::after(REJOIN_BACKOFF).await;
            }
        }
    }
}

/// The link state and the pool's reaper ([`net::link_and_reaper`]).
#[embassy_executor::task]
async fn link_task(stack: Stack<'static>) -> ! {
    net::link_and_reaper(stack, &SHARED).await
}

/// The background closer of the web tasks' connections ([`net::closer_task`]).
#[embassy_executor::task]
async fn closer_task(closer: &'static WebCloser<Socket<'static>>) -> ! {
    net::closer_task(closer).await
}

/// The accept backlog the web tasks take their connections from, on the leased
/// acceptor ([`board::backlog_task`]).
#[embassy_executor::task]
async fn backlog_task(backlog: &'static WebBacklog<Socket<'static>>, acceptor: &'static Acceptor) -> ! {
    board::backlog_task(backlog, acceptor).await
}

/// One of [`WEB_TASKS`] HTTP servers ([`net::web_server`]); its buffers live in this
/// task's static storage.
#[embassy_executor::task(pool_size = WEB_TASKS)]
async fn web_task(
    id: usize,
    stack: Stack<'static>,
    backlog: &'static WebBacklog<Socket<'static>>,
    closer: &'static WebCloser<Socket<'static>>,
) -> ! {
    net::web_server(id, stack, backlog, closer, &SHARED).await
}
