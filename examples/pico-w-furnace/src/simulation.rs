//! Thermal-model simulation: the control logic (through [`ControlLoop`], the same
//! code path as the firmware, MAX6675 frames included) driving [`Furnace`] in
//! simulated time. Every loop is bounded by a simulated-time budget.

use std::boxed::Box;

use crate::control::{Command, CommandOutcome, Config, Controller, Mode, Outputs};
use crate::cycle::{ControlLoop, CONTROL_PERIOD_MS};
use crate::max6675;
use crate::shared::Shared;
use crate::temp::Temp;
use crate::thermal::{Furnace, FurnaceParams};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

struct Sim {
    furnace: Furnace,
    shared: &'static Shared<64>,
    control: ControlLoop<'static, 64>,
    now_ms: u64,
    out: Outputs,
}

impl Sim {
    fn new(fuel_j: f32) -> Sim {
        let shared: &'static Shared<64> = Box::leak(Box::new(Shared::new(60_000)));
        Sim {
            furnace: Furnace::new(FurnaceParams::DEFAULT, fuel_j),
            shared,
            control: ControlLoop::new(Controller::new(Config::DEFAULT), shared),
            now_ms: 0,
            out: Outputs::SAFE,
        }
    }

    /// One control period: the furnace evolves under the current relays, then the
    /// controller reads it and decides.
    fn step(&mut self) {
        self.furnace.step(
            CONTROL_PERIOD_MS as f32 / 1000.0,
            self.out.element_on,
            self.out.supply_enabled,
        );
        self.now_ms += CONTROL_PERIOD_MS;
        let frame = self.furnace.max6675_frame();
        self.out = self.control.cycle(self.now_ms, frame);
    }

    /// Step until `done` (true) or `budget_ms` of simulated time pass (false).
    fn run_until(&mut self, budget_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now_ms + budget_ms;
        while self.now_ms < end {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    fn mode(&self) -> Mode {
        self.control.controller().mode()
    }

    fn temp_c(&self) -> f32 {
        self.furnace.temp_c
    }

    fn command(&mut self, c: Command) -> Option<CommandOutcome> {
        self.shared.post(c);
        self.step();
        self.shared.snapshot().last_command
    }
}

fn heated_and_holding() -> Sim {
    let mut sim = Sim::new(30e6);
    assert_eq!(sim.mode(), Mode::Idle);
    assert!(
        sim.run_until(Config::DEFAULT.demand_timeout_ms, |s| s.temp_c() >= 245.0),
        "did not reach the band within the demand timeout"
    );
    assert_eq!(sim.mode(), Mode::Regulating);
    sim
}

#[test]
fn heats_to_setpoint_and_holds_within_hysteresis() {
    let mut sim = heated_and_holding();
    let (mut lo, mut hi, mut switches) = (f32::MAX, f32::MIN, 0);
    let mut last = sim.out.element_on;
    let end = sim.now_ms + HOUR;
    while sim.now_ms < end {
        sim.step();
        lo = lo.min(sim.temp_c());
        hi = hi.max(sim.temp_c());
        switches += u32::from(sim.out.element_on != last);
        last = sim.out.element_on;
        assert_eq!(sim.mode(), Mode::Regulating);
    }
    // The band is 245..=255 °C; a half-second step overshoots it by a fraction.
    assert!(lo >= 244.5 && hi <= 255.5, "held {lo}..{hi}");
    assert!(
        switches >= 4,
        "the element should cycle to hold the setpoint ({switches} switches)"
    );
    // The history saw it too.
    let mut h = crate::history::History::new(1);
    sim.shared.copy_history(&mut h);
    assert_eq!(h.len(), 64);
    for t in h.iter().skip(10).map(|s| s.temp().unwrap()) {
        assert!(t >= Temp::from_c(244) && t <= Temp::from_c(256), "{t}");
    }
}

#[test]
fn fuel_burns_down_embers_are_banked_then_standby() {
    let mut sim = heated_and_holding();
    assert!(
        sim.run_until(4 * HOUR, |s| s.mode() == Mode::Banking),
        "never banked"
    );
    let reason = sim.control.controller().bank_reason();
    assert!(reason.is_some());
    // Let it settle onto the bank target (150 °C), then it holds there.
    sim.run_until(30 * MIN, |_| false);
    let (mut lo, mut hi, mut on) = (f32::MAX, f32::MIN, 0u32);
    let end = sim.now_ms + HOUR;
    while sim.now_ms < end {
        sim.step();
        assert_eq!(sim.mode(), Mode::Banking);
        lo = lo.min(sim.temp_c());
        hi = hi.max(sim.temp_c());
        on += u32::from(sim.out.element_on);
    }
    assert!(lo >= 144.5 && hi <= 155.5, "embers held at {lo}..{hi}");
    assert!(on > 0);
    // Banking times out into standby: element off, the furnace cools.
    assert!(sim.run_until(Config::DEFAULT.bank_timeout_ms, |s| s.mode() == Mode::Standby));
    sim.run_until(HOUR, |s| {
        assert!(!s.out.element_on);
        false
    });
    assert!(sim.temp_c() < 100.0);
    // A new setpoint (someone lit a fire) restarts regulation.
    sim.furnace.add_fuel(30e6);
    assert_eq!(
        sim.command(Command::SetSetpoint(250)),
        Some(CommandOutcome::SetpointApplied(250))
    );
    assert_eq!(sim.mode(), Mode::Regulating);
    assert!(sim.run_until(HOUR, |s| s.temp_c() >= 245.0));
}

#[test]
fn refuelling_while_banking_recovers_the_setpoint() {
    let mut sim = heated_and_holding();
    assert!(sim.run_until(4 * HOUR, |s| s.mode() == Mode::Banking));
    sim.run_until(10 * MIN, |_| false);
    sim.furnace.add_fuel(30e6);
    assert!(
        sim.run_until(HOUR, |s| s.mode() == Mode::Regulating),
        "did not recover after refuelling"
    );
    // The fire and the element bring it back to the setpoint, and it holds there.
    assert!(sim.run_until(HOUR, |s| s.temp_c() >= 245.0));
    sim.run_until(HOUR, |s| {
        assert_eq!(s.mode(), Mode::Regulating);
        assert!((244.5..=255.5).contains(&s.temp_c()));
        false
    });
}

#[test]
fn runaway_trips_the_cutoff_which_latches_until_reset() {
    let mut sim = heated_and_holding();
    sim.run_until(10 * MIN, |_| false);
    sim.furnace.runaway_w = 20_000.0; // a stuck-open damper: no relay controls this
    assert!(
        sim.run_until(HOUR, |s| s.mode() == Mode::Overheat),
        "never tripped"
    );
    assert!(sim.temp_c() >= 899.0);
    assert_eq!(sim.out, Outputs::SAFE);
    // Latched while the runaway goes on and after it ends.
    sim.run_until(10 * MIN, |s| {
        assert_eq!((s.mode(), s.out), (Mode::Overheat, Outputs::SAFE));
        false
    });
    sim.furnace.runaway_w = 0.0;
    assert_eq!(
        sim.command(Command::ResetCutoff),
        Some(CommandOutcome::CutoffResetRefused)
    );
    assert!(sim.shared.overheat_latched());
    assert!(sim.run_until(2 * HOUR, |s| {
        assert_eq!((s.mode(), s.out), (Mode::Overheat, Outputs::SAFE));
        s.temp_c() < 840.0
    }));
    sim.run_until(HOUR, |s| {
        assert_eq!(s.mode(), Mode::Overheat);
        false
    });
    assert_eq!(
        sim.command(Command::ResetCutoff),
        Some(CommandOutcome::CutoffReset)
    );
    assert!(!sim.shared.overheat_latched());
    assert!(sim.out.supply_enabled);
    assert_eq!(sim.shared.snapshot().trips, 1);
}

#[test]
fn thermocouple_fault_turns_the_element_off_and_control_recovers() {
    let mut sim = heated_and_holding();
    // Wait for the element to be on, so the fault has something to turn off.
    assert!(sim.run_until(HOUR, |s| s.out.element_on));
    sim.furnace.thermocouple_open = true;
    sim.run_until(5 * MIN, |s| {
        assert_eq!(
            s.out,
            Outputs::SAFE,
            "element must be off while the sensor is faulted"
        );
        assert_eq!(s.mode(), Mode::SensorFault);
        false
    });
    let snap = sim.shared.snapshot();
    assert_eq!(snap.fault, Some(max6675::Max6675Error::OpenThermocouple));
    assert_eq!(snap.temperature, None);
    sim.furnace.thermocouple_open = false;
    sim.step();
    assert!(sim.shared.snapshot().temperature.is_some());
    assert_eq!(sim.mode(), Mode::Regulating);
    assert!(sim.run_until(HOUR, |s| s.temp_c() >= 245.0));
    sim.run_until(30 * MIN, |s| {
        assert!((244.5..=255.5).contains(&s.temp_c()));
        false
    });
}
