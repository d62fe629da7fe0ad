//! The Duet WiFi SPI protocol, format version `0x3E`: every message struct and enum,
//! with little-endian encoding and decoding that never panics.
//!
//! Each struct of the C header (`MessageFormats.h`, shared by the bridge firmware and
//! RepRapFirmware) has a `#[repr(C)]` mirror here (`Raw…`, never instantiated) whose
//! size is asserted at compile time against the protocol's numbers (12, 12, 20, 12,
//! 112, 168) and whose `offset_of!` field offsets drive the codec. So the codec cannot
//! drift from the C layout.
//!
//! Why hand-written (de)serialization and no serialization library: the layouts are
//! fixed, naturally aligned `repr(C)` structs of at most 168 bytes; the code must be
//! `no_std` without `alloc` and without `unsafe` (no transmutes), and each decoder has
//! to hand back *which protocol response code* a malformed message deserves. A few
//! `from_le_bytes` calls at checked offsets do all of that; a crate would add a
//! dependency and a derive without removing any of the checks.
//!
//! ```
//! use esp8266_bridge::protocol::*;
//! let header = SamHeader::new(Command::ConnGetStatus, 3, 0, 0, 20, 0);
//! let bytes = header.encode();
//! assert_eq!(bytes.len(), SamHeader::SIZE);
//! assert_eq!(SamHeader::decode(&bytes), Ok(header));
//! assert_eq!(header.validate(), Ok(Command::ConnGetStatus));
//! // A bad format version is the protocol's response −2.
//! let mut bad = bytes;
//! bad[0] = 0x3D;
//! let err = SamHeader::decode(&bad).unwrap().validate().unwrap_err();
//! assert_eq!(err.response().code(), -2);
//! ```

use core::fmt;
use core::mem::{offset_of, size_of};

pub use netpool::ConnState;

/// The protocol's format version (`MyFormatVersion`).
pub const FORMAT_VERSION: u8 = 0x3E;
/// A format version never used, put in receive buffers before a transfer.
pub const INVALID_FORMAT_VERSION: u8 = 0xC9;
/// The largest data part of one transaction, in bytes (a whole number of dwords).
pub const MAX_DATA_LENGTH: usize = 2048;
/// Connection slots (socket numbers `0..8`).
pub const MAX_CONNECTIONS: usize = 8;
/// SSID field length.
pub const SSID_LENGTH: usize = 32;
/// Password field length.
pub const PASSWORD_LENGTH: usize = 64;
/// Host name field length; `networkSetHostName` carries exactly this many bytes.
pub const HOST_NAME_LENGTH: usize = 64;
/// Networks the module remembers.
pub const MAX_REMEMBERED_NETWORKS: usize = 20;
/// `flags` bit of `connWrite`: close once everything is sent.
pub const FLAG_CLOSE_AFTER_WRITE: u8 = 0x01;
/// `flags` bit of `connWrite`: send now (no MORE).
pub const FLAG_PUSH: u8 = 0x02;
/// Header bytes exchanged before the response dword (dwords 0–1).
pub const HEADER_PREFIX_LENGTH: usize = 8;

const _: () = assert!(MAX_DATA_LENGTH % 4 == 0);

/// Dwords needed for `len` bytes.
pub const fn num_dwords(len: usize) -> usize {
    len.div_ceil(4)
}

/// `len` rounded up to whole dwords: the bytes a data phase of `len` really moves.
pub const fn padded_len(len: usize) -> usize {
    num_dwords(len) * 4
}

/// Pin numbers of the handshake lines on each module (chip select, request, ready).
pub mod pins {
    /// One module's GPIO numbers.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub struct Pins {
        /// Chip select (bridge output).
        pub chip_select: u8,
        /// `EspReqTransferPin` (bridge output, idle high).
        pub request: u8,
        /// `SamTfrReadyPin` (bridge input).
        pub ready: u8,
    }
    /// ESP8266.
    pub const ESP8266: Pins = Pins {
        chip_select: 15,
        request: 0,
        ready: 4,
    };
    /// ESP32.
    pub const ESP32: Pins = Pins {
        chip_select: 5,
        request: 0,
        ready: 4,
    };
    /// ESP32-C3.
    pub const ESP32C3: Pins = Pins {
        chip_select: 7,
        request: 9,
        ready: 10,
    };
    /// ESP32-S3.
    pub const ESP32S3: Pins = Pins {
        chip_select: 10,
        request: 0,
        ready: 8,
    };
}

// ------------------------------------------------------------------------ enums

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident : $repr:ty, $err:ident, $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The protocol's (camelCase) name.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The wire value.
            pub const fn value(self) -> $repr {
                self as $repr
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = DecodeError;
            fn try_from(v: $repr) -> Result<Self, DecodeError> {
                match v {
                    $($value => Ok($name::$variant),)*
                    other => Err(DecodeError::$err(other)),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v as $repr
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// A command from the SAM (`NetworkCommand`).
    Command: u8, UnknownCommand, "command" {
        /// No command: the SAM only wants the header (state).
        NullCommand = 0 => "nullCommand",
        /// Terminate a connection rudely; frees the slot.
        ConnAbort = 1 => "connAbort",
        /// Close a connection gracefully.
        ConnClose = 2 => "connClose",
        /// Open an outgoing connection.
        ConnCreate = 3 => "connCreate",
        /// Read received data.
        ConnRead = 4 => "connRead",
        /// Write data.
        ConnWrite = 5 => "connWrite",
        /// One connection's status plus the summary bitmaps.
        ConnGetStatus = 6 => "connGetStatus",
        /// Listen on a port (or stop, with `maxConnections` 0).
        NetworkListen = 7 => "networkListen",
        /// Unused (was stopListening).
        UnusedStopListening = 8 => "unused_networkStopListening",
        /// The network status.
        NetworkGetStatus = 9 => "networkGetStatus",
        /// Remember an SSID.
        NetworkAddSsid = 10 => "networkAddSsid",
        /// Forget an SSID.
        NetworkDeleteSsid = 11 => "networkDeleteSsid",
        /// Deprecated SSID list.
        NetworkListSsids = 12 => "networkListSsids_deprecated",
        /// Configure the access point.
        NetworkConfigureAccessPoint = 13 => "networkConfigureAccessPoint",
        /// Connect to an access point (mode change).
        NetworkStartClient = 14 => "networkStartClient",
        /// Run as an access point (mode change).
        NetworkStartAccessPoint = 15 => "networkStartAccessPoint",
        /// Stop the network (mode change).
        NetworkStop = 16 => "networkStop",
        /// Forget everything.
        NetworkFactoryReset = 17 => "networkFactoryReset",
        /// Set the host name (exactly 64 bytes).
        NetworkSetHostName = 18 => "networkSetHostName",
        /// Fetch the last error message; acknowledges a status change.
        NetworkGetLastError = 19 => "networkGetLastError",
        /// Produce diagnostics (replies 0 at once).
        Diagnostics = 20 => "diagnostics",
        /// Remembered SSIDs without passwords.
        NetworkRetrieveSsidData = 21 => "networkRetrieveSsidData",
        /// Transmit power in 0.25 dB (flags byte).
        NetworkSetTxPower = 22 => "networkSetTxPower",
        /// SPI clock control word (param32).
        NetworkSetClockControl = 23 => "networkSetClockControl",
        /// Start a scan.
        NetworkStartScan = 24 => "networkStartScan",
        /// Scan results.
        NetworkGetScanResult = 25 => "networkGetScanResult",
        /// Add an enterprise SSID.
        NetworkAddEnterpriseSsid = 26 => "networkAddEnterpriseSsid",
    }
}

impl Command {
    /// Whether the command names a socket in `socketNumber` (and gets −11 for a bad one).
    pub const fn takes_socket(self) -> bool {
        matches!(
            self,
            Command::ConnAbort
                | Command::ConnClose
                | Command::ConnRead
                | Command::ConnWrite
                | Command::ConnGetStatus
        )
    }
}

wire_enum! {
    /// The module's network state, in every bridge header (`WiFiState`).
    WiFiState: u8, BadWiFiState, "WiFi state" {
        /// Held in reset (never sent by the module).
        Disabled = 0 => "disabled",
        /// Neither connected nor an access point.
        Idle = 1 => "idle",
        /// Running as an access point.
        RunningAsAccessPoint = 2 => "runningAsAccessPoint",
        /// Connecting to an access point.
        Connecting = 3 => "connecting",
        /// Connected to an access point.
        Connected = 4 => "connected",
        /// Lost the access point, reconnecting by itself.
        AutoReconnecting = 5 => "autoReconnecting",
        /// Reconnecting.
        Reconnecting = 6 => "reconnecting",
    }
}

impl WiFiState {
    /// Whether TCP traffic can flow (client connected or access point running).
    pub const fn link_up(self) -> bool {
        matches!(self, WiFiState::Connected | WiFiState::RunningAsAccessPoint)
    }
}

wire_enum! {
    /// A response code: the bridge header's `response` when negative (0 = empty).
    Response: i32, UnknownResponse, "response" {
        /// No error, no data.
        Empty = 0 => "empty",
        /// Unknown or unsupported command.
        UnknownCommand = -1 => "unknownCommand",
        /// The SAM's header had the wrong format version.
        BadRequestFormatVersion = -2 => "badRequestFormatVersion",
        /// Too many remembered SSIDs.
        TooManySsids = -3 => "tooManySsids",
        /// Not possible in the current state.
        WrongState = -4 => "wrongState",
        /// Data length wrong for the command, or over 2048.
        BadDataLength = -5 => "badDataLength",
        /// Generated by the SAM: the module is disabled.
        NetworkDisabled = -6 => "networkDisabled",
        /// Generated by the SAM: the transfer timed out.
        Timeout = -7 => "timeout",
        /// No slot or resource free now.
        Busy = -8 => "busy",
        /// The SAM's receive buffer is too small for the reply.
        BufferTooSmall = -9 => "bufferTooSmall",
        /// Generated by the SAM: the module's header had the wrong format version.
        BadReplyFormatVersion = -10 => "badReplyFormatVersion",
        /// A parameter (e.g. the socket number) is out of range.
        BadParameter = -11 => "badParameter",
        /// No scan was started.
        NoScanStarted = -12 => "noScanStarted",
        /// A scan is in progress.
        ScanInProgress = -13 => "scanInProgress",
        /// Anything else.
        UnknownError = -14 => "unknownError",
    }
}

impl Response {
    /// The wire code.
    pub const fn code(self) -> i32 {
        self as i32
    }
}

wire_enum! {
    /// The protocol tag of a listener or connection (`ListenOrConnectData::protocol`).
    Protocol: u8, BadProtocol, "protocol" {
        /// HTTP.
        Http = 0 => "HTTP",
        /// FTP control.
        Ftp = 1 => "FTP",
        /// Telnet.
        Telnet = 2 => "Telnet",
        /// FTP data: a one-shot listener.
        FtpData = 3 => "FTP-data",
    }
}

/// The `response` field of a bridge header, interpreted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Success: this many data bytes follow (0 = none).
    Length(u32),
    /// A known error code.
    Error(Response),
    /// A negative code the protocol does not define.
    Unknown(i32),
}

impl Reply {
    /// Interpret a response word.
    pub fn from_code(code: i32) -> Reply {
        if code >= 0 {
            Reply::Length(code as u32)
        } else {
            match Response::try_from(code) {
                Ok(r) => Reply::Error(r),
                Err(_) => Reply::Unknown(code),
            }
        }
    }

    /// The response word.
    pub fn code(self) -> i32 {
        match self {
            Reply::Length(n) => n.min(i32::MAX as u32) as i32,
            Reply::Error(r) => r.code(),
            Reply::Unknown(c) => c,
        }
    }
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Error(r)
    }
}

// ------------------------------------------------------------------------ errors

/// Why bytes are not a valid message. Every variant maps to the response code the
/// bridge sends for it ([`DecodeError::response`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs (→ `badDataLength`).
    Truncated {
        /// The structure.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// A SAM header with a format version other than `0x3E` (→ `badRequestFormatVersion`).
    BadFormatVersion(u8),
    /// A bridge header with a format version other than `0x3E` (→ `badReplyFormatVersion`).
    BadReplyFormatVersion(u8),
    /// `dataLength` over 2048, or not what the command needs (→ `badDataLength`).
    BadDataLength(u16),
    /// A command byte the protocol does not define (→ `unknownCommand`).
    UnknownCommand(u8),
    /// A socket number of 8 or more (→ `badParameter`).
    BadSocket(u8),
    /// A `WiFiState` byte out of range (→ `badParameter`).
    BadWiFiState(u8),
    /// A `ConnState` byte out of range (→ `badParameter`).
    BadConnState(u8),
    /// A protocol tag out of range (→ `badParameter`).
    BadProtocol(u8),
    /// A negative response code the protocol does not define (→ `unknownError`).
    UnknownResponse(i32),
}

impl DecodeError {
    /// The response code the bridge answers this error with.
    pub const fn response(self) -> Response {
        match self {
            DecodeError::Truncated { .. } | DecodeError::BadDataLength(_) => Response::BadDataLength,
            DecodeError::BadFormatVersion(_) => Response::BadRequestFormatVersion,
            DecodeError::BadReplyFormatVersion(_) => Response::BadReplyFormatVersion,
            DecodeError::UnknownCommand(_) => Response::UnknownCommand,
            DecodeError::BadSocket(_)
            | DecodeError::BadWiFiState(_)
            | DecodeError::BadConnState(_)
            | DecodeError::BadProtocol(_) => Response::BadParameter,
            DecodeError::UnknownResponse(_) => Response::UnknownError,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated { what, need, got } => {
                write!(f, "{what} needs {need} bytes, got {got}")
            }
            DecodeError::BadFormatVersion(v) => {
                write!(
                    f,
                    "request format version {v:#04x}, expected {FORMAT_VERSION:#04x}"
                )
            }
            DecodeError::BadReplyFormatVersion(v) => {
                write!(f, "reply format version {v:#04x}, expected {FORMAT_VERSION:#04x}")
            }
            DecodeError::BadDataLength(n) => write!(f, "bad data length {n}"),
            DecodeError::UnknownCommand(c) => write!(f, "unknown command {c}"),
            DecodeError::BadSocket(s) => write!(f, "socket number {s} out of range 0..8"),
            DecodeError::BadWiFiState(s) => write!(f, "WiFi state {s} out of range 0..=6"),
            DecodeError::BadConnState(s) => write!(f, "connection state {s} out of range 0..=4"),
            DecodeError::BadProtocol(p) => write!(f, "protocol {p} out of range 0..=3"),
            DecodeError::UnknownResponse(r) => write!(f, "unknown response code {r}"),
        }?;
        write!(f, " (response {})", self.response().code())
    }
}

impl core::error::Error for DecodeError {}

// ------------------------------------------------------------------------ layout mirrors

/// `repr(C)` mirrors of `MessageFormats.h`, for layout assertions and offsets only.
#[allow(dead_code)]
mod raw {
    #[repr(C)]
    pub struct MessageHeaderSamToEsp {
        pub format_version: u8,
        pub command: u8,
        pub socket_number: u8,
        pub flags: u8,
        pub data_length: u16,
        pub data_buffer_available: u16,
        pub param32: u32,
    }

    #[repr(C)]
    pub struct MessageHeaderEspToSam {
        pub format_version: u8,
        pub state: u8,
        pub dummy: [u8; 2],
        pub dummy32: u32,
        pub response: i32,
    }

    #[repr(C)]
    pub struct ConnStatusResponse {
        pub state: u8,
        pub socket_number: u8,
        pub protocol: u8,
        pub rssi: i8,
        pub local_port: u16,
        pub remote_port: u16,
        pub remote_ip: u32,
        pub bytes_available: u16,
        pub write_buffer_space: u16,
        pub connected_sockets: u16,
        pub other_end_closed_sockets: u16,
    }

    #[repr(C)]
    pub struct ListenOrConnectData {
        pub remote_ip: u32,
        pub protocol: u8,
        pub dummy: u8,
        pub port: u16,
        pub max_connections: u16,
    }

    #[repr(C)]
    pub struct WirelessConfigurationData {
        pub ip: u32,
        pub gateway: u32,
        pub netmask: u32,
        pub channel: u8,
        pub security: i8,
        pub dummy: [u8; 2],
        pub ssid: [u8; super::SSID_LENGTH],
        pub password: [u8; super::PASSWORD_LENGTH],
    }

    #[repr(C)]
    pub struct NetworkStatusResponse {
        pub ip_address: u32,
        pub free_heap: u32,
        pub reset_reason: u32,
        pub flash_size: u32,
        pub rssi: i8,
        pub num_clients: u8,
        /// sleepMode:2 (bits 0–1), phyMode:2 (bits 2–3), zero1:4.
        pub mode_bits: u8,
        pub zero2: u8,
        pub vcc: u16,
        pub mac_address: [u8; 6],
        pub version_text: [u8; 16],
        pub ssid: [u8; super::SSID_LENGTH],
        pub host_name: [u8; super::HOST_NAME_LENGTH],
        pub clock_reg: u32,
        pub netmask: u32,
        pub gateway: u32,
        pub num_reconnects: u32,
        pub using_dhcpc: u8,
        pub auth: u8,
        /// channel:4 (bits 0–3), ht:2 (bits 4–5), zero3:2.
        pub channel_bits: u8,
        pub zero4: u8,
        pub ap_mac: [u8; 6],
    }
}

// The protocol's sizes, checked against the C layout at compile time.
const _: () = {
    assert!(size_of::<raw::MessageHeaderSamToEsp>() == 12);
    assert!(size_of::<raw::MessageHeaderEspToSam>() == 12);
    assert!(size_of::<raw::ConnStatusResponse>() == 20);
    assert!(size_of::<raw::ListenOrConnectData>() == 12);
    assert!(size_of::<raw::WirelessConfigurationData>() == 112);
    assert!(size_of::<raw::NetworkStatusResponse>() == 168);
    assert!(offset_of!(raw::NetworkStatusResponse, clock_reg) == NetworkStatusResponse::MIN_LEN);
    assert!(offset_of!(raw::MessageHeaderSamToEsp, param32) == HEADER_PREFIX_LENGTH);
    assert!(offset_of!(raw::MessageHeaderEspToSam, response) == HEADER_PREFIX_LENGTH);
    assert!(
        (MAX_REMEMBERED_NETWORKS + 1) * offset_of!(raw::WirelessConfigurationData, password)
            <= MAX_DATA_LENGTH
    );
    // netpool's ConnState numbers are the wire numbers.
    assert!(ConnState::Free.as_u8() == 0);
    assert!(ConnState::Connecting.as_u8() == 1);
    assert!(ConnState::Connected.as_u8() == 2);
    assert!(ConnState::OtherEndClosed.as_u8() == 3);
    assert!(ConnState::Aborted.as_u8() == 4);
};

// ------------------------------------------------------------------------ byte helpers

macro_rules! off {
    ($s:ident . $f:ident) => {
        offset_of!(raw::$s, $f)
    };
}

const fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
const fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}
fn array<const K: usize>(b: &[u8], at: usize) -> [u8; K] {
    let mut out = [0u8; K];
    out.copy_from_slice(&b[at..at + K]);
    out
}

/// `bytes` if it holds at least `need` bytes, else [`DecodeError::Truncated`].
fn need<'a>(bytes: &'a [u8], need: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
    if bytes.len() < need {
        Err(DecodeError::Truncated {
            what,
            need,
            got: bytes.len(),
        })
    } else {
        Ok(bytes)
    }
}

/// The text of a NUL-padded fixed field: bytes up to the first NUL.
pub fn c_str(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Copy `text` into a NUL-padded fixed field, truncating so a NUL always remains.
pub fn set_c_str<const K: usize>(field: &mut [u8; K], text: &[u8]) {
    *field = [0; K];
    let n = text.len().min(K.saturating_sub(1));
    field[..n].copy_from_slice(&text[..n]);
}

// ------------------------------------------------------------------------ headers

/// The SAM's header (`MessageHeaderSamToEsp`, 12 bytes). Fields are kept raw so any
/// 12 bytes decode; [`validate`](Self::validate) applies the protocol's checks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct SamHeader {
    /// Must be [`FORMAT_VERSION`].
    pub format_version: u8,
    /// A [`Command`] byte.
    pub command: u8,
    /// Socket number for socket commands.
    pub socket_number: u8,
    /// [`FLAG_CLOSE_AFTER_WRITE`], [`FLAG_PUSH`]; the transmit power for `networkSetTxPower`.
    pub flags: u8,
    /// Bytes of data the SAM sends.
    pub data_length: u16,
    /// Bytes of data the SAM can receive.
    pub data_buffer_available: u16,
    /// Command parameter; travels in dword 2, while the bridge sends its response.
    pub param32: u32,
}

impl SamHeader {
    /// Encoded size.
    pub const SIZE: usize = size_of::<raw::MessageHeaderSamToEsp>();

    /// A header with the current format version.
    pub const fn new(
        command: Command,
        socket_number: u8,
        flags: u8,
        data_length: u16,
        data_buffer_available: u16,
        param32: u32,
    ) -> Self {
        SamHeader {
            format_version: FORMAT_VERSION,
            command: command as u8,
            socket_number,
            flags,
            data_length,
            data_buffer_available,
            param32,
        }
    }

    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[off!(MessageHeaderSamToEsp.format_version)] = self.format_version;
        b[off!(MessageHeaderSamToEsp.command)] = self.command;
        b[off!(MessageHeaderSamToEsp.socket_number)] = self.socket_number;
        b[off!(MessageHeaderSamToEsp.flags)] = self.flags;
        put(
            &mut b,
            off!(MessageHeaderSamToEsp.data_length),
            &self.data_length.to_le_bytes(),
        );
        put(
            &mut b,
            off!(MessageHeaderSamToEsp.data_buffer_available),
            &self.data_buffer_available.to_le_bytes(),
        );
        put(
            &mut b,
            off!(MessageHeaderSamToEsp.param32),
            &self.param32.to_le_bytes(),
        );
        b
    }

    /// Decode the first 8 bytes (dwords 0–1, what the bridge has before it answers);
    /// `param32` is 0.
    pub fn decode_prefix(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = need(bytes, HEADER_PREFIX_LENGTH, "SAM header prefix")?;
        Ok(SamHeader {
            format_version: b[off!(MessageHeaderSamToEsp.format_version)],
            command: b[off!(MessageHeaderSamToEsp.command)],
            socket_number: b[off!(MessageHeaderSamToEsp.socket_number)],
            flags: b[off!(MessageHeaderSamToEsp.flags)],
            data_length: get_u16(b, off!(MessageHeaderSamToEsp.data_length)),
            data_buffer_available: get_u16(b, off!(MessageHeaderSamToEsp.data_buffer_available)),
            param32: 0,
        })
    }

    /// Decode 12 bytes (more are ignored). Fails only when fewer are given.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = need(bytes, Self::SIZE, "SAM header")?;
        let mut h = Self::decode_prefix(b)?;
        h.param32 = get_u32(b, off!(MessageHeaderSamToEsp.param32));
        Ok(h)
    }

    /// The protocol's checks, in the bridge's order: format version (−2), data length
    /// over 2048 (−5), command (−1). The socket number is checked per command
    /// ([`socket`](Self::socket)).
    pub fn validate(&self) -> Result<Command, DecodeError> {
        if self.format_version != FORMAT_VERSION {
            return Err(DecodeError::BadFormatVersion(self.format_version));
        }
        if self.data_length as usize > MAX_DATA_LENGTH {
            return Err(DecodeError::BadDataLength(self.data_length));
        }
        Command::try_from(self.command)
    }

    /// The socket number, if in range (else −11).
    pub fn socket(&self) -> Result<usize, DecodeError> {
        let s = self.socket_number as usize;
        if s < MAX_CONNECTIONS {
            Ok(s)
        } else {
            Err(DecodeError::BadSocket(self.socket_number))
        }
    }

    /// `closeAfterWrite` flag.
    pub const fn close_after_write(&self) -> bool {
        self.flags & FLAG_CLOSE_AFTER_WRITE != 0
    }

    /// `push` flag.
    pub const fn push(&self) -> bool {
        self.flags & FLAG_PUSH != 0
    }

    /// What the SAM can receive, capped at [`MAX_DATA_LENGTH`].
    pub fn receive_capacity(&self) -> usize {
        (self.data_buffer_available as usize).min(MAX_DATA_LENGTH)
    }
}

/// The bridge's header (`MessageHeaderEspToSam`, 12 bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EspHeader {
    /// Must be [`FORMAT_VERSION`].
    pub format_version: u8,
    /// A [`WiFiState`] byte.
    pub state: u8,
    /// The response word: data length if ≥ 0, a [`Response`] if < 0.
    pub response: i32,
}

impl EspHeader {
    /// Encoded size.
    pub const SIZE: usize = size_of::<raw::MessageHeaderEspToSam>();

    /// A header with the current format version.
    pub const fn new(state: WiFiState, response: i32) -> Self {
        EspHeader {
            format_version: FORMAT_VERSION,
            state: state as u8,
            response,
        }
    }

    /// Little-endian bytes (padding zero).
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[off!(MessageHeaderEspToSam.format_version)] = self.format_version;
        b[off!(MessageHeaderEspToSam.state)] = self.state;
        put(
            &mut b,
            off!(MessageHeaderEspToSam.response),
            &self.response.to_le_bytes(),
        );
        b
    }

    /// Decode 12 bytes (padding ignored). Fails only when fewer are given.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = need(bytes, Self::SIZE, "bridge header")?;
        Ok(EspHeader {
            format_version: b[off!(MessageHeaderEspToSam.format_version)],
            state: b[off!(MessageHeaderEspToSam.state)],
            response: get_u32(b, off!(MessageHeaderEspToSam.response)) as i32,
        })
    }

    /// The SAM's checks: format version (−10) and state.
    pub fn validate(&self) -> Result<(WiFiState, Reply), DecodeError> {
        if self.format_version != FORMAT_VERSION {
            return Err(DecodeError::BadReplyFormatVersion(self.format_version));
        }
        Ok((WiFiState::try_from(self.state)?, Reply::from_code(self.response)))
    }
}

// ------------------------------------------------------------------------ data structs

/// `ConnStatusResponse` (20 bytes): one socket plus the summary bitmaps.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnStatusResponse {
    /// The socket's state.
    pub state: ConnState,
    /// The socket number.
    pub socket_number: u8,
    /// Its protocol tag.
    pub protocol: u8,
    /// Signal strength.
    pub rssi: i8,
    /// Local port.
    pub local_port: u16,
    /// Remote port.
    pub remote_port: u16,
    /// Remote IPv4 address, first octet in the low byte.
    pub remote_ip: u32,
    /// Bytes the SAM can read now.
    pub bytes_available: u16,
    /// Bytes the SAM can write now (all certainly buffered).
    pub write_buffer_space: u16,
    /// Bitmap of sockets in `connected`.
    pub connected_sockets: u16,
    /// Bitmap of sockets in `otherEndClosed` or `aborted`.
    pub other_end_closed_sockets: u16,
}

impl ConnStatusResponse {
    /// Encoded size; the SAM requires exactly this.
    pub const SIZE: usize = size_of::<raw::ConnStatusResponse>();

    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[off!(ConnStatusResponse.state)] = self.state.as_u8();
        b[off!(ConnStatusResponse.socket_number)] = self.socket_number;
        b[off!(ConnStatusResponse.protocol)] = self.protocol;
        b[off!(ConnStatusResponse.rssi)] = self.rssi as u8;
        put(
            &mut b,
            off!(ConnStatusResponse.local_port),
            &self.local_port.to_le_bytes(),
        );
        put(
            &mut b,
            off!(ConnStatusResponse.remote_port),
            &self.remote_port.to_le_bytes(),
        );
        put(
            &mut b,
            off!(ConnStatusResponse.remote_ip),
            &self.remote_ip.to_le_bytes(),
        );
        put(
            &mut b,
            off!(ConnStatusResponse.bytes_available),
            &self.bytes_available.to_le_bytes(),
        );
        put(
            &mut b,
            off!(ConnStatusResponse.write_buffer_space),
            &self.write_buffer_space.to_le_bytes(),
        );
        put(
            &mut b,
            off!(ConnStatusResponse.connected_sockets),
            &self.connected_sockets.to_le_bytes(),
        );
        put(
            &mut b,
            off!(ConnStatusResponse.other_end_closed_sockets),
            &self.other_end_closed_sockets.to_le_bytes(),
        );
        b
    }

    /// Decode (at least 20 bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = need(bytes, Self::SIZE, "ConnStatusResponse")?;
        let state = b[off!(ConnStatusResponse.state)];
        Ok(ConnStatusResponse {
            state: ConnState::try_from(state).map_err(|_| DecodeError::BadConnState(state))?,
            socket_number: b[off!(ConnStatusResponse.socket_number)],
            protocol: b[off!(ConnStatusResponse.protocol)],
            rssi: b[off!(ConnStatusResponse.rssi)] as i8,
            local_port: get_u16(b, off!(ConnStatusResponse.local_port)),
            remote_port: get_u16(b, off!(ConnStatusResponse.remote_port)),
            remote_ip: get_u32(b, off!(ConnStatusResponse.remote_ip)),
            bytes_available: get_u16(b, off!(ConnStatusResponse.bytes_available)),
            write_buffer_space: get_u16(b, off!(ConnStatusResponse.write_buffer_space)),
            connected_sockets: get_u16(b, off!(ConnStatusResponse.connected_sockets)),
            other_end_closed_sockets: get_u16(b, off!(ConnStatusResponse.other_end_closed_sockets)),
        })
    }
}

/// `ListenOrConnectData` (12 bytes, 2 of them padding).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ListenOrConnectData {
    /// IPv4 address (first octet in the low byte); 0 = any.
    pub remote_ip: u32,
    /// Protocol tag ([`Protocol`] for the known ones).
    pub protocol: u8,
    /// Port to listen on, or to connect to.
    pub port: u16,
    /// Listening: connections at once on this port; 0 stops listening.
    pub max_connections: u16,
}

impl ListenOrConnectData {
    /// Encoded size.
    pub const SIZE: usize = size_of::<raw::ListenOrConnectData>();

    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(
            &mut b,
            off!(ListenOrConnectData.remote_ip),
            &self.remote_ip.to_le_bytes(),
        );
        b[off!(ListenOrConnectData.protocol)] = self.protocol;
        put(&mut b, off!(ListenOrConnectData.port), &self.port.to_le_bytes());
        put(
            &mut b,
            off!(ListenOrConnectData.max_connections),
            &self.max_connections.to_le_bytes(),
        );
        b
    }

    /// Decode (at least 12 bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = need(bytes, Self::SIZE, "ListenOrConnectData")?;
        Ok(ListenOrConnectData {
            remote_ip: get_u32(b, off!(ListenOrConnectData.remote_ip)),
            protocol: b[off!(ListenOrConnectData.protocol)],
            port: get_u16(b, off!(ListenOrConnectData.port)),
            max_connections: get_u16(b, off!(ListenOrConnectData.max_connections)),
        })
    }

    /// The remote address as an [`Ipv4Addr`](core::net::Ipv4Addr).
    pub fn ip(&self) -> core::net::Ipv4Addr {
        core::net::Ipv4Addr::from(self.remote_ip.to_le_bytes())
    }
}

/// An IPv4 address in the protocol's `u32` form (first octet in the low byte).
pub fn ip_to_wire(ip: core::net::Ipv4Addr) -> u32 {
    u32::from_le_bytes(ip.octets())
}

/// `WirelessConfigurationData` (112 bytes): an SSID entry or the access point setup.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WirelessConfigurationData {
    /// IP address; 0 = DHCP.
    pub ip: u32,
    /// Gateway.
    pub gateway: u32,
    /// Netmask.
    pub netmask: u32,
    /// Access point channel; 0 = auto.
    pub channel: u8,
    /// Access point security.
    pub security: i8,
    /// SSID, NUL-padded.
    pub ssid: [u8; SSID_LENGTH],
    /// Password (or enterprise credential sizes), NUL-padded.
    pub password: [u8; PASSWORD_LENGTH],
}

impl WirelessConfigurationData {
    /// Encoded size.
    pub const SIZE: usize = size_of::<raw::WirelessConfigurationData>();
    /// The size without the password (`ReducedWirelessConfigurationDataSize`).
    pub const REDUCED_SIZE: usize = off!(WirelessConfigurationData.password);

    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(&mut b, off!(WirelessConfigurationData.ip), &self.ip.to_le_bytes());
        put(
            &mut b,
            off!(WirelessConfigurationData.gateway),
            &self.gateway.to_le_bytes(),
        );
        put(
            &mut b,
            off!(WirelessConfigurationData.netmask),
            &self.netmask.to_le_bytes(),
        );
        b[off!(WirelessConfigurationData.channel)] = self.channel;
        b[off!(WirelessConfigurationData.security)] = self.security as u8;
        put(&mut b, off!(WirelessConfigurationData.ssid), &self.ssid);
        put(&mut b, off!(WirelessConfigurationData.password), &self.password);
        b
    }

    /// Decode (at least 112 bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = need(bytes, Self::SIZE, "WirelessConfigurationData")?;
        Ok(WirelessConfigurationData {
            ip: get_u32(b, off!(WirelessConfigurationData.ip)),
            gateway: get_u32(b, off!(WirelessConfigurationData.gateway)),
            netmask: get_u32(b, off!(WirelessConfigurationData.netmask)),
            channel: b[off!(WirelessConfigurationData.channel)],
            security: b[off!(WirelessConfigurationData.security)] as i8,
            ssid: array(b, off!(WirelessConfigurationData.ssid)),
            password: array(b, off!(WirelessConfigurationData.password)),
        })
    }
}

/// `NetworkStatusResponse` (168 bytes; the SAM accepts 140 or more).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NetworkStatusResponse {
    /// Own IPv4 address (first octet in the low byte).
    pub ip_address: u32,
    /// Free heap in bytes.
    pub free_heap: u32,
    /// Reset reason code (0 = power up).
    pub reset_reason: u32,
    /// Flash size in bytes.
    pub flash_size: u32,
    /// Signal strength.
    pub rssi: i8,
    /// Clients connected to our access point.
    pub num_clients: u8,
    /// Sleep mode (2 bits): 0 unknown, 1 none, 2 light, 3 modem.
    pub sleep_mode: u8,
    /// PHY mode (2 bits): 1 B, 2 G, 3 N.
    pub phy_mode: u8,
    /// Supply voltage per the module's ADC.
    pub vcc: u16,
    /// MAC address.
    pub mac_address: [u8; 6],
    /// Firmware version text, NUL-terminated.
    pub version_text: [u8; 16],
    /// SSID, NUL-terminated.
    pub ssid: [u8; SSID_LENGTH],
    /// Host name, NUL-terminated.
    pub host_name: [u8; HOST_NAME_LENGTH],
    /// SPI clock register.
    pub clock_reg: u32,
    /// Netmask.
    pub netmask: u32,
    /// Gateway.
    pub gateway: u32,
    /// Reconnections since the SAM started the client.
    pub num_reconnects: u32,
    /// Whether the address came from DHCP.
    pub using_dhcpc: u8,
    /// Authentication mode (`WiFiAuth`).
    pub auth: u8,
    /// Primary channel (4 bits).
    pub channel: u8,
    /// HT mode (2 bits): 0 HT20, 1 HT40 above, 2 HT40 below.
    pub ht: u8,
    /// MAC address of the access point we are connected to.
    pub ap_mac: [u8; 6],
}

impl Default for NetworkStatusResponse {
    fn default() -> Self {
        NetworkStatusResponse {
            ip_address: 0,
            free_heap: 0,
            reset_reason: 0,
            flash_size: 0,
            rssi: 0,
            num_clients: 0,
            sleep_mode: 0,
            phy_mode: 0,
            vcc: 0,
            mac_address: [0; 6],
            version_text: [0; 16],
            ssid: [0; SSID_LENGTH],
            host_name: [0; HOST_NAME_LENGTH],
            clock_reg: 0,
            netmask: 0,
            gateway: 0,
            num_reconnects: 0,
            using_dhcpc: 0,
            auth: 0,
            channel: 0,
            ht: 0,
            ap_mac: [0; 6],
        }
    }
}

impl NetworkStatusResponse {
    /// Encoded size.
    pub const SIZE: usize = size_of::<raw::NetworkStatusResponse>();
    /// The shortest reply the SAM accepts (`MinimumStatusResponseLength`, up to `clockReg`).
    pub const MIN_LEN: usize = 140;

    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put(
            &mut b,
            off!(NetworkStatusResponse.ip_address),
            &self.ip_address.to_le_bytes(),
        );
        put(
            &mut b,
            off!(NetworkStatusResponse.free_heap),
            &self.free_heap.to_le_bytes(),
        );
        put(
            &mut b,
            off!(NetworkStatusResponse.reset_reason),
            &self.reset_reason.to_le_bytes(),
        );
        put(
            &mut b,
            off!(NetworkStatusResponse.flash_size),
            &self.flash_size.to_le_bytes(),
        );
        b[off!(NetworkStatusResponse.rssi)] = self.rssi as u8;
        b[off!(NetworkStatusResponse.num_clients)] = self.num_clients;
        b[off!(NetworkStatusResponse.mode_bits)] = (self.sleep_mode & 3) | ((self.phy_mode & 3) << 2);
        put(&mut b, off!(NetworkStatusResponse.vcc), &self.vcc.to_le_bytes());
        put(&mut b, off!(NetworkStatusResponse.mac_address), &self.mac_address);
        put(
            &mut b,
            off!(NetworkStatusResponse.version_text),
            &self.version_text,
        );
        put(&mut b, off!(NetworkStatusResponse.ssid), &self.ssid);
        put(&mut b, off!(NetworkStatusResponse.host_name), &self.host_name);
        put(
            &mut b,
            off!(NetworkStatusResponse.clock_reg),
            &self.clock_reg.to_le_bytes(),
        );
        put(
            &mut b,
            off!(NetworkStatusResponse.netmask),
            &self.netmask.to_le_bytes(),
        );
        put(
            &mut b,
            off!(NetworkStatusResponse.gateway),
            &self.gateway.to_le_bytes(),
        );
        put(
            &mut b,
            off!(NetworkStatusResponse.num_reconnects),
            &self.num_reconnects.to_le_bytes(),
        );
        b[off!(NetworkStatusResponse.using_dhcpc)] = self.using_dhcpc;
        b[off!(NetworkStatusResponse.auth)] = self.auth;
        b[off!(NetworkStatusResponse.channel_bits)] = (self.channel & 0x0F) | ((self.ht & 3) << 4);
        put(&mut b, off!(NetworkStatusResponse.ap_mac), &self.ap_mac);
        b
    }

    /// Decode at least [`MIN_LEN`](Self::MIN_LEN) bytes; fields past the end of a
    /// shorter (older) reply read as zero.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        need(bytes, Self::MIN_LEN, "NetworkStatusResponse")?;
        let mut full = [0u8; Self::SIZE];
        let n = bytes.len().min(Self::SIZE);
        full[..n].copy_from_slice(&bytes[..n]);
        let b = &full[..];
        let mode = b[off!(NetworkStatusResponse.mode_bits)];
        let chan = b[off!(NetworkStatusResponse.channel_bits)];
        Ok(NetworkStatusResponse {
            ip_address: get_u32(b, off!(NetworkStatusResponse.ip_address)),
            free_heap: get_u32(b, off!(NetworkStatusResponse.free_heap)),
            reset_reason: get_u32(b, off!(NetworkStatusResponse.reset_reason)),
            flash_size: get_u32(b, off!(NetworkStatusResponse.flash_size)),
            rssi: b[off!(NetworkStatusResponse.rssi)] as i8,
            num_clients: b[off!(NetworkStatusResponse.num_clients)],
            sleep_mode: mode & 3,
            phy_mode: (mode >> 2) & 3,
            vcc: get_u16(b, off!(NetworkStatusResponse.vcc)),
            mac_address: array(b, off!(NetworkStatusResponse.mac_address)),
            version_text: array(b, off!(NetworkStatusResponse.version_text)),
            ssid: array(b, off!(NetworkStatusResponse.ssid)),
            host_name: array(b, off!(NetworkStatusResponse.host_name)),
            clock_reg: get_u32(b, off!(NetworkStatusResponse.clock_reg)),
            netmask: get_u32(b, off!(NetworkStatusResponse.netmask)),
            gateway: get_u32(b, off!(NetworkStatusResponse.gateway)),
            num_reconnects: get_u32(b, off!(NetworkStatusResponse.num_reconnects)),
            using_dhcpc: b[off!(NetworkStatusResponse.using_dhcpc)],
            auth: b[off!(NetworkStatusResponse.auth)],
            channel: chan & 0x0F,
            ht: (chan >> 4) & 3,
            ap_mac: array(b, off!(NetworkStatusResponse.ap_mac)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_the_protocols() {
        assert_eq!(SamHeader::SIZE, 12);
        assert_eq!(EspHeader::SIZE, 12);
        assert_eq!(ConnStatusResponse::SIZE, 20);
        assert_eq!(ListenOrConnectData::SIZE, 12);
        assert_eq!(WirelessConfigurationData::SIZE, 112);
        assert_eq!(WirelessConfigurationData::REDUCED_SIZE, 48);
        assert_eq!(NetworkStatusResponse::SIZE, 168);
    }

    #[test]
    fn enum_numbers_are_the_protocols() {
        assert_eq!(Command::ALL.len(), 27);
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(c.value() as usize, i);
            assert_eq!(Command::try_from(i as u8), Ok(*c));
        }
        assert_eq!(Command::try_from(27), Err(DecodeError::UnknownCommand(27)));
        assert_eq!(Command::NetworkGetLastError.value(), 19);
        assert_eq!(Command::NetworkAddEnterpriseSsid.value(), 26);
        assert_eq!(WiFiState::ALL.len(), 7);
        assert_eq!(WiFiState::Reconnecting.value(), 6);
        assert!(WiFiState::try_from(7).is_err());
        let codes: [i32; 15] = [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14];
        for (r, c) in Response::ALL.iter().zip(codes) {
            assert_eq!(r.code(), c);
            assert_eq!(Response::try_from(c), Ok(*r));
        }
        assert_eq!(Response::try_from(-15), Err(DecodeError::UnknownResponse(-15)));
        assert_eq!(Reply::from_code(20), Reply::Length(20));
        assert_eq!(Reply::from_code(-11), Reply::Error(Response::BadParameter));
        assert_eq!(Reply::from_code(-99), Reply::Unknown(-99));
    }

    #[test]
    fn headers_are_little_endian_at_the_c_offsets() {
        let h = SamHeader::new(Command::ConnWrite, 5, FLAG_PUSH, 0x0102, 0x0304, 0x0A0B_0C0D);
        assert_eq!(
            h.encode(),
            [0x3E, 5, 5, 2, 0x02, 0x01, 0x04, 0x03, 0x0D, 0x0C, 0x0B, 0x0A]
        );
        let e = EspHeader::new(WiFiState::Connected, -5);
        assert_eq!(e.encode(), [0x3E, 4, 0, 0, 0, 0, 0, 0, 0xFB, 0xFF, 0xFF, 0xFF]);
        assert_eq!(EspHeader::decode(&e.encode()), Ok(e));
        assert_eq!(
            e.validate(),
            Ok((WiFiState::Connected, Reply::Error(Response::BadDataLength)))
        );
    }

    #[test]
    fn validation_maps_to_response_codes() {
        let mut h = SamHeader::new(Command::ConnRead, 9, 0, 0, 100, 0);
        assert_eq!(h.validate(), Ok(Command::ConnRead));
        assert_eq!(h.socket().unwrap_err().response(), Response::BadParameter);
        h.data_length = 2049;
        assert_eq!(h.validate().unwrap_err().response(), Response::BadDataLength);
        h.format_version = 0x3D;
        assert_eq!(
            h.validate().unwrap_err().response(),
            Response::BadRequestFormatVersion
        );
        h = SamHeader::new(Command::ConnRead, 0, 0, 0, 0, 0);
        h.command = 200;
        assert_eq!(h.validate().unwrap_err().response(), Response::UnknownCommand);
        assert_eq!(
            SamHeader::decode(&[0x3E; 11]).unwrap_err().response(),
            Response::BadDataLength
        );
    }

    #[test]
    fn structs_round_trip() {
        let s = ConnStatusResponse {
            state: ConnState::OtherEndClosed,
            socket_number: 7,
            protocol: 1,
            rssi: -60,
            local_port: 80,
            remote_port: 51000,
            remote_ip: ip_to_wire(core::net::Ipv4Addr::new(192, 168, 1, 20)),
            bytes_available: 2048,
            write_buffer_space: 1024,
            connected_sockets: 0b1010,
            other_end_closed_sockets: 0b1000_0000,
        };
        let b = s.encode();
        assert_eq!(&b[8..12], &[192, 168, 1, 20]);
        assert_eq!(ConnStatusResponse::decode(&b), Ok(s));
        let mut bad = b;
        bad[0] = 8;
        assert_eq!(
            ConnStatusResponse::decode(&bad),
            Err(DecodeError::BadConnState(8))
        );

        let l = ListenOrConnectData {
            remote_ip: 0,
            protocol: Protocol::FtpData.value(),
            port: 1025,
            max_connections: 1,
        };
        assert_eq!(l.encode(), [0, 0, 0, 0, 3, 0, 0x01, 0x04, 1, 0, 0, 0]);
        assert_eq!(ListenOrConnectData::decode(&l.encode()), Ok(l));

        let mut w = WirelessConfigurationData {
            ip: 1,
            gateway: 2,
            netmask: 3,
            channel: 6,
            security: -1,
            ssid: [0; 32],
            password: [0; 64],
        };
        set_c_str(&mut w.ssid, b"printer-net");
        set_c_str(&mut w.password, &[b'x'; 100]);
        assert_eq!(c_str(&w.password).len(), 63);
        assert_eq!(WirelessConfigurationData::decode(&w.encode()), Ok(w));

        let mut n = NetworkStatusResponse {
            rssi: -42,
            sleep_mode: 1,
            phy_mode: 3,
            channel: 11,
            ht: 2,
            ap_mac: [1, 2, 3, 4, 5, 6],
            clock_reg: 0x2001,
            ..Default::default()
        };
        set_c_str(&mut n.host_name, b"duet");
        let b = n.encode();
        assert_eq!(b[18], 0b1101);
        assert_eq!(b[158], 0b10_1011);
        assert_eq!(&b[160..166], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(NetworkStatusResponse::decode(&b), Ok(n));
        // An older 144-byte reply decodes; later fields read as zero.
        let old = NetworkStatusResponse::decode(&b[..144]).unwrap();
        assert_eq!(old.clock_reg, 0x2001);
        assert_eq!(old.ap_mac, [0; 6]);
        assert!(NetworkStatusResponse::decode(&b[..139]).is_err());
    }
}
