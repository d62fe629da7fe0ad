//! A simple furnace thermal model for tests and the host simulator.
//!
//! One lumped heat capacity `C` at temperature `T`, heated by
//!
//! - the element, `P_el`, when the element relay *and* the cutoff relay are closed
//!   (or only the cutoff relay, if the element relay is welded shut),
//! - the fire, `P_fire · min(1, fuel / taper)`, burning its fuel down (the fire fades
//!   exponentially once less than `taper` joules are left: embers),
//! - an optional runaway disturbance `P_run` (a stuck-open air damper, a chimney fire)
//!   that no relay controls,
//!
//! and losing `k · (T − T_ambient)` to the surroundings. Integrated with explicit Euler
//! steps (`C / k` is ≈ 1000 s, so steps of a second or less are accurate).
//!
//! With the defaults the fire alone settles at ≈ 195 °C and the element alone at
//! ≈ 170 °C, together at ≈ 345 °C: the default setpoint of 250 °C needs both, so the
//! element cycles to hold it, and when the fuel runs out the element alone cannot —
//! the situation ember banking is for. `f32` arithmetic only (no `libm`), so it builds
//! for `no_std`.

use crate::max6675;
use crate::temp::Temp;

/// Model parameters.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct FurnaceParams {
    /// Ambient temperature, °C.
    pub ambient_c: f32,
    /// Heat capacity, J/K.
    pub heat_capacity_j_per_k: f32,
    /// Loss coefficient, W/K.
    pub loss_w_per_k: f32,
    /// Element power, W.
    pub element_w: f32,
    /// Fire power with plenty of fuel, W.
    pub fire_w: f32,
    /// Below this much fuel (J) the fire fades in proportion.
    pub taper_j: f32,
}

impl FurnaceParams {
    /// See the module docs.
    pub const DEFAULT: FurnaceParams = FurnaceParams {
        ambient_c: 20.0,
        heat_capacity_j_per_k: 20_000.0,
        loss_w_per_k: 20.0,
        element_w: 3_000.0,
        fire_w: 3_500.0,
        taper_j: 3.0e6,
    };
}

/// The simulated furnace.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Furnace {
    /// Parameters.
    pub params: FurnaceParams,
    /// Temperature, °C.
    pub temp_c: f32,
    /// Fuel left, J.
    pub fuel_j: f32,
    /// Runaway disturbance power, W (0 = none).
    pub runaway_w: f32,
    /// The element relay's contacts are welded shut (the element heats whenever the
    /// cutoff relay is closed).
    pub element_welded: bool,
    /// The thermocouple is open: the MAX6675 reports bit 2.
    pub thermocouple_open: bool,
}

impl Furnace {
    /// A cold furnace (ambient) with `fuel_j` joules of wood in it.
    pub const fn new(params: FurnaceParams, fuel_j: f32) -> Self {
        Furnace {
            params,
            temp_c: params.ambient_c,
            fuel_j,
            runaway_w: 0.0,
            element_welded: false,
            thermocouple_open: false,
        }
    }

    /// The fire's power now, W.
    pub fn fire_power_w(&self) -> f32 {
        let p = &self.params;
        if self.fuel_j <= 0.0 {
            0.0
        } else if self.fuel_j >= p.taper_j {
            p.fire_w
        } else {
            p.fire_w * self.fuel_j / p.taper_j
        }
    }

    /// Advance `dt_s` seconds with the given relay states.
    pub fn step(&mut self, dt_s: f32, element_on: bool, supply_enabled: bool) {
        let p = self.params;
        let element = if supply_enabled && (element_on || self.element_welded) {
            p.element_w
        } else {
            0.0
        };
        let fire = self.fire_power_w();
        self.fuel_j = (self.fuel_j - fire * dt_s).max(0.0);
        let loss = p.loss_w_per_k * (self.temp_c - p.ambient_c);
        self.temp_c += (element + fire + self.runaway_w - loss) * dt_s / p.heat_capacity_j_per_k;
    }

    /// Put `joules` of fuel on the fire.
    pub fn add_fuel(&mut self, joules: f32) {
        self.fuel_j += joules;
    }

    /// The temperature in quarter °C (rounded to nearest).
    pub fn temp(&self) -> Temp {
        let q = self.temp_c * 4.0;
        // `as` saturates (and maps NaN to 0); rounding by hand keeps this libm-free.
        let q = if q >= 0.0 { q + 0.5 } else { q - 0.5 };
        Temp::from_quarters(q as i32)
    }

    /// The 16-bit frame a MAX6675 on this furnace would send now.
    pub fn max6675_frame(&self) -> u16 {
        if self.thermocouple_open {
            max6675::OPEN_FRAME
        } else {
            max6675::encode(self.temp())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equilibria_match_the_docs() {
        let settle = |element: bool, fuel: f32| {
            let mut f = Furnace::new(FurnaceParams::DEFAULT, fuel);
            for _ in 0..20_000 {
                f.step(1.0, element, true);
                f.fuel_j = fuel; // hold the fire constant
            }
            f.temp_c
        };
        assert!((settle(false, 1e9) - 195.0).abs() < 1.0);
        assert!((settle(true, 0.0) - 170.0).abs() < 1.0);
        assert!((settle(true, 1e9) - 345.0).abs() < 1.0);
    }

    #[test]
    fn the_cutoff_stops_even_a_welded_element() {
        let mut f = Furnace::new(FurnaceParams::DEFAULT, 0.0);
        f.element_welded = true;
        for _ in 0..100 {
            f.step(1.0, false, false);
        }
        assert_eq!(f.temp_c, 20.0);
        f.step(1.0, false, true);
        assert!(f.temp_c > 20.0);
        f.thermocouple_open = true;
        assert_eq!(f.max6675_frame(), max6675::OPEN_FRAME);
    }
}
