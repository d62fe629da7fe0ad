//! MAX6675 (K-type thermocouple to SPI converter) frame decoding.
//!
//! One conversion is read as a 16-bit frame, most significant bit first:
//!
//! | bit | meaning |
//! |---|---|
//! | 15 | dummy sign bit, always 0 |
//! | 14..3 | 12-bit temperature, 0.25 °C per LSB (0 – 1023.75 °C) |
//! | 2 | 1 = thermocouple input open (broken or unplugged probe) |
//! | 1 | device ID, always 0 |
//! | 0 | three-state (undefined) |
//!
//! A frame with bit 15 or bit 1 set cannot come from a working MAX6675 (a floating or
//! shorted MISO line reads `0xFFFF`): it is a [`Max6675Error::BadFrame`]. Any error
//! is a sensor fault: the controller switches the element off
//! (see [`crate::control`]).

use core::fmt;

use crate::temp::Temp;

/// The highest temperature a MAX6675 can report: 4095 quarters, 1023.75 °C.
pub const MAX_TEMP: Temp = Temp::from_quarters(0x0FFF);

/// Bit 2: thermocouple input open.
pub const OPEN_BIT: u16 = 1 << 2;
/// Bit 15: the dummy sign bit (always 0 from a real device).
pub const DUMMY_BIT: u16 = 1 << 15;
/// Bit 1: the device ID (always 0 from a real device).
pub const DEVICE_ID_BIT: u16 = 1 << 1;

/// Why a frame gives no temperature.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Max6675Error {
    /// Bit 2 set: the thermocouple is open (broken, unplugged).
    OpenThermocouple,
    /// Bit 15 or bit 1 set: not a frame from a working MAX6675 (no device, MISO
    /// floating or stuck high, wiring fault). Carries the raw frame.
    BadFrame(u16),
}

impl Max6675Error {
    /// A short machine-readable name (`open-thermocouple`, `bad-frame`).
    pub const fn name(self) -> &'static str {
        match self {
            Max6675Error::OpenThermocouple => "open-thermocouple",
            Max6675Error::BadFrame(_) => "bad-frame",
        }
    }
}

impl fmt::Display for Max6675Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Max6675Error::OpenThermocouple => f.write_str("thermocouple open"),
            Max6675Error::BadFrame(frame) => write!(f, "bad MAX6675 frame {frame:#06x}"),
        }
    }
}

/// Decode a 16-bit frame (first SPI byte in the high half).
///
/// ```
/// use pico_w_furnace::max6675::{decode, Max6675Error};
/// assert_eq!(decode(0x07D0).unwrap().to_string(), "62.5"); // 250 quarters
/// assert_eq!(decode(0x07D4), Err(Max6675Error::OpenThermocouple));
/// assert_eq!(decode(0xFFFF), Err(Max6675Error::BadFrame(0xFFFF)));
/// ```
pub const fn decode(frame: u16) -> Result<Temp, Max6675Error> {
    if frame & (DUMMY_BIT | DEVICE_ID_BIT) != 0 {
        return Err(Max6675Error::BadFrame(frame));
    }
    if frame & OPEN_BIT != 0 {
        return Err(Max6675Error::OpenThermocouple);
    }
    Ok(Temp::from_quarters(((frame >> 3) & 0x0FFF) as i32))
}

/// Decode the two bytes of one SPI transfer, most significant first.
pub const fn decode_bytes(bytes: [u8; 2]) -> Result<Temp, Max6675Error> {
    decode(u16::from_be_bytes(bytes))
}

/// The frame a MAX6675 sends for `t` (clamped to 0 – 1023.75 °C, as the device
/// saturates). Used by the simulator and tests to go through [`decode`].
pub const fn encode(t: Temp) -> u16 {
    let q = t.quarters();
    let q = if q < 0 {
        0
    } else if q > 0x0FFF {
        0x0FFF
    } else {
        q
    };
    (q as u16) << 3
}

/// The frame a MAX6675 sends with its thermocouple input open.
pub const OPEN_FRAME: u16 = OPEN_BIT;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn datasheet_examples() {
        assert_eq!(decode(0x0000), Ok(Temp::ZERO));
        assert_eq!(decode(0x0008), Ok(Temp::from_quarters(1)));
        assert_eq!(decode(0x7FF8), Ok(MAX_TEMP));
        assert_eq!(decode(0x7FF8).map(Temp::as_f32), Ok(1023.75));
        // 250.75 °C = 1003 quarters; the three-state bit 0 is ignored.
        assert_eq!(decode((1003 << 3) | 1), Ok(Temp::from_quarters(1003)));
        assert_eq!(decode_bytes([0x1F, 0x58]), Ok(Temp::from_quarters(0x1F58 >> 3)));
    }

    #[test]
    fn open_thermocouple_and_bad_frames() {
        assert_eq!(decode(OPEN_FRAME), Err(Max6675Error::OpenThermocouple));
        assert_eq!(decode(0x1234 | OPEN_BIT), Err(Max6675Error::OpenThermocouple));
        assert_eq!(decode(0xFFFF), Err(Max6675Error::BadFrame(0xFFFF)));
        assert_eq!(decode(0x8000), Err(Max6675Error::BadFrame(0x8000)));
        assert_eq!(decode(0x0002), Err(Max6675Error::BadFrame(0x0002)));
    }

    #[test]
    fn encode_saturates_like_the_device() {
        assert_eq!(encode(Temp::from_c(-5)), 0);
        assert_eq!(encode(Temp::from_c(2000)), 0x7FF8);
        assert_eq!(
            decode(encode(Temp::from_quarters(1234))),
            Ok(Temp::from_quarters(1234))
        );
    }

    proptest! {
        #[test]
        fn any_frame_decodes_without_panicking(frame in any::<u16>()) {
            match decode(frame) {
                Ok(t) => {
                    prop_assert!(frame & (DUMMY_BIT | DEVICE_ID_BIT | OPEN_BIT) == 0);
                    prop_assert!(t >= Temp::ZERO && t <= MAX_TEMP);
                    prop_assert_eq!(encode(t), frame & !1);
                }
                Err(Max6675Error::OpenThermocouple) => prop_assert!(frame & OPEN_BIT != 0),
                Err(Max6675Error::BadFrame(f)) => {
                    prop_assert_eq!(f, frame);
                    prop_assert!(frame & (DUMMY_BIT | DEVICE_ID_BIT) != 0);
                }
            }
        }
    }
}
