//! The command planner: from a request header and a snapshot of what the bridge
//! holds, the response word, the direction and size of the data phase, and the
//! network work left for after chip select rises.
//!
//! Pure: no I/O, no pool, no pins, nothing mutated. It runs while chip select is
//! low, between the header and the response dword, so it must be quick and must not
//! touch the network; being a function of its inputs it is property-tested below
//! against the protocol's rules.

use crate::protocol::{
    Command, ConnStatusResponse, DecodeError, ListenOrConnectData, NetworkStatusResponse, Response,
    SamHeader, WiFiState, HOST_NAME_LENGTH, MAX_DATA_LENGTH,
};

/// Highest `networkSetTxPower` value (0.25 dB units: 20.5 dBm).
pub(super) const MAX_TX_POWER: u8 = 82;

/// One socket as the planner needs it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SocketView {
    /// Bytes the SAM may read now (the receive buffer of a socket it holds).
    pub readable: usize,
    /// Bytes a `connWrite` may be promised now; 0 when the socket takes no writes.
    pub write_space: usize,
    /// The socket takes writes (`connected`, `connecting` or `otherEndClosed`).
    pub writable: bool,
}

/// What the planner reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct View {
    /// The WiFi state (gates `connCreate` and mode changes).
    pub wifi_state: WiFiState,
    /// Length of the error message waiting for the SAM, if any.
    pub error_len: Option<usize>,
    /// The socket the header names (all zero when the number is out of range).
    pub socket: SocketView,
    /// The lowest socket number free for the SAM and in the pool: what a
    /// `connCreate` may announce.
    pub vacant: Option<usize>,
}

/// What the bridge sends in the data phase. The bytes are copied into the transfer
/// buffer after planning, still before the response dword.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Outgoing {
    /// The first `len` received bytes of `socket`.
    Received { socket: usize, len: usize },
    /// `connGetStatus` of `socket` (20 bytes).
    ConnStatus { socket: usize },
    /// The first `len` bytes of the network status.
    NetworkStatus { len: usize },
    /// The error message and its NUL (`len` bytes in all).
    LastError { len: usize },
}

impl Outgoing {
    /// Bytes sent.
    pub(super) const fn len(self) -> usize {
        match self {
            Outgoing::Received { len, .. }
            | Outgoing::NetworkStatus { len }
            | Outgoing::LastError { len } => len,
            Outgoing::ConnStatus { .. } => ConnStatusResponse::SIZE,
        }
    }
}

/// Which way the data phase goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum DataPhase {
    None,
    /// The bridge sends.
    ToSam(Outgoing),
    /// The SAM sends this many bytes into the transfer buffer.
    FromSam(usize),
}

/// The network work a command leaves for after chip select rises.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Action {
    None,
    Abort(usize),
    Close(usize),
    Write {
        socket: usize,
        len: usize,
        push: bool,
        close: bool,
    },
    Read {
        socket: usize,
        len: usize,
    },
    Connect(usize),
    Listen,
    SetHostName,
    Mode(Command, usize),
    Acknowledge,
    Diagnostics,
    TxPower(u8),
    ClockControl,
}

/// The planner's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub response: i32,
    pub data: DataPhase,
    pub action: Action,
    /// The request was malformed (counted in [`BridgeStats`](super::BridgeStats)):
    /// bad format version, data length, command, or socket number or parameter.
    pub refusal: Option<Response>,
}

impl Plan {
    const fn reply(response: i32) -> Self {
        Plan {
            response,
            data: DataPhase::None,
            action: Action::None,
            refusal: None,
        }
    }

    const fn act(action: Action) -> Self {
        Plan {
            action,
            ..Plan::reply(0)
        }
    }

    const fn receive(len: usize, action: Action) -> Self {
        Plan {
            response: 0,
            data: DataPhase::FromSam(len),
            action,
            refusal: None,
        }
    }

    fn refuse(e: DecodeError) -> Self {
        Plan::malformed(e.response())
    }

    const fn malformed(r: Response) -> Self {
        Plan {
            refusal: Some(r),
            ..Plan::reply(r.code())
        }
    }

    /// Send `out` if the SAM can take it, else −9.
    #[inline(always)]
    fn send(out: Outgoing, capacity: usize, action: Action) -> Self {
        if out.len() > capacity {
            return Plan::reply(Response::BufferTooSmall.code());
        }
        Plan {
            response: out.len() as i32,
            data: DataPhase::ToSam(out),
            action,
            refusal: None,
        }
    }
}

/// Decide the response to `h` given `view`. See the [module docs](self).
#[inline(never)]
pub(super) fn plan(h: &SamHeader, view: &View) -> Plan {
    let command = match h.validate() {
        Ok(c) => c,
        Err(e) => return Plan::refuse(e),
    };
    let socket = if command.takes_socket() {
        match h.socket() {
            Ok(s) => s,
            Err(e) => return Plan::refuse(e),
        }
    } else {
        0
    };
    let sock = view.socket;
    let len = usize::from(h.data_length);
    let capacity = h.receive_capacity();
    let fixed = |size: usize, action: Action| {
        if len == size {
            Plan::receive(len, action)
        } else {
            Plan::refuse(DecodeError::BadDataLength(h.data_length))
        }
    };
    match command {
        Command::NullCommand => Plan::reply(0),
        Command::ConnAbort => Plan::act(Action::Abort(socket)),
        Command::ConnClose => Plan::act(Action::Close(socket)),
        Command::ConnRead => {
            let n = sock.readable.min(capacity).min(MAX_DATA_LENGTH);
            Plan::send(
                Outgoing::Received { socket, len: n },
                capacity,
                Action::Read { socket, len: n },
            )
        }
        Command::ConnWrite => {
            if !sock.writable {
                return Plan::reply(Response::WrongState.code());
            }
            let accepted = len.min(sock.write_space);
            let all = accepted == len;
            Plan {
                response: accepted as i32,
                data: DataPhase::FromSam(accepted),
                action: Action::Write {
                    socket,
                    len: accepted,
                    push: all && h.push(),
                    close: all && h.close_after_write(),
                },
                refusal: None,
            }
        }
        Command::ConnGetStatus => Plan::send(Outgoing::ConnStatus { socket }, capacity, Action::None),
        Command::ConnCreate => {
            if len != ListenOrConnectData::SIZE {
                return Plan::refuse(DecodeError::BadDataLength(h.data_length));
            }
            if !view.wifi_state.link_up() {
                return Plan::reply(Response::WrongState.code());
            }
            // The reply names the socket before the connect happens: a number free
            // for the SAM and in the pool; the connect goes into that very slot.
            match view.vacant {
                Some(i) => Plan {
                    response: i as i32,
                    data: DataPhase::FromSam(len),
                    action: Action::Connect(i),
                    refusal: None,
                },
                None => Plan::reply(Response::Busy.code()),
            }
        }
        Command::NetworkListen => fixed(ListenOrConnectData::SIZE, Action::Listen),
        Command::NetworkGetStatus => {
            if capacity < NetworkStatusResponse::MIN_LEN {
                return Plan::reply(Response::BufferTooSmall.code());
            }
            let n = NetworkStatusResponse::SIZE.min(capacity);
            Plan::send(Outgoing::NetworkStatus { len: n }, capacity, Action::None)
        }
        Command::NetworkSetHostName => fixed(HOST_NAME_LENGTH, Action::SetHostName),
        Command::NetworkGetLastError => match view.error_len {
            None => Plan::act(Action::Acknowledge),
            Some(text) => {
                let n = text.min(MAX_DATA_LENGTH - 1) + 1;
                if capacity < n {
                    return Plan {
                        action: Action::Acknowledge,
                        ..Plan::reply(Response::BufferTooSmall.code())
                    };
                }
                Plan::send(Outgoing::LastError { len: n }, capacity, Action::Acknowledge)
            }
        },
        Command::Diagnostics => Plan::act(Action::Diagnostics),
        Command::NetworkStartClient | Command::NetworkStartAccessPoint => {
            if view.wifi_state != WiFiState::Idle {
                return Plan::reply(Response::WrongState.code());
            }
            Plan::receive(len, Action::Mode(command, len))
        }
        Command::NetworkStop => Plan::act(Action::Mode(command, 0)),
        Command::NetworkSetTxPower => {
            if h.flags > MAX_TX_POWER {
                return Plan::malformed(Response::BadParameter);
            }
            Plan::act(Action::TxPower(h.flags))
        }
        Command::NetworkSetClockControl => Plan::act(Action::ClockControl),
        // SSID storage and scans belong to the platform's WiFi manager, which this
        // example does not have; the deprecated and unused commands are unknown.
        Command::UnusedStopListening
        | Command::NetworkAddSsid
        | Command::NetworkDeleteSsid
        | Command::NetworkListSsids
        | Command::NetworkConfigureAccessPoint
        | Command::NetworkFactoryReset
        | Command::NetworkRetrieveSsidData
        | Command::NetworkStartScan
        | Command::NetworkGetScanResult
        | Command::NetworkAddEnterpriseSsid => Plan::refuse(DecodeError::UnknownCommand(h.command)),
    }
}

#[cfg(test)]
mod tests;
