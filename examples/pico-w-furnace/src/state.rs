//! [`Snapshot`]: everything the UI shows, as one `Copy` value.
//!
//! The control loop captures a snapshot after every cycle and publishes it through
//! [`crate::shared::Shared`]; the web side copies it out and renders from its copy.

use netpool::LinkState;

use crate::control::{BankReason, CommandOutcome, Controller, Mode, Outputs, DEFAULT_SETPOINT_C};
use crate::max6675::Max6675Error;
use crate::temp::Temp;

/// The controller's state as the UI sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The latest valid reading; `None` before the first and while the sensor is faulted.
    pub temperature: Option<Temp>,
    /// The setpoint.
    pub setpoint: Temp,
    /// The relay coils (element relay, cutoff relay).
    pub outputs: Outputs,
    /// The overheat cutoff is latched (waiting for a reset).
    pub overheat_latched: bool,
    /// The controller's mode.
    pub mode: Mode,
    /// The current sensor fault.
    pub fault: Option<Max6675Error>,
    /// Why the controller is banking embers, while it is.
    pub bank_reason: Option<BankReason>,
    /// When banking gives up to standby (ms since boot), while banking.
    pub bank_ends_ms: Option<u64>,
    /// The WiFi link as the network driver last reported it.
    pub link: LinkState,
    /// Milliseconds since boot, at the end of the cycle that made this snapshot.
    pub uptime_ms: u64,
    /// Completed control cycles since boot.
    pub cycles: u32,
    /// Overheat trips since boot.
    pub trips: u32,
    /// What the last operator command did.
    pub last_command: Option<CommandOutcome>,
}

impl Snapshot {
    /// The state at boot, before the first cycle: safe outputs, `Idle`, no reading.
    pub const BOOT: Snapshot = Snapshot {
        temperature: None,
        setpoint: Temp::from_c(DEFAULT_SETPOINT_C),
        outputs: Outputs::SAFE,
        overheat_latched: false,
        mode: Mode::Idle,
        fault: None,
        bank_reason: None,
        bank_ends_ms: None,
        link: LinkState::Unknown,
        uptime_ms: 0,
        cycles: 0,
        trips: 0,
        last_command: None,
    };

    /// Capture the controller's state.
    pub fn capture(
        ctl: &Controller,
        link: LinkState,
        cycles: u32,
        last_command: Option<CommandOutcome>,
    ) -> Snapshot {
        Snapshot {
            temperature: ctl.temperature(),
            setpoint: ctl.setpoint(),
            outputs: ctl.outputs(),
            overheat_latched: ctl.overheat_latched(),
            mode: ctl.mode(),
            fault: ctl.fault(),
            bank_reason: ctl.bank_reason(),
            bank_ends_ms: ctl.bank_ends_ms(),
            link,
            uptime_ms: ctl.now_ms(),
            cycles,
            trips: ctl.trips(),
            last_command,
        }
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::BOOT
    }
}

/// `up`, `down` or `unknown`.
pub const fn link_name(link: LinkState) -> &'static str {
    match link {
        LinkState::Up => "up",
        LinkState::Down => "down",
        LinkState::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_snapshot_matches_a_fresh_controller() {
        let ctl = Controller::default();
        assert_eq!(
            Snapshot::capture(&ctl, LinkState::Unknown, 0, None),
            Snapshot::BOOT
        );
        assert_eq!(Snapshot::BOOT.outputs, Outputs::SAFE);
    }
}
