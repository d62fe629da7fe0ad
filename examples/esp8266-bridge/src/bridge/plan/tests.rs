//! The planner against the protocol's rules, on arbitrary headers and snapshots.

use proptest::prelude::*;

use super::*;
use crate::protocol::{FLAG_CLOSE_AFTER_WRITE, FLAG_PUSH, FORMAT_VERSION, MAX_CONNECTIONS};

fn wifi_state() -> impl Strategy<Value = WiFiState> {
    (0u8..=6).prop_map(|b| WiFiState::try_from(b).unwrap_or(WiFiState::Idle))
}

fn socket_view() -> impl Strategy<Value = SocketView> {
    (0usize..=4096, 0usize..=4096, any::<bool>()).prop_map(|(readable, write_space, writable)| SocketView {
        readable,
        write_space: if writable { write_space } else { 0 },
        writable,
    })
}

fn view() -> impl Strategy<Value = View> {
    (
        wifi_state(),
        proptest::option::of(0usize..=3000),
        socket_view(),
        proptest::option::of(0usize..MAX_CONNECTIONS),
    )
        .prop_map(|(wifi_state, error_len, socket, vacant)| View {
            wifi_state,
            error_len,
            socket,
            vacant,
        })
}

/// Mostly well-formed headers, sometimes anything.
fn header() -> impl Strategy<Value = SamHeader> {
    (
        prop_oneof![4 => Just(FORMAT_VERSION), 1 => any::<u8>()],
        prop_oneof![4 => 0u8..=26, 1 => any::<u8>()],
        prop_oneof![4 => 0u8..8, 1 => any::<u8>()],
        any::<u8>(),
        prop_oneof![
            2 => Just(ListenOrConnectData::SIZE as u16),
            2 => Just(HOST_NAME_LENGTH as u16),
            4 => 0u16..=2048,
            1 => any::<u16>()
        ],
        prop_oneof![4 => 0u16..=2048, 1 => any::<u16>()],
        any::<u32>(),
    )
        .prop_map(
            |(format_version, command, socket_number, flags, data_length, data_buffer_available, param32)| {
                SamHeader {
                    format_version,
                    command,
                    socket_number,
                    flags,
                    data_length,
                    data_buffer_available,
                    param32,
                }
            },
        )
}

fn valid(h: &SamHeader) -> Option<Command> {
    h.validate().ok()
}

proptest! {
    /// Whatever comes in: the data phase fits both sides, an error sends no data,
    /// and exactly the malformed requests are counted as refusals.
    #[test]
    fn data_phase_fits_and_errors_move_nothing(h in header(), v in view()) {
        let p = plan(&h, &v);
        match p.data {
            DataPhase::None => {}
            DataPhase::ToSam(out) => {
                prop_assert_eq!(p.response, out.len() as i32);
                prop_assert!(out.len() <= h.receive_capacity());
                prop_assert!(out.len() <= MAX_DATA_LENGTH);
            }
            DataPhase::FromSam(n) => {
                prop_assert!(n <= usize::from(h.data_length));
                prop_assert!(n <= MAX_DATA_LENGTH);
                prop_assert!(p.response >= 0);
            }
        }
        if p.response < 0 {
            prop_assert_eq!(p.data, DataPhase::None);
            let acknowledged = valid(&h) == Some(Command::NetworkGetLastError);
            prop_assert!(p.action == Action::None || (acknowledged && p.action == Action::Acknowledge));
        }
        let malformed = [
            Response::UnknownCommand,
            Response::BadRequestFormatVersion,
            Response::BadDataLength,
            Response::BadParameter,
        ]
        .iter()
        .any(|r| r.code() == p.response);
        prop_assert_eq!(p.refusal.is_some(), malformed);
    }

    /// The header is checked first: version, then length, then command, then socket.
    #[test]
    fn header_checks_come_first(h in header(), v in view()) {
        let p = plan(&h, &v);
        if h.format_version != FORMAT_VERSION {
            prop_assert_eq!(p, Plan { refusal: Some(Response::BadRequestFormatVersion), ..Plan::reply(-2) });
        } else if usize::from(h.data_length) > MAX_DATA_LENGTH {
            prop_assert_eq!(p, Plan { refusal: Some(Response::BadDataLength), ..Plan::reply(-5) });
        } else if Command::try_from(h.command).is_err() {
            prop_assert_eq!(p, Plan { refusal: Some(Response::UnknownCommand), ..Plan::reply(-1) });
        } else if Command::try_from(h.command).is_ok_and(|c| c.takes_socket())
            && usize::from(h.socket_number) >= MAX_CONNECTIONS
        {
            prop_assert_eq!(p, Plan { refusal: Some(Response::BadParameter), ..Plan::reply(-11) });
        }
    }

    /// `connWrite` promises at most what the socket can take; push and close count
    /// only when every byte was accepted; a socket that takes no writes is −4.
    #[test]
    fn conn_write_promises_only_the_space(
        socket in 0u8..8,
        len in 0u16..=2048,
        flags in 0u8..4,
        v in view(),
    ) {
        let h = SamHeader::new(Command::ConnWrite, socket, flags, len, 0, 0);
        let s = v.socket;
        let p = plan(&h, &v);
        if !s.writable {
            prop_assert_eq!(p, Plan::reply(Response::WrongState.code()));
            return Ok(());
        }
        let accepted = usize::from(len).min(s.write_space);
        let all = accepted == usize::from(len);
        prop_assert_eq!(p.response, accepted as i32);
        prop_assert_eq!(p.data, DataPhase::FromSam(accepted));
        prop_assert_eq!(
            p.action,
            Action::Write {
                socket: usize::from(socket),
                len: accepted,
                push: all && flags & FLAG_PUSH != 0,
                close: all && flags & FLAG_CLOSE_AFTER_WRITE != 0,
            }
        );
    }

    /// `connRead` sends what is readable, at most what the SAM can take, and
    /// consumes exactly that.
    #[test]
    fn conn_read_sends_what_is_readable(socket in 0u8..8, room in 0u16..=4096, v in view()) {
        let h = SamHeader::new(Command::ConnRead, socket, 0, 0, room, 0);
        let i = usize::from(socket);
        let n = v.socket.readable.min(h.receive_capacity());
        let p = plan(&h, &v);
        prop_assert_eq!(p.response, n as i32);
        prop_assert_eq!(p.data, DataPhase::ToSam(Outgoing::Received { socket: i, len: n }));
        prop_assert_eq!(p.action, Action::Read { socket: i, len: n });
    }

    /// `connCreate` announces the vacant number, only with the link up.
    #[test]
    fn conn_create_announces_a_vacant_number(v in view()) {
        let h = SamHeader::new(Command::ConnCreate, 0, 0, ListenOrConnectData::SIZE as u16, 0, 0);
        let p = plan(&h, &v);
        if !v.wifi_state.link_up() {
            prop_assert_eq!(p, Plan::reply(Response::WrongState.code()));
        } else if let Some(i) = v.vacant {
            prop_assert_eq!(p.response, i as i32);
            prop_assert_eq!(p.action, Action::Connect(i));
            prop_assert_eq!(p.data, DataPhase::FromSam(ListenOrConnectData::SIZE));
        } else {
            prop_assert_eq!(p, Plan::reply(Response::Busy.code()));
        }
    }

    /// The error message goes out with its NUL when it fits; either way the fetch
    /// acknowledges the status change.
    #[test]
    fn last_error_is_fetched_or_too_big(room in 0u16..=2048, v in view()) {
        let h = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, room, 0);
        let p = plan(&h, &v);
        prop_assert_eq!(p.action, Action::Acknowledge);
        match v.error_len {
            None => prop_assert_eq!(p.response, 0),
            Some(n) => {
                let sent = n.min(MAX_DATA_LENGTH - 1) + 1;
                if sent <= usize::from(room) {
                    prop_assert_eq!(p.data, DataPhase::ToSam(Outgoing::LastError { len: sent }));
                } else {
                    prop_assert_eq!(p.response, Response::BufferTooSmall.code());
                }
            }
        }
    }
}

#[test]
fn fixed_size_requests_check_their_length() {
    let v = View {
        wifi_state: WiFiState::Connected,
        error_len: None,
        socket: SocketView::default(),
        vacant: None,
    };
    let listen = |len| plan(&SamHeader::new(Command::NetworkListen, 0, 0, len, 0, 0), &v);
    assert_eq!(listen(12), Plan::receive(12, Action::Listen));
    assert_eq!(listen(11).response, Response::BadDataLength.code());
    let host = |len| plan(&SamHeader::new(Command::NetworkSetHostName, 0, 0, len, 0, 0), &v);
    assert_eq!(host(64), Plan::receive(64, Action::SetHostName));
    assert_eq!(host(63).response, Response::BadDataLength.code());
    let status = |room| plan(&SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, room, 0), &v);
    assert_eq!(status(139).response, Response::BufferTooSmall.code());
    assert_eq!(
        status(140).data,
        DataPhase::ToSam(Outgoing::NetworkStatus { len: 140 })
    );
    assert_eq!(status(2048).response, NetworkStatusResponse::SIZE as i32);
    let power = |p| plan(&SamHeader::new(Command::NetworkSetTxPower, 0, p, 0, 0, 0), &v);
    assert_eq!(power(82).action, Action::TxPower(82));
    assert_eq!(power(83).refusal, Some(Response::BadParameter));
    let start = plan(&SamHeader::new(Command::NetworkStartClient, 0, 0, 32, 0, 0), &v);
    assert_eq!(start.response, Response::WrongState.code(), "only from idle");
}
