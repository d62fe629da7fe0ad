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
