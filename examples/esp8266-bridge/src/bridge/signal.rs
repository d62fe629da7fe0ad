//! The WiFi mode and the request pin's timing: what the bridge owes the SAM besides
//! socket states.
//!
//! A *status change* (a new WiFi state, or an error message) is waiting until the
//! SAM fetches it with `networkGetLastError`. While one waits, the request pin pulses
//! low→high every [`BridgeConfig::request_repeat`](super::BridgeConfig) (the first
//! pulse at once). Mode changes the SAM asks for are kept for the platform
//! ([`ModeRequest`]), which does the work and reports the new state.
//!
//! No pins here and no I/O: the service loop asks [`Signal::pulse_due`] and drives
//! the pin itself.

use netpool::{Duration, Instant};

use crate::protocol::{Command, WiFiState, SSID_LENGTH};

/// A mode change the SAM asked for. The bridge replies at once; the platform does
/// the work (WiFi driver), then reports the new state with
/// [`Bridge::set_wifi_state`](super::Bridge::set_wifi_state), which pulses the
/// request pin.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ModeRequest {
    /// `networkStartClient`: connect to this SSID (NUL-padded; empty = best known).
    StartClient {
        /// The SSID.
        ssid: [u8; SSID_LENGTH],
    },
    /// `networkStartAccessPoint`.
    StartAccessPoint,
    /// `networkStop` (the bridge has already closed every connection and listener).
    Stop,
}

impl ModeRequest {
    /// The request a mode command carries; `data` is what the SAM sent with it (the
    /// SSID for `networkStartClient`). `None` for any other command.
    pub(super) fn from_command(command: Command, data: &[u8]) -> Option<Self> {
        match command {
            Command::NetworkStartClient => {
                // Up to the first NUL, at most SSID_LENGTH bytes, NUL-padded.
                let mut ssid = [0u8; SSID_LENGTH];
                for (d, &b) in ssid.iter_mut().zip(data.iter().take_while(|&&b| b != 0)) {
                    *d = b;
                }
                Some(ModeRequest::StartClient { ssid })
            }
            Command::NetworkStartAccessPoint => Some(ModeRequest::StartAccessPoint),
            Command::NetworkStop => Some(ModeRequest::Stop),
            _ => None,
        }
    }
}

/// The WiFi state, the error message and the status-change bookkeeping.
#[derive(Copy, Clone, Debug)]
pub(super) struct Signal {
    wifi_state: WiFiState,
    /// The state the SAM last fetched.
    reported: WiFiState,
    error: Option<&'static str>,
    /// The last pulse of the request pin (`None`: due at once).
    last_pulse: Option<Instant>,
    mode_request: Option<ModeRequest>,
}

impl Signal {
    /// WiFi idle; nothing fetched yet, so the first state is a change.
    pub(super) const fn new() -> Self {
        Signal {
            wifi_state: WiFiState::Idle,
            reported: WiFiState::Disabled,
            error: None,
            last_pulse: None,
            mode_request: None,
        }
    }

    pub(super) fn wifi_state(&self) -> WiFiState {
        self.wifi_state
    }

    /// A new state from the WiFi driver: a change pulses at once.
    pub(super) fn set_wifi_state(&mut self, state: WiFiState) {
        if state != self.wifi_state {
            self.wifi_state = state;
            self.last_pulse = None;
        }
    }

    /// An error message for the SAM: pulses at once.
    pub(super) fn set_error(&mut self, message: &'static str) {
        self.error = Some(message);
        self.last_pulse = None;
    }

    pub(super) fn error(&self) -> Option<&'static str> {
        self.error
    }

    /// Whether a status change waits for the SAM.
    pub(super) fn changed(&self) -> bool {
        self.error.is_some() || self.wifi_state != self.reported
    }

    /// Whether the request pin should pulse at `now`.
    pub(super) fn pulse_due(&self, now: Instant, repeat: Duration) -> bool {
        self.changed() && self.last_pulse.is_none_or(|t| now.saturating_since(t) >= repeat)
    }

    /// The pin pulsed at `now`.
    pub(super) fn pulsed(&mut self, now: Instant) {
        self.last_pulse = Some(now);
    }

    /// The SAM fetched the change (`networkGetLastError`).
    pub(super) fn acknowledge(&mut self) {
        self.error = None;
        self.reported = self.wifi_state;
        self.last_pulse = None;
    }

    pub(super) fn request_mode(&mut self, request: ModeRequest) {
        self.mode_request = Some(request);
    }

    pub(super) fn take_mode_request(&mut self) -> Option<ModeRequest> {
        self.mode_request.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::c_str;

    const REPEAT: Duration = Duration::from_millis(200);

    #[test]
    fn a_change_pulses_at_once_then_every_repeat_until_fetched() {
        let mut s = Signal::new();
        let t0 = Instant::from_millis(1_000);
        assert!(s.pulse_due(t0, REPEAT), "the first state is a change");
        s.pulsed(t0);
        assert!(!s.pulse_due(Instant::from_millis(1_199), REPEAT));
        assert!(s.pulse_due(Instant::from_millis(1_200), REPEAT));
        s.acknowledge();
        assert!(!s.changed());
        assert!(!s.pulse_due(Instant::from_millis(5_000), REPEAT));
        s.set_error("x");
        assert!(
            s.pulse_due(Instant::from_millis(5_000), REPEAT),
            "an error pulses at once"
        );
        s.acknowledge();
        s.set_wifi_state(WiFiState::Idle);
        assert!(!s.changed(), "the same state is no change");
        s.set_wifi_state(WiFiState::Connected);
        assert!(s.changed());
    }

    #[test]
    fn mode_requests_from_commands() {
        let mut data = [0u8; 40];
        data[..4].copy_from_slice(b"duet");
        let Some(ModeRequest::StartClient { ssid }) =
            ModeRequest::from_command(Command::NetworkStartClient, &data)
        else {
            panic!("not a client request");
        };
        assert_eq!(c_str(&ssid), b"duet");
        // An SSID without a NUL is cut at SSID_LENGTH; a short one is padded.
        let long = [b'a'; 40];
        let Some(ModeRequest::StartClient { ssid }) =
            ModeRequest::from_command(Command::NetworkStartClient, &long)
        else {
            panic!("not a client request");
        };
        assert_eq!(ssid, [b'a'; SSID_LENGTH]);
        assert_eq!(
            ModeRequest::from_command(Command::NetworkStartAccessPoint, &[]),
            Some(ModeRequest::StartAccessPoint)
        );
        assert_eq!(
            ModeRequest::from_command(Command::NetworkStop, &[]),
            Some(ModeRequest::Stop)
        );
        assert_eq!(ModeRequest::from_command(Command::ConnRead, &[]), None);
    }
}
