//! The furnace control logic: setpoint with hysteresis, a latching overheat cutoff,
//! ember banking and sensor-fault handling. No hardware, no clock, no I/O: the caller
//! passes the time and the thermocouple reading to [`Controller::step`] once per
//! control cycle and drives the two relays from the returned [`Outputs`].
//!
//! # Relays
//!
//! - **Element relay** — switches the heating element.
//! - **Cutoff relay** — in series with the element's supply and *fail-safe*: energised
//!   (closed) means the supply is enabled, de-energised (open) cuts it. A dead
//!   controller, a reset or a brown-out leaves it open. [`Outputs::supply_enabled`] is
//!   the cutoff relay's coil. A welded element relay is still stopped by the cutoff.
//!
//! # Rules, in priority order
//!
//! 1. **Boot** ([`Mode::Idle`]): element off, cutoff open, until the first valid
//!    reading ([`Outputs::SAFE`]). The setpoint starts at [`DEFAULT_SETPOINT_C`].
//! 2. **Overheat** ([`Mode::Overheat`]): a valid reading at or above
//!    [`Config::overheat`] opens the cutoff and switches the element off, and the trip
//!    *latches*: it stays tripped when the temperature falls, until an explicit
//!    [`Command::ResetCutoff`], which is honoured only while the latest reading is
//!    valid and below [`Config::reset_below`] (otherwise it is refused and reported).
//!    After a reset the controller regulates again. A sensor fault never clears a latch.
//! 3. **Sensor fault** ([`Mode::SensorFault`]): any [`Max6675Error`] (open
//!    thermocouple, bad frame) switches the element off and opens the cutoff *in the
//!    same cycle*. The next valid reading resumes the mode the fault interrupted
//!    (timers keep running; the element decision is made afresh).
//! 4. **Regulating** ([`Mode::Regulating`]): hysteresis around the setpoint `SP` with
//!    `H` = [`Config::hysteresis`]: the element turns on at `T ≤ SP − H`, off at
//!    `T ≥ SP + H`, and keeps its state in between.
//! 5. **Ember banking** ([`Mode::Banking`]) — the fire would die. From Regulating, the
//!    controller starts banking when either
//!    - *demand timeout*: the element has been on without a break for
//!      [`Config::demand_timeout_ms`] (it could not bring the furnace up to `SP + H`:
//!      the fire is not doing its share), or
//!    - *dying*: the fire has been *lit* — the temperature reached `SP − H` since
//!      regulation started or the setpoint last changed — and the temperature is now
//!      below `SP − ` [`Config::dying_margin`] (the element is on, since
//!      `T < SP − H`, and could not hold it).
//!
//!    While banking, the element holds the embers at the bank target
//!    `B = min(`[`Config::bank`]`, SP − 3H)` with the same hysteresis (`B + H` stays
//!    below `SP − H`). Banking ends when
//!    - the fire *recovers* (fuel was added): the temperature reaches `SP − H`, or it
//!      rises [`Config::recover_rise`] above its lowest point since the element last
//!      switched off — with the element off, only the fire can raise it. Back to
//!      Regulating with a fresh demand timer (and the dying rule disarmed until
//!      `SP − H` is reached again), or
//!    - a setpoint command arrives (someone is tending the furnace: Regulating, with a
//!      fresh demand timer), or
//!    - it has lasted [`Config::bank_timeout_ms`]: [`Mode::Standby`].
//! 6. **Standby** ([`Mode::Standby`]): banking timed out; element off, cutoff closed.
//!    Back to Regulating when the fire recovers by the same rule (someone relit it) or
//!    a setpoint command arrives.
//!
//! A setpoint command outside [`SETPOINT_MIN_C`]`..=`[`SETPOINT_MAX_C`] is refused
//! (the web handlers refuse it earlier, with a 400).
//!
//! Every `step` and every `apply` is O(1), with no loop, no wait and no allocation.

use core::fmt;

use crate::max6675::{Max6675Error, MAX_TEMP};
use crate::temp::Temp;

/// Lowest setpoint accepted, °C.
pub const SETPOINT_MIN_C: i32 = 100;
/// Highest setpoint accepted, °C (wood-stove firebox range; well below the cutoff).
pub const SETPOINT_MAX_C: i32 = 800;
/// The setpoint at boot, °C.
pub const DEFAULT_SETPOINT_C: i32 = 250;

/// Control parameters. [`Config::DEFAULT`] is what the firmware uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Half-width `H` of the hysteresis band (element on at `SP − H`, off at `SP + H`).
    pub hysteresis: Temp,
    /// Trip the latching cutoff at or above this temperature.
    pub overheat: Temp,
    /// A cutoff reset is honoured only while the temperature is below this.
    pub reset_below: Temp,
    /// Ember-holding temperature while banking (capped at `SP − 3H`).
    pub bank: Temp,
    /// Once lit, a fall below `SP − dying_margin` starts banking.
    pub dying_margin: Temp,
    /// While banking or in standby, a rise this far above the lowest temperature
    /// since the element last switched off means the fire recovered. Must exceed the
    /// band `2H` the element itself moves the temperature across.
    pub recover_rise: Temp,
    /// The element on without a break for this long starts banking (ms).
    pub demand_timeout_ms: u64,
    /// Banking for this long gives up to [`Mode::Standby`] (ms).
    pub bank_timeout_ms: u64,
}

impl Config {
    /// `H` = 5 °C, cutoff at 900 °C (reset below 850 °C), embers held at 150 °C,
    /// dying margin 60 °C, recovery on a 25 °C rise, demand timeout 30 min, banking for
    /// at most 6 h.
    pub const DEFAULT: Config = Config {
        hysteresis: Temp::from_c(5),
        overheat: Temp::from_c(900),
        reset_below: Temp::from_c(850),
        bank: Temp::from_c(150),
        dying_margin: Temp::from_c(60),
        recover_rise: Temp::from_c(25),
        demand_timeout_ms: 30 * 60 * 1000,
        bank_timeout_ms: 6 * 60 * 60 * 1000,
    };

    /// Check the parameters against each other and the sensor's range.
    pub const fn check(&self) -> Result<(), ConfigError> {
        let h = self.hysteresis.quarters();
        if h <= 0 {
            return Err(ConfigError::Hysteresis);
        }
        // The sensor must be able to report the trip temperature, and no setpoint's
        // band may reach it.
        if self.overheat.quarters() > MAX_TEMP.quarters()
            || self.overheat.quarters() <= Temp::from_c(SETPOINT_MAX_C).plus(self.hysteresis).quarters()
        {
            return Err(ConfigError::Overheat);
        }
        if self.reset_below.quarters() >= self.overheat.quarters() || self.reset_below.quarters() <= 0 {
            return Err(ConfigError::ResetBelow);
        }
        if self.dying_margin.quarters() <= h {
            return Err(ConfigError::DyingMargin);
        }
        if self.recover_rise.quarters() <= 2 * h {
            return Err(ConfigError::RecoverRise);
        }
        if self.demand_timeout_ms == 0 || self.bank_timeout_ms == 0 {
            return Err(ConfigError::Timeout);
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Which [`Config`] rule is broken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The hysteresis must be positive.
    Hysteresis,
    /// The cutoff must be above the highest setpoint's band and within the sensor's range.
    Overheat,
    /// The reset threshold must be positive and below the cutoff.
    ResetBelow,
    /// The dying margin must exceed the hysteresis.
    DyingMargin,
    /// The recovery rise must exceed the hysteresis band (2 × hysteresis).
    RecoverRise,
    /// Timeouts must be positive.
    Timeout,
}

/// What the controller is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Boot: no valid reading yet. Everything off.
    Idle,
    /// Holding the setpoint with hysteresis.
    Regulating,
    /// The fire would die: holding embers at the bank target.
    Banking,
    /// Banking timed out: element off until relit or a new setpoint.
    Standby,
    /// The thermocouple reading is invalid: element off, cutoff open.
    SensorFault,
    /// Overheat cutoff tripped and latched until an explicit reset.
    Overheat,
}

impl Mode {
    /// A short machine-readable name (`idle`, `regulating`, `banking`, `standby`,
    /// `sensor-fault`, `overheat`).
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Idle => "idle",
            Mode::Regulating => "regulating",
            Mode::Banking => "banking",
            Mode::Standby => "standby",
            Mode::SensorFault => "sensor-fault",
            Mode::Overheat => "overheat",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why banking started.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BankReason {
    /// The element was on for the whole demand timeout.
    DemandTimeout,
    /// Once lit, the temperature fell below `SP − dying_margin`.
    Dying,
}

impl BankReason {
    /// `demand-timeout` or `dying`.
    pub const fn name(self) -> &'static str {
        match self {
            BankReason::DemandTimeout => "demand-timeout",
            BankReason::Dying => "dying",
        }
    }
}

/// The relay coils to drive after a cycle. `true` = energised.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outputs {
    /// Element relay: heating element on.
    pub element_on: bool,
    /// Cutoff relay (fail-safe, in series with the element supply): closed, supply enabled.
    pub supply_enabled: bool,
}

impl Outputs {
    /// Both relays de-energised: element off, supply cut. The state at boot, on a
    /// fault, on overheat — and what the hardware does by itself when unpowered.
    pub const SAFE: Outputs = Outputs {
        element_on: false,
        supply_enabled: false,
    };
}

/// An operator command (from the web UI), applied by the control loop.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Set the setpoint, whole °C.
    SetSetpoint(i32),
    /// Reset a latched overheat cutoff.
    ResetCutoff,
}

/// What a [`Command`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CommandOutcome {
    /// The setpoint is now this many °C.
    SetpointApplied(i32),
    /// Refused: the setpoint (°C) is outside [`SETPOINT_MIN_C`]`..=`[`SETPOINT_MAX_C`].
    SetpointOutOfRange(i32),
    /// The cutoff latch was cleared; regulating again.
    CutoffReset,
    /// Nothing to reset: the cutoff is not latched.
    CutoffNotLatched,
    /// Refused: still at or above [`Config::reset_below`], or no valid reading.
    CutoffResetRefused,
}

impl CommandOutcome {
    /// A short machine-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            CommandOutcome::SetpointApplied(_) => "setpoint-applied",
            CommandOutcome::SetpointOutOfRange(_) => "setpoint-out-of-range",
            CommandOutcome::CutoffReset => "cutoff-reset",
            CommandOutcome::CutoffNotLatched => "cutoff-not-latched",
            CommandOutcome::CutoffResetRefused => "cutoff-reset-refused",
        }
    }
}

/// The controller's state machine. See the [module docs](self) for the rules.
#[derive(Clone, Debug)]
pub struct Controller {
    config: Config,
    setpoint: Temp,
    mode: Mode,
    /// The mode a sensor fault interrupted.
    resume: Mode,
    mode_since_ms: u64,
    element: bool,
    latched: bool,
    /// The temperature reached `SP − H` since regulation started / the setpoint changed.
    lit: bool,
    /// When the element last switched on (while it is on).
    demand_since_ms: Option<u64>,
    bank_since_ms: u64,
    bank_reason: Option<BankReason>,
    /// Lowest temperature since the element last switched off (banking, standby).
    low_since_off: Option<Temp>,
    temperature: Option<Temp>,
    fault: Option<Max6675Error>,
    now_ms: u64,
    trips: u32,
}

impl Controller {
    /// A controller at boot: [`Mode::Idle`], [`Outputs::SAFE`], setpoint
    /// [`DEFAULT_SETPOINT_C`].
    pub const fn new(config: Config) -> Self {
        Controller {
            config,
            setpoint: Temp::from_c(DEFAULT_SETPOINT_C),
            mode: Mode::Idle,
            resume: Mode::Idle,
            mode_since_ms: 0,
            element: false,
            latched: false,
            lit: false,
            demand_since_ms: None,
            bank_since_ms: 0,
            bank_reason: None,
            low_since_off: None,
            temperature: None,
            fault: None,
            now_ms: 0,
            trips: 0,
        }
    }

    /// One control cycle at `now_ms` (monotonic milliseconds) with this cycle's
    /// thermocouple reading. Returns the relay states to apply.
    pub fn step(&mut self, now_ms: u64, reading: Result<Temp, Max6675Error>) -> Outputs {
        self.now_ms = now_ms;
        match reading {
            Err(e) => self.on_fault(e),
            Ok(t) => self.on_reading(t),
        }
        self.outputs()
    }

    /// Apply an operator command at `now_ms` (between cycles).
    pub fn apply(&mut self, command: Command, now_ms: u64) -> CommandOutcome {
        self.now_ms = self.now_ms.max(now_ms);
        match command {
            Command::SetSetpoint(c) => {
                if !(SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&c) {
                    return CommandOutcome::SetpointOutOfRange(c);
                }
                self.setpoint = Temp::from_c(c);
                self.lit = false;
                if self.element {
                    self.demand_since_ms = Some(self.now_ms);
                }
                match self.mode {
                    Mode::Banking | Mode::Standby => self.enter(Mode::Regulating),
                    Mode::SensorFault if matches!(self.resume, Mode::Banking | Mode::Standby) => {
                        self.resume = Mode::Regulating;
                        self.bank_reason = None;
                    }
                    _ => {}
                }
                CommandOutcome::SetpointApplied(c)
            }
            Command::ResetCutoff => {
                if !self.latched {
                    return CommandOutcome::CutoffNotLatched;
                }
                match (self.fault, self.temperature) {
                    (None, Some(t)) if t < self.config.reset_below => {
                        self.latched = false;
                        self.lit = false;
                        self.set_element(false);
                        self.enter(Mode::Regulating);
                        CommandOutcome::CutoffReset
                    }
                    _ => CommandOutcome::CutoffResetRefused,
                }
            }
        }
    }

    /// The relay states for the current state (what the last `step` returned, or
    /// the effect of a command since).
    pub fn outputs(&self) -> Outputs {
        let supply = !self.latched && self.fault.is_none() && self.mode != Mode::Idle;
        Outputs {
            element_on: self.element && supply,
            supply_enabled: supply,
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &Config {
        &self.config
    }
    /// The setpoint.
    pub const fn setpoint(&self) -> Temp {
        self.setpoint
    }
    /// The mode.
    pub const fn mode(&self) -> Mode {
        self.mode
    }
    /// When the current mode was entered (ms).
    pub const fn mode_since_ms(&self) -> u64 {
        self.mode_since_ms
    }
    /// The latest valid reading; `None` before the first and while faulted.
    pub const fn temperature(&self) -> Option<Temp> {
        self.temperature
    }
    /// The current sensor fault, if any.
    pub const fn fault(&self) -> Option<Max6675Error> {
        self.fault
    }
    /// Whether the overheat cutoff is latched.
    pub const fn overheat_latched(&self) -> bool {
        self.latched
    }
    /// How many times the cutoff has tripped since boot.
    pub const fn trips(&self) -> u32 {
        self.trips
    }
    /// Why the controller is banking (while [`Mode::Banking`], or a fault during it).
    pub const fn bank_reason(&self) -> Option<BankReason> {
        self.bank_reason
    }
    /// The ember-holding target `min(bank, SP − 3H)`.
    pub const fn bank_target(&self) -> Temp {
        Temp::min_of(
            self.config.bank,
            self.setpoint.minus(self.config.hysteresis.times(3)),
        )
    }
    /// When banking gives up to standby (ms), while banking.
    pub fn bank_ends_ms(&self) -> Option<u64> {
        self.bank_reason
            .map(|_| self.bank_since_ms.saturating_add(self.config.bank_timeout_ms))
    }
    /// The time of the last `step` or `apply` (ms).
    pub const fn now_ms(&self) -> u64 {
        self.now_ms
    }

    // ------------------------------------------------------------------ rules

    fn enter(&mut self, mode: Mode) {
        if mode != Mode::Banking && mode != Mode::SensorFault {
            self.bank_reason = None;
        }
        if mode == Mode::Regulating && self.element {
            // A fresh demand period starts with the mode.
            self.demand_since_ms = Some(self.now_ms);
        }
        if self.mode != mode {
            self.mode = mode;
            self.mode_since_ms = self.now_ms;
        }
    }

    fn set_element(&mut self, on: bool) {
        if on && !self.element {
            self.demand_since_ms = Some(self.now_ms);
        }
        if !on {
            self.demand_since_ms = None;
        }
        self.element = on;
    }

    fn on_fault(&mut self, e: Max6675Error) {
        self.fault = Some(e);
        self.temperature = None;
        self.set_element(false);
        if !matches!(self.mode, Mode::Overheat | Mode::SensorFault) {
            self.resume = self.mode;
            self.enter(Mode::SensorFault);
        }
    }

    fn on_reading(&mut self, t: Temp) {
        self.fault = None;
        self.temperature = Some(t);
        if t >= self.config.overheat {
            if !self.latched {
                self.trips = self.trips.saturating_add(1);
            }
            self.latched = true;
            self.set_element(false);
            self.enter(Mode::Overheat);
            return;
        }
        if self.latched {
            self.set_element(false);
            return;
        }
        match self.mode {
            Mode::Idle => {
                self.lit = false;
                self.enter(Mode::Regulating);
            }
            Mode::SensorFault => {
                let resume = match self.resume {
                    Mode::Banking => Mode::Banking,
                    Mode::Standby => Mode::Standby,
                    _ => Mode::Regulating,
                };
                self.enter(resume);
            }
            _ => {}
        }
        match self.mode {
            Mode::Regulating => self.regulate(t),
            Mode::Banking => self.banking(t),
            Mode::Standby => self.standby(t),
            // Unreachable by the rules above; off is the safe answer anyway.
            Mode::Idle | Mode::SensorFault | Mode::Overheat => self.set_element(false),
        }
    }

    /// Hysteresis around `target`.
    fn hold(&mut self, t: Temp, target: Temp) {
        let h = self.config.hysteresis;
        if t <= target.minus(h) {
            self.set_element(true);
        } else if t >= target.plus(h) {
            self.set_element(false);
        }
    }

    fn regulate(&mut self, t: Temp) {
        let sp = self.setpoint;
        if t >= sp.minus(self.config.hysteresis) {
            self.lit = true;
        }
        if self.lit && t < sp.minus(self.config.dying_margin) {
            self.start_banking(BankReason::Dying, t);
            return;
        }
        self.hold(t, sp);
        if let (true, Some(since)) = (self.element, self.demand_since_ms) {
            if self.now_ms.saturating_sub(since) >= self.config.demand_timeout_ms {
                self.start_banking(BankReason::DemandTimeout, t);
            }
        }
    }

    fn start_banking(&mut self, reason: BankReason, t: Temp) {
        self.bank_reason = Some(reason);
        self.bank_since_ms = self.now_ms;
        self.low_since_off = None;
        self.enter(Mode::Banking);
        self.hold(t, self.bank_target());
        self.track_low(t);
    }

    /// The fire recovered: back at `SP − H`, or risen `recover_rise` above its low
    /// point with the element off (so it was not the element).
    fn recovered(&self, t: Temp) -> bool {
        t >= self.setpoint.minus(self.config.hysteresis)
            || (!self.element
                && self
                    .low_since_off
                    .is_some_and(|low| t >= low.plus(self.config.recover_rise)))
    }

    fn track_low(&mut self, t: Temp) {
        self.low_since_off = if self.element {
            None
        } else {
            Some(self.low_since_off.map_or(t, |low| low.min(t)))
        };
    }

    fn recover(&mut self, t: Temp) {
        self.lit = t >= self.setpoint.minus(self.config.hysteresis);
        self.low_since_off = None;
        self.enter(Mode::Regulating);
        self.regulate(t);
    }

    fn banking(&mut self, t: Temp) {
        if self.recovered(t) {
            self.recover(t);
            return;
        }
        if self.now_ms.saturating_sub(self.bank_since_ms) >= self.config.bank_timeout_ms {
            self.set_element(false);
            self.enter(Mode::Standby);
            self.track_low(t);
            return;
        }
        self.hold(t, self.bank_target());
        self.track_low(t);
    }

    fn standby(&mut self, t: Temp) {
        self.set_element(false);
        if self.recovered(t) {
            self.recover(t);
            return;
        }
        self.track_low(t);
    }
}

impl Default for Controller {
    fn default() -> Self {
        Controller::new(Config::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(v: i32) -> Result<Temp, Max6675Error> {
        Ok(Temp::from_c(v))
    }

    fn regulating_at(t: i32) -> Controller {
        let mut ctl = Controller::default();
        ctl.step(0, c(t));
        assert_eq!(ctl.mode(), Mode::Regulating);
        ctl
    }

    #[test]
    fn config_default_is_valid_and_checks_catch_mistakes() {
        assert_eq!(Config::DEFAULT.check(), Ok(()));
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::DEFAULT;
            f(&mut c);
            c.check()
        };
        assert_eq!(bad(|c| c.hysteresis = Temp::ZERO), Err(ConfigError::Hysteresis));
        assert_eq!(
            bad(|c| c.overheat = Temp::from_c(1100)),
            Err(ConfigError::Overheat)
        );
        assert_eq!(
            bad(|c| c.overheat = Temp::from_c(805)),
            Err(ConfigError::Overheat)
        );
        assert_eq!(
            bad(|c| c.reset_below = Temp::from_c(900)),
            Err(ConfigError::ResetBelow)
        );
        assert_eq!(
            bad(|c| c.dying_margin = Temp::from_c(5)),
            Err(ConfigError::DyingMargin)
        );
        assert_eq!(
            bad(|c| c.recover_rise = Temp::from_c(10)),
            Err(ConfigError::RecoverRise)
        );
        assert_eq!(bad(|c| c.bank_timeout_ms = 0), Err(ConfigError::Timeout));
    }

    #[test]
    fn boot_is_safe_until_a_valid_reading() {
        let mut ctl = Controller::default();
        assert_eq!(ctl.mode(), Mode::Idle);
        assert_eq!(ctl.outputs(), Outputs::SAFE);
        assert_eq!(ctl.setpoint(), Temp::from_c(DEFAULT_SETPOINT_C));
        assert_eq!(ctl.temperature(), None);
        // Faults at boot keep everything off.
        assert_eq!(ctl.step(0, Err(Max6675Error::OpenThermocouple)), Outputs::SAFE);
        assert_eq!(ctl.step(500, Err(Max6675Error::BadFrame(0xFFFF))), Outputs::SAFE);
        assert_eq!(ctl.mode(), Mode::SensorFault);
        // The first valid reading starts regulation: cold, so the element comes on.
        let out = ctl.step(1000, c(20));
        assert_eq!(ctl.mode(), Mode::Regulating);
        assert_eq!(
            out,
            Outputs {
                element_on: true,
                supply_enabled: true
            }
        );
    }

    #[test]
    fn boot_reading_above_the_cutoff_trips_at_once() {
        let mut ctl = Controller::default();
        assert_eq!(ctl.step(0, c(950)), Outputs::SAFE);
        assert_eq!(ctl.mode(), Mode::Overheat);
        assert!(ctl.overheat_latched());
    }

    #[test]
    fn hysteresis_band() {
        let mut ctl = regulating_at(200);
        assert!(ctl.outputs().element_on);
        // On until SP + H, whatever happens inside the band.
        for t in [240, 245, 250, 254] {
            assert!(ctl.step(1000, c(t)).element_on, "{t}");
        }
        assert!(!ctl.step(2000, c(255)).element_on);
        // Off until SP - H.
        for t in [254, 250, 246] {
            assert!(!ctl.step(3000, c(t)).element_on, "{t}");
        }
        assert!(ctl.step(4000, Ok(Temp::from_quarters(245 * 4))).element_on);
        assert!(ctl.step(4500, Ok(Temp::from_quarters(245 * 4 + 1))).element_on);
    }

    #[test]
    fn overheat_latches_until_an_explicit_reset_below_the_threshold() {
        let mut ctl = regulating_at(240);
        assert_eq!(ctl.step(1000, c(900)), Outputs::SAFE);
        assert_eq!(ctl.mode(), Mode::Overheat);
        assert_eq!(ctl.trips(), 1);
        // Cooling does not clear it.
        for (i, t) in [880, 600, 200, 20].into_iter().enumerate() {
            assert_eq!(ctl.step(2000 + i as u64, c(t)), Outputs::SAFE);
            assert_eq!(ctl.mode(), Mode::Overheat);
        }
        // A fault does not clear it either, and a reset during a fault is refused.
        ctl.step(3000, Err(Max6675Error::OpenThermocouple));
        assert_eq!(ctl.mode(), Mode::Overheat);
        assert_eq!(
            ctl.apply(Command::ResetCutoff, 3001),
            CommandOutcome::CutoffResetRefused
        );
        // Too hot to reset.
        ctl.step(4000, c(850));
        assert_eq!(
            ctl.apply(Command::ResetCutoff, 4001),
            CommandOutcome::CutoffResetRefused
        );
        assert!(ctl.overheat_latched());
        // Cool enough.
        ctl.step(5000, c(849));
        assert_eq!(ctl.apply(Command::ResetCutoff, 5001), CommandOutcome::CutoffReset);
        assert_eq!(ctl.mode(), Mode::Regulating);
        assert!(ctl.outputs().supply_enabled);
        assert_eq!(
            ctl.apply(Command::ResetCutoff, 5002),
            CommandOutcome::CutoffNotLatched
        );
        // Next cycle regulates (849 is above the band: element off).
        assert_eq!(
            ctl.step(6000, c(849)),
            Outputs {
                element_on: false,
                supply_enabled: true
            }
        );
        // Trips again if it gets hot again.
        ctl.step(7000, c(1000));
        assert_eq!(ctl.trips(), 2);
    }

    #[test]
    fn sensor_fault_turns_the_element_off_and_resumes_afterwards() {
        let mut ctl = regulating_at(100);
        assert!(ctl.outputs().element_on);
        assert_eq!(ctl.step(1000, Err(Max6675Error::OpenThermocouple)), Outputs::SAFE);
        assert_eq!(ctl.mode(), Mode::SensorFault);
        assert_eq!(ctl.fault(), Some(Max6675Error::OpenThermocouple));
        assert_eq!(ctl.temperature(), None);
        assert!(ctl.step(2000, c(100)).element_on);
        assert_eq!(ctl.mode(), Mode::Regulating);
        assert_eq!(ctl.fault(), None);
    }

    #[test]
    fn demand_timeout_starts_banking_then_standby() {
        let cfg = Config::DEFAULT;
        let mut ctl = regulating_at(100);
        let mut now = 0;
        // Element on, temperature stuck at 160: the fire is not doing its share.
        while now < cfg.demand_timeout_ms - 1000 {
            now += 1000;
            assert!(ctl.step(now, c(160)).element_on);
            assert_eq!(ctl.mode(), Mode::Regulating);
        }
        now = cfg.demand_timeout_ms;
        ctl.step(now, c(160));
        assert_eq!(ctl.mode(), Mode::Banking);
        assert_eq!(ctl.bank_reason(), Some(BankReason::DemandTimeout));
        assert_eq!(ctl.bank_target(), Temp::from_c(150));
        assert_eq!(ctl.bank_ends_ms(), Some(now + cfg.bank_timeout_ms));
        // 160 is above the bank band: element off; it comes on at 145.
        assert!(!ctl.outputs().element_on);
        assert!(ctl.step(now + 1000, c(145)).element_on);
        assert!(!ctl.step(now + 2000, c(155)).element_on);
        // Timeout: standby, element off even when cold.
        let end = now + cfg.bank_timeout_ms;
        ctl.step(end - 1, c(140));
        assert_eq!(ctl.mode(), Mode::Banking);
        let out = ctl.step(end, c(140));
        assert_eq!(ctl.mode(), Mode::Standby);
        assert_eq!(
            out,
            Outputs {
                element_on: false,
                supply_enabled: true
            }
        );
        assert!(!ctl.step(end + 1000, c(30)).element_on);
        // A new setpoint restarts regulation.
        assert_eq!(
            ctl.apply(Command::SetSetpoint(300), end + 2000),
            CommandOutcome::SetpointApplied(300)
        );
        assert_eq!(ctl.mode(), Mode::Regulating);
        assert!(ctl.step(end + 3000, c(30)).element_on);
    }

    #[test]
    fn the_element_cycling_normally_never_times_out() {
        let cfg = Config::DEFAULT;
        let mut ctl = regulating_at(240);
        let mut now = 0;
        for _ in 0..10 {
            // On for just under the timeout, then the band top is reached.
            now += cfg.demand_timeout_ms - 1;
            ctl.step(now, c(246));
            assert_eq!(ctl.mode(), Mode::Regulating);
            now += 1;
            assert!(!ctl.step(now, c(256)).element_on);
            now += 1000;
            assert!(ctl.step(now, c(244)).element_on);
        }
    }

    #[test]
    fn a_dying_fire_banks_and_recovers_when_fuel_is_added() {
        let mut ctl = regulating_at(100);
        // Not lit yet: a cold furnace far below SP does not count as dying.
        ctl.step(1000, c(150));
        assert_eq!(ctl.mode(), Mode::Regulating);
        ctl.step(2000, c(250));
        ctl.step(3000, c(200));
        assert_eq!(ctl.mode(), Mode::Regulating);
        ctl.step(4000, c(189));
        assert_eq!(ctl.mode(), Mode::Banking);
        assert_eq!(ctl.bank_reason(), Some(BankReason::Dying));
        // Fault while banking resumes banking.
        ctl.step(5000, Err(Max6675Error::OpenThermocouple));
        assert_eq!(ctl.mode(), Mode::SensorFault);
        ctl.step(6000, c(180));
        assert_eq!(ctl.mode(), Mode::Banking);
        // Fuel added: back in the band.
        ctl.step(7000, c(245));
        assert_eq!(ctl.mode(), Mode::Regulating);
        assert_eq!(ctl.bank_reason(), None);
        assert!(ctl.outputs().element_on);
    }

    #[test]
    fn a_rise_with_the_element_off_is_a_recovering_fire() {
        let cfg = Config::DEFAULT;
        let mut ctl = regulating_at(100);
        let t0 = cfg.demand_timeout_ms;
        ctl.step(t0, c(140));
        assert_eq!(ctl.mode(), Mode::Banking);
        // The element heats from 140 to the band top; that rise is not a recovery.
        for (i, t) in [140, 150, 155, 152, 150, 146].into_iter().enumerate() {
            ctl.step(t0 + 1000 * i as u64, c(t));
            assert_eq!(ctl.mode(), Mode::Banking, "{t}");
        }
        // Element off since 155, lowest 146: +24 is not enough, +25 is.
        assert!(!ctl.outputs().element_on);
        ctl.step(t0 + 10_000, c(170));
        assert_eq!(ctl.mode(), Mode::Banking);
        ctl.step(t0 + 11_000, c(171));
        assert_eq!(ctl.mode(), Mode::Regulating);
        assert!(ctl.outputs().element_on);
        // Not lit yet (171 < SP - H), so the dying rule waits; the demand timer is fresh.
        ctl.step(t0 + 12_000, c(171));
        assert_eq!(ctl.mode(), Mode::Regulating);
        ctl.step(t0 + 11_000 + cfg.demand_timeout_ms, c(200));
        assert_eq!(ctl.mode(), Mode::Banking);
    }

    #[test]
    fn bank_target_stays_below_the_recovery_threshold() {
        let mut ctl = regulating_at(100);
        ctl.apply(Command::SetSetpoint(SETPOINT_MIN_C), 0);
        assert_eq!(ctl.bank_target(), Temp::from_c(85));
        assert!(
            ctl.bank_target().plus(ctl.config().hysteresis) < ctl.setpoint().minus(ctl.config().hysteresis)
        );
    }

    #[test]
    fn setpoint_commands_are_range_checked() {
        let mut ctl = Controller::default();
        assert_eq!(
            ctl.apply(Command::SetSetpoint(SETPOINT_MIN_C - 1), 0),
            CommandOutcome::SetpointOutOfRange(SETPOINT_MIN_C - 1)
        );
        assert_eq!(
            ctl.apply(Command::SetSetpoint(SETPOINT_MAX_C + 1), 0),
            CommandOutcome::SetpointOutOfRange(SETPOINT_MAX_C + 1)
        );
        assert_eq!(ctl.setpoint(), Temp::from_c(DEFAULT_SETPOINT_C));
        assert_eq!(
            ctl.apply(Command::SetSetpoint(SETPOINT_MAX_C), 0),
            CommandOutcome::SetpointApplied(SETPOINT_MAX_C)
        );
        // Still idle and safe: a command never turns anything on by itself.
        assert_eq!(ctl.outputs(), Outputs::SAFE);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Reading(u16),
        Setpoint(i32),
        Reset,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => any::<u16>().prop_map(Event::Reading),
            8 => (0u16..0x1000).prop_map(|q| Event::Reading(q << 3)),
            1 => (0i32..1200).prop_map(Event::Setpoint),
            1 => Just(Event::Reset),
        ]
    }

    proptest! {
        /// Whatever happens: a fault means element off and cutoff open in that cycle;
        /// at or above the cutoff means safe outputs; the latch only clears by reset;
        /// the element is never on without supply.
        #[test]
        fn safety_invariants_hold_for_any_event_sequence(
            events in proptest::collection::vec((event(), 0u64..600_000), 1..300)
        ) {
            let mut ctl = Controller::default();
            let mut now = 0u64;
            for (ev, dt) in events {
                now += dt;
                let was_latched = ctl.overheat_latched();
                match ev {
                    Event::Reading(frame) => {
                        let reading = crate::max6675::decode(frame);
                        let out = ctl.step(now, reading);
                        prop_assert!(!out.element_on || out.supply_enabled);
                        match reading {
                            Err(_) => prop_assert_eq!(out, Outputs::SAFE),
                            Ok(t) if t >= ctl.config().overheat => {
                                prop_assert_eq!(out, Outputs::SAFE);
                                prop_assert!(ctl.overheat_latched());
                            }
                            Ok(_) => {}
                        }
                        if was_latched {
                            prop_assert!(ctl.overheat_latched());
                            prop_assert_eq!(out, Outputs::SAFE);
                        }
                        if ctl.overheat_latched() {
                            prop_assert_eq!(ctl.mode(), Mode::Overheat);
                        }
                    }
                    Event::Setpoint(sp) => {
                        ctl.apply(Command::SetSetpoint(sp), now);
                        prop_assert_eq!(ctl.overheat_latched(), was_latched);
                    }
                    Event::Reset => {
                        let outcome = ctl.apply(Command::ResetCutoff, now);
                        if outcome == CommandOutcome::CutoffReset {
                            prop_assert!(ctl.temperature().unwrap() < ctl.config().reset_below);
                        } else {
                            prop_assert_eq!(ctl.overheat_latched(), was_latched);
                        }
                    }
                }
                let sp = ctl.setpoint().whole_c();
                prop_assert!((SETPOINT_MIN_C..=SETPOINT_MAX_C).contains(&sp));
            }
        }
    }
}
