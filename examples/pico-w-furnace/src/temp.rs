//! Temperatures in quarter degrees Celsius: the MAX6675's resolution, exact in integers.

use core::fmt;

/// A temperature in quarter degrees Celsius (0.25 °C steps, the MAX6675's resolution).
///
/// Integer arithmetic only: the control logic never needs floating point (the RP2040
/// has no FPU). [`Temp::as_f32`] exists for display and JSON.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Temp(i32);

impl Temp {
    /// 0 °C.
    pub const ZERO: Temp = Temp(0);

    /// A temperature of `quarters` × 0.25 °C.
    pub const fn from_quarters(quarters: i32) -> Temp {
        Temp(quarters)
    }

    /// A temperature of `c` whole degrees Celsius (saturating).
    pub const fn from_c(c: i32) -> Temp {
        Temp(c.saturating_mul(4))
    }

    /// The temperature in quarter degrees.
    pub const fn quarters(self) -> i32 {
        self.0
    }

    /// The whole degrees, rounded towards minus infinity.
    pub const fn whole_c(self) -> i32 {
        self.0.div_euclid(4)
    }

    /// The temperature in °C as `f32` (exact: quarters are binary fractions).
    pub fn as_f32(self) -> f32 {
        self.0 as f32 / 4.0
    }

    /// `self + other`, saturating.
    pub const fn plus(self, other: Temp) -> Temp {
        Temp(self.0.saturating_add(other.0))
    }

    /// `self - other`, saturating.
    pub const fn minus(self, other: Temp) -> Temp {
        Temp(self.0.saturating_sub(other.0))
    }

    /// `self * n`, saturating.
    pub const fn times(self, n: i32) -> Temp {
        Temp(self.0.saturating_mul(n))
    }

    /// The smaller of two temperatures (usable in `const` context).
    pub const fn min_of(a: Temp, b: Temp) -> Temp {
        if a.0 <= b.0 {
            a
        } else {
            b
        }
    }
}

/// `251.25`, `-3.5`, `20` (°C, without the unit; trailing zeros dropped).
impl fmt::Display for Temp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / 4, abs % 4);
        let frac = ["", ".25", ".5", ".75"][frac as usize];
        write!(f, "{sign}{whole}{frac}")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn display_and_conversions() {
        assert_eq!(Temp::from_quarters(1005).to_string(), "251.25");
        assert_eq!(Temp::from_quarters(-14).to_string(), "-3.5");
        assert_eq!(Temp::from_quarters(-1).to_string(), "-0.25");
        assert_eq!(Temp::from_c(20).to_string(), "20");
        assert_eq!(Temp::from_quarters(-1).whole_c(), -1);
        assert_eq!(Temp::from_quarters(1023).as_f32(), 255.75);
        assert_eq!(Temp::from_c(i32::MAX).quarters(), i32::MAX);
        assert_eq!(Temp::from_quarters(i32::MIN).to_string(), "-536870912");
    }
}
