//! One control cycle, the same on the firmware and in the simulator.
//!
//! ```text
//! loop {
//!     let frame = read_max6675();                 // SPI, bounded
//!     let out = control.cycle(now_ms, frame);     // commands in, decision, snapshot out
//!     set_relays(out);                            // GPIO
//!     watchdog.feed();                            // only after a completed cycle
//!     sleep(CONTROL_PERIOD);
//! }
//! ```
//!
//! [`ControlLoop::cycle`] takes the operator commands from the mailbox, steps the
//! [`Controller`], records the history and publishes the snapshot — every shared
//! access a short copy, nothing that can wait on the network.

use crate::control::{CommandOutcome, Controller, Outputs};
use crate::max6675;
use crate::shared::Shared;
use crate::state::Snapshot;

/// The control period used by the firmware and the simulator (the MAX6675 needs
/// ≈ 220 ms per conversion; reading faster returns the previous one).
pub const CONTROL_PERIOD_MS: u64 = 500;

/// The controller bound to the [`Shared`] state it publishes to.
pub struct ControlLoop<'a, const H: usize> {
    controller: Controller,
    shared: &'a Shared<H>,
    cycles: u32,
    last_command: Option<CommandOutcome>,
}

impl<'a, const H: usize> ControlLoop<'a, H> {
    /// A control loop at boot.
    pub const fn new(controller: Controller, shared: &'a Shared<H>) -> Self {
        ControlLoop {
            controller,
            shared,
            cycles: 0,
            last_command: None,
        }
    }

    /// One cycle at `now_ms` with the raw MAX6675 frame. Returns the relay states.
    pub fn cycle(&mut self, now_ms: u64, frame: u16) -> Outputs {
        for command in self.shared.take_mailbox().commands() {
            self.last_command = Some(self.controller.apply(command, now_ms));
        }
        let outputs = self.controller.step(now_ms, max6675::decode(frame));
        self.cycles = self.cycles.wrapping_add(1);
        self.shared.record(now_ms, self.controller.temperature());
        let snapshot = Snapshot::capture(
            &self.controller,
            self.shared.link(),
            self.cycles,
            self.last_command,
        );
        self.shared.publish(&snapshot);
        outputs
    }

    /// The controller.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Completed cycles.
    pub fn cycles(&self) -> u32 {
        self.cycles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Command, Mode};
    use crate::temp::Temp;
    use netpool::LinkState;

    #[test]
    fn a_cycle_applies_commands_publishes_and_records() {
        let shared: Shared<16> = Shared::new(1000);
        let mut ctl = ControlLoop::new(Controller::default(), &shared);
        shared.set_link(LinkState::Up);
        let out = ctl.cycle(0, max6675::encode(Temp::from_c(20)));
        assert!(out.element_on);
        let s = shared.snapshot();
        assert_eq!((s.cycles, s.mode, s.link), (1, Mode::Regulating, LinkState::Up));
        assert_eq!(s.temperature, Some(Temp::from_c(20)));
        assert!(shared.element_on());

        shared.post(Command::SetSetpoint(120));
        shared.post(Command::ResetCutoff);
        ctl.cycle(500, max6675::encode(Temp::from_c(200)));
        let s = shared.snapshot();
        assert_eq!(s.setpoint, Temp::from_c(120));
        assert_eq!(s.last_command, Some(CommandOutcome::CutoffNotLatched));
        assert!(!s.outputs.element_on);

        ctl.cycle(1000, max6675::OPEN_FRAME);
        let s = shared.snapshot();
        assert_eq!(s.mode, Mode::SensorFault);
        assert_eq!(s.outputs, Outputs::SAFE);
        let mut h = crate::history::History::new(1);
        shared.copy_history(&mut h);
        let temps: std::vec::Vec<_> = h.iter().map(|s| s.temp()).collect();
        assert_eq!(temps, [Some(Temp::from_c(20)), None]);
    }
}
