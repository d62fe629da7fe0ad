//! The SPI transfer: the bus operations of one transaction, in the order the
//! protocol fixes, with chip select driven as a GPIO.
//!
//! A transaction is several SPI operations whose content depends on the header
//! received first, so it cannot be one [`SpiDevice::transaction`]: give the bridge an
//! `SpiDevice` that does not toggle a chip select of its own (e.g. embedded-hal-bus's
//! `ExclusiveDevice` with a dummy pin). What to answer is not decided here (see the
//! planner); this module only moves bytes.

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::spi::SpiDevice;

use crate::protocol::{padded_len, EspHeader, SamHeader, WiFiState};

/// An SPI or pin operation failed: the transfer is abandoned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct BusError;

/// The SPI master, chip select and the SAM's ready line.
pub(super) struct Link<SPI, CS, RDY> {
    spi: SPI,
    cs: CS,
    ready: RDY,
}

impl<SPI: SpiDevice, CS: OutputPin, RDY: InputPin> Link<SPI, CS, RDY> {
    pub(super) const fn new(spi: SPI, cs: CS, ready: RDY) -> Self {
        Link { spi, cs, ready }
    }

    /// Whether the SAM has armed a transfer (ready line high).
    pub(super) fn ready(&mut self) -> Result<bool, BusError> {
        self.ready.is_high().map_err(|_| BusError)
    }

    /// Chip select low: the transaction starts.
    pub(super) fn select(&mut self) -> Result<(), BusError> {
        self.cs.set_low().map_err(|_| BusError)
    }

    /// Chip select high: the SAM's transfer completes (also the idle level).
    pub(super) fn deselect(&mut self) -> Result<(), BusError> {
        self.cs.set_high().map_err(|_| BusError)
    }

    /// Header dwords 0–1: the bridge's header goes out (its response word comes
    /// later) while the SAM's comes in.
    pub(super) fn header(&mut self, state: WiFiState) -> Result<SamHeader, BusError> {
        let out = EspHeader::new(state, 0).encode();
        let mut prefix = [0u8; 8];
        self.spi.transfer(&mut prefix, &out[..8]).map_err(|_| BusError)?;
        SamHeader::decode_prefix(&prefix).map_err(|_| BusError)
    }

    /// Dword 2: the response goes out while the SAM's `param32` comes in.
    pub(super) fn respond(&mut self, response: i32) -> Result<u32, BusError> {
        let mut param = [0u8; 4];
        self.spi
            .transfer(&mut param, &response.to_le_bytes())
            .map_err(|_| BusError)?;
        Ok(u32::from_le_bytes(param))
    }

    /// The data phase towards the SAM: `buf[..n]`, padded to whole dwords.
    pub(super) fn send(&mut self, buf: &[u8], n: usize) -> Result<(), BusError> {
        let padded = buf.get(..padded_len(n)).ok_or(BusError)?;
        self.spi.write(padded).map_err(|_| BusError)
    }

    /// The data phase from the SAM: `n` bytes (padded to whole dwords) into `buf`.
    pub(super) fn receive(&mut self, buf: &mut [u8], n: usize) -> Result<(), BusError> {
        let padded = buf.get_mut(..padded_len(n)).ok_or(BusError)?;
        self.spi.read(padded).map_err(|_| BusError)
    }
}
