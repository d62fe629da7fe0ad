//! `embassy_http` on a Linux TAP device: embassy-net over embassy-net-tuntap, the
//! example's tasks on embassy-executor's std executor, a static address.
//!
//! `embassy-http-tap --tap NAME [--address A.B.C.D/N]`; stdin `report` prints one
//! `report key=value ...` line (the pool's counters and the acceptor's lease).

use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::process::ExitCode;

use embassy_executor::{Executor, Spawner};
use embassy_net::{Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use netpool_examples::embassy_http::{
    self as example, Acceptor, Buffers, WebBacklog, WebCloser, SOCKETS, WORKERS,
};
use static_cell::{ConstStaticCell, StaticCell};

/// The acceptor's counters, copied out of the executor's thread for `report`.
static LEASE: std::sync::Mutex<Option<netpool::asynch::embassy::LeaseCounters>> = std::sync::Mutex::new(None);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut tap, mut address) = (None, Ipv4Cidr::new(Ipv4Addr::new(10, 79, 0, 2), 24));
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--tap" => tap = Some(value),
            "--address" => match value
                .split_once('/')
                .and_then(|(ip, n)| Some((ip.parse().ok()?, n.parse().ok()?)))
            {
                Some((ip, n)) if n <= 32 => address = Ipv4Cidr::new(ip, n),
                _ => return usage(&format!("bad address {value}")),
            },
            _ => return usage(&format!("unknown option {flag}")),
        }
    }
    let Some(tap) = tap else {
        return usage("--tap is required");
    };
    let device = match TunTapDevice::new(&tap) {
        Ok(d) => d,
        Err(e) => {
            return usage(&format!(
                "cannot open TAP device {tap}: {e} (needs /dev/net/tun and CAP_NET_ADMIN)"
            ))
        }
    };
    std::thread::spawn(report_on_request);
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    EXECUTOR
        .init(Executor::new())
        .run(|spawner| spawner.spawn(start(spawner, device, address).expect("one start")))
}

fn usage(why: &str) -> ExitCode {
    eprintln!("embassy-http-tap: {why}\nUSAGE: embassy-http-tap --tap NAME [--address A.B.C.D/N]");
    ExitCode::from(2)
}

fn report_on_request() {
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim() == "report" {
            let c = example::POOL.counters();
            let lease = LEASE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_default();
            println!(
                "report accepted={} rejected={} reaped={} half_open_expired={} half_open_evicted={}",
                c.accepted, c.rejected, c.reaped, lease.half_open_expired, lease.half_open_evicted
            );
            let _ = std::io::stdout().flush();
        }
    }
}

#[embassy_executor::task]
async fn start(spawner: Spawner, device: TunTapDevice, address: Ipv4Cidr) {
    static RESOURCES: StaticCell<StackResources<{ SOCKETS + 2 }>> = StaticCell::new();
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address,
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(device, config, RESOURCES.init(StackResources::new()), 0x5eed);
    spawner.spawn(stack_task(runner).expect("one stack task"));
    static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
    static ACCEPTOR: StaticCell<Acceptor> = StaticCell::new();
    static BACKLOG: StaticCell<WebBacklog> = StaticCell::new();
    static CLOSER: StaticCell<WebCloser> = StaticCell::new();
    let acceptor: &'static Acceptor = ACCEPTOR.init(example::acceptor(stack, BUFFERS.take()));
    let backlog: &'static WebBacklog = BACKLOG.init(example::backlog());
    let closer: &'static WebCloser = CLOSER.init(example::closer());
    spawner.spawn(backlog_task(backlog, acceptor).expect("one backlog task"));
    spawner.spawn(closer_task(closer).expect("one closer task"));
    spawner.spawn(reaper_task(acceptor).expect("one reaper task"));
    for _ in 0..WORKERS {
        spawner.spawn(worker_task(backlog, closer).expect("WORKERS worker tasks"));
    }
    spawner.spawn(ready_task(stack, acceptor).expect("one ready task"));
}

/// Say so once the address is up and the backlog's accepts are armed.
#[embassy_executor::task]
async fn ready_task(stack: Stack<'static>, acceptor: &'static Acceptor) {
    stack.wait_config_up().await;
    while acceptor.armed().0 < example::BACKLOG {
        embassy_time::Timer::after_millis(10).await;
    }
    let address = stack.config_v4().map(|c| c.address.address());
    println!(
        "embassy-http-tap: serving on http://{}/",
        address.unwrap_or(Ipv4Addr::UNSPECIFIED)
    );
    let _ = std::io::stdout().flush();
}

#[embassy_executor::task]
async fn stack_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn backlog_task(backlog: &'static WebBacklog, acceptor: &'static Acceptor) -> ! {
    example::backlog_task(backlog, acceptor).await
}

#[embassy_executor::task]
async fn closer_task(closer: &'static WebCloser) -> ! {
    example::closer_task(closer).await
}

/// The example's reaper, and a copy of the acceptor's counters for `report`.
#[embassy_executor::task]
async fn reaper_task(acceptor: &'static Acceptor) -> ! {
    let copy = async {
        loop {
            *LEASE.lock().unwrap_or_else(|e| e.into_inner()) = Some(acceptor.counters());
            embassy_time::Timer::after_millis(250).await;
        }
    };
    embassy_futures::join::join(example::reaper_task(), copy).await.0
}

#[embassy_executor::task(pool_size = WORKERS)]
async fn worker_task(backlog: &'static WebBacklog, closer: &'static WebCloser) -> ! {
    example::worker_task(backlog, closer).await
}
