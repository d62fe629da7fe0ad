//! The network side (feature `wifi`), all in the thread-mode executor: CYW43439 over
//! PIO SPI, embassy-net with DHCP, a join/rejoin loop, a link/reaper tick, and the web
//! UI on port 80 — [`WEB_TASKS`] tasks accepting through one netpool [`AsyncPool`]
//! with edge-nal-embassy's `TcpAccept`, rendering with `pico_w_furnace::web`.
//!
//! Nothing here is awaited by the control loop. The web tasks render from copies
//! (`Shared::snapshot`, `Shared::copy_history`) and post commands to the mailbox;
//! the link state is *read* from the CYW43 driver's link state and the netif's
//! configuration (`Stack::is_link_up`, `Stack::is_config_up`) — never probed. Every
//! network await in a web task has a deadline (netpool's, measured by [`EmbassyTimer`]).

use core::net::{Ipv4Addr, SocketAddr};

use cyw43::JoinOptions;
use cyw43_pio::{PioSpi, DEFAULT_CLOCK_DIVIDER};
use defmt::{debug, error, info, unwrap, warn};
use edge_nal::TcpBind;
use edge_nal_embassy::{Tcp, TcpAccept, TcpBuffers};
use embassy_executor::Spawner;
use embassy_net::{Stack, StackResources};
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{DMA_CH0, PIN_23, PIN_24, PIN_25, PIN_29, PIO0};
use embassy_rp::pio::{self, Pio};
use embassy_rp::{bind_interrupts, dma, Peri};
use netpool::asynch::{AcceptError, AsyncPool, Timer};
use netpool::{ConnError, Duration, Instant, LinkState, ListenParams};
use pico_w_furnace::history::History;
use pico_w_furnace::web::{self, Handled, Incomplete, View, REQUEST_BUF, RESPONSE_BUF};
use static_cell::StaticCell;

use crate::{HISTORY_LEN, SHARED};

bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => pio::InterruptHandler<PIO0>;
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>;
});

/// WiFi network name, from the build environment (`WIFI_SSID`).
const WIFI_SSID: Option<&str> = option_env!("WIFI_SSID");
/// WiFi passphrase, from the build environment (`WIFI_PASSWORD`); unset or empty
/// joins an open network.
const WIFI_PASSWORD: Option<&str> = option_env!("WIFI_PASSWORD");

/// HTTP port.
pub const HTTP_PORT: u16 = 80;
/// Web tasks, netpool slots and TCP sockets (one per concurrent connection).
pub const WEB_TASKS: usize = 4;
/// Per-socket TCP buffers.
const TCP_TX: usize = 2048;
const TCP_RX: usize = 1024;

/// A request must arrive completely within this time of its accept.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole response must be handed to the stack within this time.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// FIN (and the peer's ACK of everything) within this time, else RST.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// An accept gives up and starts again after this long (re-checking the link).
const ACCEPT_WINDOW: Duration = Duration::from_secs(30);
/// How often the link state is read and the reaper runs.
const TICK: embassy_time::Duration = embassy_time::Duration::from_millis(500);
/// Wait between failed joins.
const REJOIN_BACKOFF: embassy_time::Duration = embassy_time::Duration::from_secs(5);

/// The connection pool: slot bookkeeping for the web tasks. Connections idle for
/// 10 s are reaped; so are connections whose writes make no progress for 10 s.
static POOL: AsyncPool<WEB_TASKS> = AsyncPool::new(
    netpool::Config::new()
        .with_idle_timeout(Some(Duration::from_secs(10)))
        .with_stall_grace(Duration::from_secs(10)),
);

/// netpool's clock: embassy-time (1 MHz ticks), in milliseconds.
#[derive(Copy, Clone)]
pub struct EmbassyTimer;

impl Timer for EmbassyTimer {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    async fn at(&self, deadline: Instant) {
        let ms = deadline.as_millis();
        let at = if ms >= embassy_time::Instant::MAX.as_millis() {
            embassy_time::Instant::MAX
        } else {
            embassy_time::Instant::from_millis(ms)
        };
        embassy_time::Timer::at(at).await
    }
}

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

    static RESOURCES: StaticCell<StackResources<{ WEB_TASKS + 2 }>> = StaticCell::new();
    let seed = RoscRng.next_u64() ^ embassy_time::Instant::now().as_ticks();
    let (stack, runner) = embassy_net::new(
        net_device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(unwrap!(stack_task(runner)));
    spawner.spawn(unwrap!(link_task(stack)));

    static BUFFERS: StaticCell<TcpBuffers<WEB_TASKS, TCP_TX, TCP_RX>> = StaticCell::new();
    static TCP: StaticCell<Tcp<'static>> = StaticCell::new();
    let tcp: &'static Tcp<'static> = TCP.init(Tcp::new(stack, BUFFERS.init(TcpBuffers::new())));
    let acceptor = unwrap!(
        tcp.bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), HTTP_PORT))
            .await
    );
    for id in 0..WEB_TASKS {
        spawner.spawn(unwrap!(web_task(id, stack, acceptor)));
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

/// Every [`TICK`]: read the link state (driver link + netif configuration, two
/// memory reads), publish it, and run the pool's reaper.
#[embassy_executor::task]
async fn link_task(stack: Stack<'static>) -> ! {
    let timer = EmbassyTimer;
    let mut last = LinkState::Unknown;
    loop {
        let link = if stack.is_link_up() && stack.is_config_up() {
            LinkState::Up
        } else {
            LinkState::Down
        };
        SHARED.set_link(link);
        if link != last {
            last = link;
            match stack.config_v4() {
                Some(cfg) if link == LinkState::Up => {
                    info!("network up: http://{}/", cfg.address.address())
                }
                _ => warn!(
                    "network down (link {}, config {})",
                    stack.is_link_up(),
                    stack.is_config_up()
                ),
            }
        }
        let reaped = POOL.reap(timer.now());
        if reaped > 0 {
            debug!("reaped {} connection(s)", reaped);
        }
        embassy_time::Timer::after(TICK).await;
    }
}

/// One of [`WEB_TASKS`] HTTP servers: accept through the pool, serve one request,
/// close. Each owns its buffers (in its static task storage).
#[embassy_executor::task(pool_size = WEB_TASKS)]
async fn web_task(id: usize, stack: Stack<'static>, acceptor: TcpAccept<'static>) -> ! {
    let timer = EmbassyTimer;
    let params = ListenParams::new(WEB_TASKS as u8);
    let mut request = [0u8; REQUEST_BUF];
    let mut response = [0u8; RESPONSE_BUF];
    let mut history = History::<HISTORY_LEN>::new(1);
    loop {
        if !stack.is_config_up() {
            stack.wait_config_up().await;
        }
        let deadline = timer.now() + ACCEPT_WINDOW;
        match POOL.accept(&acceptor, HTTP_PORT, params, &timer, deadline).await {
            Ok(conn) => {
                debug!("web[{}]: connection {}", id, conn.handle());
                serve(conn, &timer, &mut request, &mut response, &mut history).await;
            }
            Err(AcceptError::TimedOut) => {}
            Err(AcceptError::Stack(class)) => {
                warn!("web[{}]: accept failed: {}", id, class);
                embassy_time::Timer::after_millis(500).await;
            }
        }
    }
}

type Conn<'a> = netpool::asynch::Conn<'static, edge_nal_embassy::TcpSocket<'a>, WEB_TASKS>;

/// Read one request (until complete, full, ended or timed out), answer, close.
async fn serve(
    mut conn: Conn<'_>,
    timer: &EmbassyTimer,
    request: &mut [u8; REQUEST_BUF],
    out: &mut [u8; RESPONSE_BUF],
    history: &mut History<HISTORY_LEN>,
) {
    let deadline = timer.now() + REQUEST_TIMEOUT;
    let mut len = 0;
    let response = loop {
        if len > 0 {
            // Copies: nothing the control loop uses is held while rendering.
            let snapshot = SHARED.snapshot();
            SHARED.copy_history(history);
            let view = View {
                snapshot: &snapshot,
                history,
            };
            if let Handled::Respond(r) = web::handle(&request[..len], &view, out) {
                break r;
            }
        }
        if len == request.len() {
            break web::respond_incomplete(Incomplete::TooLarge, out);
        }
        match conn.read(&mut request[len..], timer, deadline).await {
            Ok(n) => len += n,
            Err(ConnError::TimedOut) => break web::respond_incomplete(Incomplete::TimedOut, out),
            Err(ConnError::PeerGone(_)) if len > 0 => {
                break web::respond_incomplete(Incomplete::Truncated, out)
            }
            Err(e) => {
                debug!("web: read: {}", e);
                conn.abort(timer).await;
                return;
            }
        }
    };
    if let Some(command) = response.command {
        SHARED.post(command);
    }
    if response.len == 0 {
        conn.abort(timer).await;
        return;
    }
    match conn
        .write_all(&out[..response.len], timer, timer.now() + WRITE_TIMEOUT)
        .await
    {
        Ok(()) => conn.close(timer, timer.now() + CLOSE_TIMEOUT).await,
        Err(e) => {
            debug!("web: write: {}", e);
            conn.abort(timer).await;
        }
    }
}
