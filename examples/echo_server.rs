//! A TCP echo server on a netpool `Pool`, over OS sockets. At most 4 clients at once;
//! a 5th is accepted and reset at once, and counted in the report printed every 5 s.
//! `cargo run --example echo_server --features std -- 127.0.0.1:7007`, then `nc 127.0.0.1 7007`.
use netpool::stack::std_net::StdStack;
use netpool::{nb, Config, Duration, Instant, ListenParams, Pool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7007".into());
    let addr: std::net::SocketAddr = arg.parse()?;
    let mut pool: Pool<StdStack, 4, 1> = Pool::new(StdStack::with_bind_ip(addr.ip()), Config::new());
    pool.listen(addr.port(), ListenParams::new(4))?;

    let start = std::time::Instant::now();
    let mut pending: [Vec<u8>; 4] = Default::default(); // read, not yet written back
    let mut next_report = Instant::ZERO;
    loop {
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
        pool.poll(now);
        while let Some(new) = pool.accept_next() {
            println!("{} from {}", new.handle, new.remote);
            pending[new.handle.slot()].clear();
        }
        let mut busy = false; // sleep only after a pass that moved nothing
        let handles: Vec<_> = pool.handles().collect();
        for h in handles {
            let backlog = &mut pending[h.slot()];
            let mut buf = [0u8; 4096];
            if backlog.is_empty() {
                match pool.read(h, &mut buf, now) {
                    Ok(n) => backlog.extend_from_slice(&buf[..n]),
                    Err(nb::Error::WouldBlock) => {}
                    Err(nb::Error::Other(why)) => {
                        println!("{h}: {why}");
                        pool.close(h, now)?;
                    }
                }
            }
            match pool.write(h, backlog, true, now) {
                Ok(n) => busy |= backlog.drain(..n).len() > 0, // exactly n bytes were taken
                Err(nb::Error::WouldBlock) => {}               // none taken: retry next pass
                Err(nb::Error::Other(_)) => backlog.clear(),
            }
        }
        if now >= next_report {
            println!("{}", pool.report(now));
            next_report = now + Duration::from_secs(5);
        }
        if !busy {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
