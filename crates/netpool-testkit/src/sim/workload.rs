//! The churn workload the benchmarks share: one steady upload and a set of status
//! pollers, as Duet Web Control tabs produce them.

use std::vec::Vec;

use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::IpEndpoint;

use super::fabric::Fabric;
use super::peers::{CloseStyle, PeerHost, PollStats, Poller, PollerConfig, Uploader};
use super::server::{RESPONSE_LEN, STATUS_REQUEST, UPLOAD_HEADER};
use super::test_net;
use super::world::Participant;

/// One uploader (at 192.0.2.10) and `pollers` pollers (192.0.2.20…): each poller
/// starts a poll every `period_ms`, the first at 0.5 s (staggered), with a browser's
/// 200 ms delayed ACK; half close with RST, as browsers often do. The upload starts at
/// 0.1 s.
pub struct ChurnClients {
    /// The upload.
    pub upload: Uploader,
    /// The pollers.
    pub pollers: Vec<Poller>,
}

impl ChurnClients {
    /// The clients, on `fabric`, of the server at `server`.
    pub fn new(
        fabric: &Fabric,
        server: IpEndpoint,
        pollers: u8,
        period_ms: u64,
        upload_bytes_per_s: u64,
        seed: u64,
    ) -> Self {
        let upload = Uploader::new(
            PeerHost::new(fabric, test_net(10), seed ^ 2, SmolInstant::ZERO),
            server,
            SmolInstant::from_millis(100),
            upload_bytes_per_s,
            UPLOAD_HEADER,
        );
        let period_ms = period_ms.max(1);
        let pollers = (0..pollers)
            .map(|i| {
                let mut host = PeerHost::new(
                    fabric,
                    test_net(20 + i),
                    seed ^ (100 + u64::from(i)),
                    SmolInstant::ZERO,
                );
                host.set_ack_delay_ms(200);
                Poller::new(
                    host,
                    PollerConfig {
                        server,
                        period_ms,
                        first_at_ms: 500 + i64::from(i) * period_ms as i64 / i64::from(pollers.max(1)),
                        timeout_ms: 5000,
                        request: STATUS_REQUEST,
                        response_len: RESPONSE_LEN,
                        close: if i % 2 == 0 {
                            CloseStyle::Rst
                        } else {
                            CloseStyle::Fin
                        },
                    },
                )
            })
            .collect();
        ChurnClients { upload, pollers }
    }

    /// The upload and every poller, for [`run`](super::run).
    pub fn participants(&mut self) -> impl Iterator<Item = &mut dyn Participant> {
        core::iter::once(&mut self.upload as &mut dyn Participant)
            .chain(self.pollers.iter_mut().map(|p| p as &mut dyn Participant))
    }

    /// The pollers' tally, summed.
    pub fn poll_stats(&self) -> PollStats {
        let mut polls = PollStats::default();
        for p in &self.pollers {
            polls.add(&p.stats());
        }
        polls
    }
}

/// The churn benchmarks' command line: `--json`, `--seed N`, `--loss-ppm N`,
/// `--duration-s N` (5..=3600).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ChurnArgs {
    /// Print one JSON object instead of a table.
    pub json: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// Link loss in parts per million.
    pub loss_ppm: u32,
    /// Virtual duration of each run, in seconds.
    pub duration_s: i64,
}

impl ChurnArgs {
    /// Parse the arguments after the program name; a clear message on bad input.
    pub fn parse(args: impl IntoIterator<Item = std::string::String>) -> Result<Self, std::string::String> {
        use std::format;
        let mut out = ChurnArgs {
            json: false,
            seed: 1,
            loss_ppm: 0,
            duration_s: 30,
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| format!("{name} needs a number"))
            };
            match a.as_str() {
                "--json" => out.json = true,
                "--seed" => out.seed = value("--seed")?,
                "--loss-ppm" => out.loss_ppm = value("--loss-ppm")?.min(1_000_000) as u32,
                "--duration-s" => out.duration_s = value("--duration-s")?.clamp(5, 3600) as i64,
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (try --json, --seed N, --loss-ppm N, --duration-s N)"
                    ))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn churn_args_parse_and_refuse_clearly() {
        let a =
            ChurnArgs::parse(["--json", "--seed", "7", "--duration-s", "1"].map(|s| s.to_string())).unwrap();
        assert_eq!((a.json, a.seed, a.loss_ppm, a.duration_s), (true, 7, 0, 5));
        assert_eq!(
            ChurnArgs::parse(vec!["--seed".to_string()]),
            Err("--seed needs a number".to_string())
        );
        assert!(ChurnArgs::parse(vec!["--bogus".to_string()])
            .unwrap_err()
            .contains("unknown argument"));
    }
}
