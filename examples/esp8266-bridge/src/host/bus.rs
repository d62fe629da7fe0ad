//! The virtual SPI bus between the bridge thread and the simulated SAM thread.
//!
//! It models the wires, not the software on either side: the SAM arms a DMA
//! transfer (the message it sends and a buffer for what it receives) and raises the
//! ready line; the bridge, as SPI master, lowers chip select, clocks bytes (each one
//! moves a byte both ways, exactly as on the real bus), and raises chip select, which
//! completes the SAM's transfer. The request line goes the other way. The SAM gives
//! up on a transfer that does not complete within its timeout (100 ms, as
//! RepRapFirmware does), whatever the bridge is doing.

use std::convert::Infallible;
use std::string::String;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use std::vec::Vec;

use embedded_hal::digital::{ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::spi::{ErrorType as SpiErrorType, Operation, SpiDevice};

use crate::protocol::{padded_len, Command, EspHeader, SamHeader, WiFiState, MAX_DATA_LENGTH};

#[derive(Default)]
struct Wires {
    /// The SAM's armed transfer: what it sends, what it has received so far.
    out: Vec<u8>,
    input: Vec<u8>,
    in_cap: usize,
    pos: usize,
    armed: bool,
    /// Transfers completed (chip select rose while selected).
    completed: u64,
    ready: bool,
    selected: bool,
    request: bool,
    request_rises: u64,
    /// Bytes of the current transaction, for the trace.
    mosi: Vec<u8>,
    miso: Vec<u8>,
    transactions: u64,
}

/// The bus. Share it (`Arc`) between the bridge's pins and the SAM's [`SamLink`].
pub struct VirtualBus {
    wires: Mutex<Wires>,
    changed: Condvar,
    trace: bool,
}

/// How a SAM transfer went wrong (RepRapFirmware's own response codes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The bridge was not ready (request line low or chip select held) in time: −8.
    Busy,
    /// The transfer did not complete in time: −7.
    Timeout,
}

/// What the SAM received for one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The bridge's header, decoded.
    pub header: EspHeader,
    /// The data the response announced (as far as the SAM's buffer held it).
    pub data: Vec<u8>,
}

impl VirtualBus {
    /// A bus with all lines low. With `trace`, every transaction is printed to stderr.
    pub fn new(trace: bool) -> Arc<Self> {
        Arc::new(VirtualBus {
            wires: Mutex::new(Wires::default()),
            changed: Condvar::new(),
            trace,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Wires> {
        self.wires.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bridge's side: SPI master, chip select, ready (in), request (out).
    pub fn bridge_side(self: &Arc<Self>) -> (BusSpi, BusCs, BusReady, BusRequest) {
        (
            BusSpi(self.clone()),
            BusCs(self.clone()),
            BusReady(self.clone()),
            BusRequest(self.clone()),
        )
    }

    /// The SAM's side.
    pub fn sam_side(self: &Arc<Self>) -> SamLink {
        SamLink(self.clone())
    }

    /// Wait (at most `timeout`) until the ready line is high. Returns its level.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let w = self.lock();
        let (w, _) = self
            .changed
            .wait_timeout_while(w, timeout, |w| !w.ready)
            .unwrap_or_else(|e| e.into_inner());
        w.ready
    }

    /// Transactions the bridge has run.
    pub fn transactions(&self) -> u64 {
        self.lock().transactions
    }

    fn clock(w: &mut Wires, mosi: u8) -> u8 {
        let miso = if w.armed {
            w.out.get(w.pos).copied().unwrap_or(0)
        } else {
            0
        };
        if w.armed && w.pos < w.in_cap {
            if w.input.len() <= w.pos {
                w.input.resize(w.pos + 1, 0);
            }
            w.input[w.pos] = mosi;
        }
        w.pos += 1;
        w.mosi.push(mosi);
        w.miso.push(miso);
        miso
    }
}

/// The bridge's SPI master. It leaves chip select alone ([`BusCs`] is separate).
pub struct BusSpi(Arc<VirtualBus>);
/// Chip select, driven by the bridge.
pub struct BusCs(Arc<VirtualBus>);
/// `SamTfrReadyPin`, read by the bridge.
pub struct BusReady(Arc<VirtualBus>);
/// `EspReqTransferPin`, driven by the bridge.
pub struct BusRequest(Arc<VirtualBus>);

impl SpiErrorType for BusSpi {
    type Error = Infallible;
}

impl SpiDevice for BusSpi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        let mut w = self.0.lock();
        for op in operations {
            match op {
                Operation::Read(buf) => buf.iter_mut().for_each(|b| *b = VirtualBus::clock(&mut w, 0)),
                Operation::Write(buf) => buf.iter().for_each(|&b| {
                    VirtualBus::clock(&mut w, b);
                }),
                Operation::Transfer(read, write) => {
                    for i in 0..read.len().max(write.len()) {
                        let miso = VirtualBus::clock(&mut w, write.get(i).copied().unwrap_or(0));
                        if let Some(r) = read.get_mut(i) {
                            *r = miso;
                        }
                    }
                }
                Operation::TransferInPlace(buf) => {
                    buf.iter_mut().for_each(|b| *b = VirtualBus::clock(&mut w, *b))
                }
                Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

impl PinErrorType for BusCs {
    type Error = Infallible;
}

impl OutputPin for BusCs {
    fn set_low(&mut self) -> Result<(), Infallible> {
        let mut w = self.0.lock();
        if !w.selected {
            w.selected = true;
            // The SAM's ready line drops when a transaction starts.
            w.ready = false;
            w.pos = 0;
            w.mosi.clear();
            w.miso.clear();
        }
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut w = self.0.lock();
        if w.selected {
            w.selected = false;
            w.transactions += 1;
            if w.armed {
                w.armed = false;
                w.completed += 1;
            }
            if self.0.trace {
                std::eprintln!("{}", trace_line(w.transactions, &w.miso, &w.mosi));
            }
            self.0.changed.notify_all();
        }
        Ok(())
    }
}

impl PinErrorType for BusReady {
    type Error = Infallible;
}

impl InputPin for BusReady {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.lock().ready)
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.0.lock().ready)
    }
}

impl PinErrorType for BusRequest {
    type Error = Infallible;
}

impl OutputPin for BusRequest {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.lock().request = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut w = self.0.lock();
        if !w.request {
            w.request = true;
            w.request_rises += 1;
            self.0.changed.notify_all();
        }
        Ok(())
    }
}

/// The SAM's end of the bus.
#[derive(Clone)]
pub struct SamLink(Arc<VirtualBus>);

impl SamLink {
    /// Rising edges of the request line so far.
    pub fn request_rises(&self) -> u64 {
        self.0.lock().request_rises
    }

    /// Whether the request line is high and chip select is released (the pins
    /// RepRapFirmware checks before it arms a transfer).
    pub fn pins_idle(&self) -> bool {
        let w = self.0.lock();
        w.request && !w.selected
    }

    /// Wait at most `timeout` for a rising edge of the request line after `seen`.
    pub fn wait_request_rise(&self, seen: u64, timeout: Duration) -> u64 {
        let w = self.0.lock();
        let (w, _) = self
            .0
            .changed
            .wait_timeout_while(w, timeout, |w| w.request_rises <= seen)
            .unwrap_or_else(|e| e.into_inner());
        w.request_rises
    }

    /// One command, as RepRapFirmware's `SendCommand` does it: wait for the bridge to
    /// be ready, arm the transfer, raise ready, wait for the transfer to complete.
    pub fn command(&self, header: SamHeader, data: &[u8], timeout: Duration) -> Result<Received, LinkError> {
        let start = Instant::now();
        let bus = &self.0;
        let mut w = bus.lock();
        while !w.request || w.selected {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(LinkError::Busy);
            }
            w = bus
                .changed
                .wait_timeout(w, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let mut out = Vec::with_capacity(SamHeader::SIZE + padded_len(data.len()));
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(data);
        out.resize(SamHeader::SIZE + padded_len(data.len()), 0);
        w.out = out;
        w.in_cap = SamHeader::SIZE + padded_len((header.data_buffer_available as usize).min(MAX_DATA_LENGTH));
        w.input.clear();
        w.pos = 0;
        w.armed = true;
        w.ready = true;
        let target = w.completed + 1;
        bus.changed.notify_all();
        let armed_at = Instant::now();
        while w.completed < target {
            let left = timeout.saturating_sub(armed_at.elapsed());
            if left.is_zero() {
                // Give up, as the SAM does: disarm, drop ready.
                w.armed = false;
                w.ready = false;
                return Err(LinkError::Timeout);
            }
            w = bus
                .changed
                .wait_timeout(w, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let input = std::mem::take(&mut w.input);
        drop(w);
        let header = EspHeader::decode(&input).unwrap_or(EspHeader {
            format_version: 0,
            state: 0,
            response: 0,
        });
        let n = if header.response > 0 {
            (header.response as usize).min(input.len().saturating_sub(SamHeader::SIZE))
        } else {
            0
        };
        let data = input
            .get(SamHeader::SIZE..SamHeader::SIZE + n)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Ok(Received { header, data })
    }
}

/// One line of the frame trace: the command, the reply, and both directions in hex
/// (ready for `bridge-sim decode`).
pub fn trace_line(n: u64, miso: &[u8], mosi: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = write!(s, "spi #{n}: ");
    match SamHeader::decode(miso) {
        Ok(h) => {
            let cmd = Command::try_from(h.command).map_or("?", Command::name);
            let _ = write!(
                s,
                "{cmd} sock {} flags {:#x} len {} avail {}",
                h.socket_number, h.flags, h.data_length, h.data_buffer_available
            );
        }
        Err(_) => s.push_str("(short)"),
    }
    if let Ok(h) = EspHeader::decode(mosi) {
        let state = WiFiState::try_from(h.state).map_or("?", WiFiState::name);
        let _ = write!(s, " -> response {} state {state}", h.response);
    }
    // Show what each side meant to send: its header plus the data it announced.
    let sam_len = SamHeader::decode(miso).map_or(miso.len(), |h| {
        SamHeader::SIZE + padded_len((h.data_length as usize).min(MAX_DATA_LENGTH))
    });
    let esp_len = EspHeader::decode(mosi).map_or(mosi.len(), |h| {
        SamHeader::SIZE + padded_len((h.response.max(0) as usize).min(MAX_DATA_LENGTH))
    });
    let _ = write!(
        s,
        "\n  from-sam {}\n  from-bridge {}",
        hex(&miso[..sam_len.min(miso.len())], 96),
        hex(&mosi[..esp_len.min(mosi.len())], 96)
    );
    s
}

fn hex(bytes: &[u8], max: usize) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for b in bytes.iter().take(max) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > max {
        let _ = write!(s, "… ({} bytes)", bytes.len());
    }
    s
}
