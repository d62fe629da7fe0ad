//! `bridge-sim`: the Duet WiFi-to-SPI bridge on netpool, simulated on this host.
//!
//! ```text
//! bridge-sim [--listen ADDR] [--stall-grace-ms N] [--http-max-conns N] [--http-queue N]
//!            [--request-deadline-ms N] [--body-stall-ms N] [--min-body-rate N] [--card-mib N]
//!            [--www DIR] [--password PW] [--log-requests] [--verbose]
//! bridge-sim decode HEX [--from-sam | --from-bridge] [--command NAME|N]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use esp8266_bridge::host::decode::{decode_hex, Direction};
use esp8266_bridge::host::{default_http_queue, SimConfig, Simulator};
use esp8266_bridge::protocol::Command;

const USAGE: &str = "\
usage:
  bridge-sim [--listen ADDR] [--stall-grace-ms N] [--http-max-conns N] [--http-queue N]
             [--request-deadline-ms N] [--body-stall-ms N] [--min-body-rate N] [--card-mib N]
             [--www DIR] [--password PW] [--log-requests] [--verbose]
      Run the bridge on OS sockets with a simulated RepRapFirmware board behind it.
      --listen ADDR            where browsers connect (default 127.0.0.1:8080)
      --stall-grace-ms N       reap connections whose queued bytes make no progress for N ms
                               (100 ..= 3600000, default 10000)
      --http-max-conns N       HTTP connections the board serves at once (1 ..= 8, default 4)
      --http-queue N           further HTTP connections it holds waiting for a turn
                               (max-conns + queue <= 8; default 8 - max-conns, so the
                               board asks for all 8 sockets); beyond: reset at once
      --request-deadline-ms N  a request head must be complete within N ms of the connection,
                               queue time included: else 408 (503 from the queue)
                               (100 ..= 3600000, default 5000)
      --body-stall-ms N        an upload body that does not move for N ms gets 408
                               (100 ..= 3600000, default 5000)
      --min-body-rate N        ... as does one averaging under N bytes/s after its first
                               --body-stall-ms (>= 1, default 1024)
      --card-mib N             simulated SD card size; uploads that do not fit get 507
                               (1 ..= 4096, default 64)
      --www DIR                put the files below DIR on the card's 0:/www/ (a web app such as
                               Duet Web Control, unpacked): GET / serves index.html(.gz) from it
      --password PW            the machine password rr_connect wants (default: none set)
      --log-requests           print every HTTP request the board answers, with its status
                               (\"request: 200 GET /rr_model?flags=d99fno\")
      --verbose                print every SPI transaction
  bridge-sim decode HEX [--from-sam | --from-bridge] [--command NAME|N]
      Decode a captured SPI transaction (one wire, hex) as JSON. The direction is
      detected unless given; --command says how to read a bridge reply's data.";

fn value<'a>(args: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

/// The next argument as a number for `flag`.
fn number<'a, T>(args: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let v = value(args, flag)?;
    v.parse().map_err(|e| format!("{flag} {v}: {e}"))
}

fn run_sim(args: &[String]) -> Result<(), String> {
    let mut config = SimConfig::default();
    let mut queue = None;
    let mut log_requests = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => {
                let v = value(&mut it, a)?;
                config.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--stall-grace-ms" => config.stall_grace = Duration::from_millis(number(&mut it, a)?),
            "--http-max-conns" => config.http_max_conns = number(&mut it, a)?,
            "--http-queue" => queue = Some(number(&mut it, a)?),
            "--request-deadline-ms" => config.request_deadline = Duration::from_millis(number(&mut it, a)?),
            "--body-stall-ms" => config.body_stall = Duration::from_millis(number(&mut it, a)?),
            "--min-body-rate" => config.min_body_rate = number(&mut it, a)?,
            "--card-mib" => {
                let mib: usize = number(&mut it, a)?;
                config.card_capacity = mib.saturating_mul(1 << 20);
            }
            "--www" => {
                let dir = value(&mut it, a)?;
                let files = esp8266_bridge::host::www_files(std::path::Path::new(dir))
                    .map_err(|e| format!("--www {dir}: {e}"))?;
                config.files.extend(files);
            }
            "--password" => config.password = Some(value(&mut it, a)?.clone()),
            "--log-requests" => log_requests = true,
            "--verbose" | "-v" => config.verbose = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    // Without --http-queue: the sockets --http-max-conns leaves wait for a turn.
    config.http_queue = queue.unwrap_or(default_http_queue(config.http_max_conns));
    config.validate().map_err(|e| format!("{e}\n{USAGE}"))?;
    let sim = Simulator::start(config.clone()).map_err(|e| format!("simulator did not start: {e}"))?;
    sim.board()
        .print_requests
        .store(log_requests, std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "bridge-sim: simulated Duet board on http://{} (HTTP {} at once + {} waiting, request deadline {} ms, \
         stall grace {} ms); Ctrl-C to stop",
        sim.addr(),
        config.http_max_conns,
        config.http_queue,
        config.request_deadline.as_millis(),
        config.stall_grace.as_millis()
    );
    eprintln!(
        "  try: curl 'http://{}/rr_model?key=state&flags=d99fn'",
        sim.addr()
    );
    sim.wait();
    Ok(())
}

fn run_decode(args: &[String]) -> Result<(), String> {
    let mut hex = None;
    let mut direction = None;
    let mut command = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--from-sam" => direction = Some(Direction::FromSam),
            "--from-bridge" => direction = Some(Direction::FromBridge),
            "--command" => {
                let v = value(&mut it, a)?;
                let c = match v.parse::<u8>() {
                    Ok(n) => Command::try_from(n).map_err(|e| e.to_string())?,
                    Err(_) => *Command::ALL
                        .iter()
                        .find(|c| c.name().eq_ignore_ascii_case(v))
                        .ok_or_else(|| format!("unknown command {v:?}"))?,
                };
                command = Some(c);
            }
            s if hex.is_none() => hex = Some(s.to_string()),
            s => hex = Some(format!("{} {s}", hex.unwrap_or_default())),
        }
    }
    let hex = hex.ok_or_else(|| format!("decode needs the captured bytes in hex\n{USAGE}"))?;
    let v = decode_hex(&hex, direction, command)?;
    println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("decode") => run_decode(&args[1..]),
        _ => run_sim(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bridge-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
