//! The bridge's command semantics, on the test stack (netpool-testkit's scripted stack)
//! and the mock SAM end of the bus.

use core::cell::RefCell;
use core::net::{Ipv4Addr, SocketAddr};

use esp8266_bridge::mock::*;
use esp8266_bridge::protocol::*;
use esp8266_bridge::{Bridge, BridgeConfig};
use netpool::stack::SendFlag;
use netpool::{CloseReason, Config, Duration, Instant, Pool};

type TestBridge<'a> = Bridge<TestStack, MockSpi<'a>, MockCs<'a>, MockReady<'a>, MockRequest<'a>, 4, 0>;

const HTTP: u16 = 80;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(192, 168, 1, 20).into(), port)
}

fn bridge(bus: &RefCell<MockBus>) -> TestBridge<'_> {
    let config = Config::new().with_stall_grace(Duration::from_secs(2));
    let pool = Pool::new(test_stack(), config);
    let mut b = Bridge::new(pool, MockSpi(bus), MockCs(bus), MockReady(bus), MockRequest(bus))
        .with_config(BridgeConfig::new());
    b.set_wifi_state(WiFiState::Connected);
    b
}

/// One transaction: arm, serve, return the reply header and data.
fn cmd(
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    header: SamHeader,
    data: &[u8],
) -> (i32, Vec<u8>) {
    bus.borrow_mut().arm(&header, data);
    let done = bus.borrow().completed;
    b.service(now);
    let bus = bus.borrow();
    assert_eq!(bus.completed, done + 1, "the transfer was served");
    assert!(!bus.selected, "chip select released");
    let (h, d) = bus.reply().expect("a reply header");
    assert_eq!(h.format_version, FORMAT_VERSION);
    (h.response, d.to_vec())
}

fn status(b: &mut TestBridge<'_>, bus: &RefCell<MockBus>, now: Instant, socket: u8) -> ConnStatusResponse {
    let (r, d) = cmd(
        b,
        bus,
        now,
        SamHeader::new(Command::ConnGetStatus, socket, 0, 0, 20, 0),
        &[],
    );
    assert_eq!(r, 20);
    ConnStatusResponse::decode(&d).unwrap()
}

fn listen(
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    port: u16,
    protocol: u8,
    max: u16,
) -> i32 {
    let lcd = ListenOrConnectData {
        remote_ip: 0,
        protocol,
        port,
        max_connections: max,
    };
    cmd(
        b,
        bus,
        now,
        SamHeader::new(Command::NetworkListen, 0, 0, 12, 0, 0),
        &lcd.encode(),
    )
    .0
}

fn write(
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    socket: u8,
    flags: u8,
    data: &[u8],
) -> i32 {
    let h = SamHeader::new(Command::ConnWrite, socket, flags, data.len() as u16, 0, 0);
    cmd(b, bus, now, h, data).0
}

fn read(b: &mut TestBridge<'_>, bus: &RefCell<MockBus>, now: Instant, socket: u8, room: u16) -> Vec<u8> {
    let (r, d) = cmd(
        b,
        bus,
        now,
        SamHeader::new(Command::ConnRead, socket, 0, 0, room, 0),
        &[],
    );
    assert!(r >= 0);
    assert_eq!(d.len(), r as usize);
    d
}

/// A connected HTTP socket 0 with its peer on the test stack.
fn connected(b: &mut TestBridge<'_>, bus: &RefCell<MockBus>, remote_port: u16) -> PeerId {
    assert_eq!(listen(b, bus, at(0), HTTP, 0, 4), 0);
    let id = b
        .pool_mut()
        .stack_mut()
        .peer_connect(HTTP, peer(remote_port))
        .unwrap();
    b.service(at(1));
    id
}

#[test]
fn free_socket_status_is_twenty_bytes_with_empty_bitmaps() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let s = status(&mut b, &bus, at(0), 5);
    assert_eq!(s.state, ConnState::Free);
    assert_eq!(s.socket_number, 5);
    assert_eq!((s.connected_sockets, s.other_end_closed_sockets), (0, 0));
    assert_eq!(s.write_buffer_space, 0);
}

#[test]
fn protocol_errors_get_their_codes() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let mut h = SamHeader::new(Command::ConnGetStatus, 0, 0, 0, 20, 0);
    h.format_version = 0x3D;
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[]).0, -2);
    let h = SamHeader::new(Command::ConnWrite, 0, 0, 2049, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[]).0, -5);
    let h = SamHeader::new(Command::ConnRead, 8, 0, 0, 100, 0);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[]).0, -11);
    let mut h = SamHeader::new(Command::NullCommand, 0, 0, 0, 0, 0);
    h.command = 200;
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[]).0, -1);
    let h = SamHeader::new(Command::NetworkAddSsid, 0, 0, 112, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[0; 112]).0, -1);
    // networkListen with a bad length gets a response word (the original sent none).
    let h = SamHeader::new(Command::NetworkListen, 0, 0, 8, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[0; 8]).0, -5);
    let h = SamHeader::new(Command::NullCommand, 0, 0, 0, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[]).0, 0);
    let stats = b.stats();
    assert_eq!(
        (
            stats.bad_format_version,
            stats.bad_data_length,
            stats.bad_parameter,
            stats.unknown_command
        ),
        (1, 2, 1, 2)
    );
}

#[test]
fn incoming_connection_is_shown_with_its_addresses_and_data() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_000);
    b.pool_mut().stack_mut().peer_send(id, b"GET / HTTP/1.1\r\n\r\n");
    b.service(at(2));
    let s = status(&mut b, &bus, at(3), 0);
    assert_eq!(s.state, ConnState::Connected);
    assert_eq!((s.local_port, s.remote_port), (HTTP, 50_000));
    assert_eq!(s.remote_ip.to_le_bytes(), [192, 168, 1, 20]);
    assert_eq!(s.bytes_available, 18);
    assert_eq!(s.write_buffer_space, 2048);
    assert_eq!(s.connected_sockets, 1);
    // connRead gives at most what the SAM has room for.
    assert_eq!(read(&mut b, &bus, at(4), 0, 4), b"GET ");
    assert_eq!(read(&mut b, &bus, at(5), 0, 2048), b"/ HTTP/1.1\r\n\r\n");
    assert_eq!(read(&mut b, &bus, at(6), 0, 2048), b"");
}

#[test]
fn other_end_closed_is_reported_only_once_the_data_is_read() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_001);
    let stack = b.pool_mut().stack_mut();
    stack.peer_send(id, b"last words");
    stack.peer_fin(id);
    b.service(at(2));
    let s = status(&mut b, &bus, at(3), 0);
    assert_eq!((s.state, s.bytes_available), (ConnState::Connected, 10));
    assert_eq!(read(&mut b, &bus, at(4), 0, 2048), b"last words");
    b.service(at(5));
    let s = status(&mut b, &bus, at(6), 0);
    assert_eq!(s.state, ConnState::OtherEndClosed);
    assert_eq!((s.connected_sockets, s.other_end_closed_sockets), (0, 1));
    // The SAM closes: free at once.
    assert_eq!(
        cmd(
            &mut b,
            &bus,
            at(7),
            SamHeader::new(Command::ConnClose, 0, 0, 0, 0, 0),
            &[]
        )
        .0,
        0
    );
    assert_eq!(status(&mut b, &bus, at(8), 0).state, ConnState::Free);
    assert_eq!(b.pool().free_slots(), 8);
}

#[test]
fn read_is_capped_at_the_transfer_maximum() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_002);
    b.pool_mut().stack_mut().peer_send(id, &[7u8; 2048]);
    b.service(at(2));
    let mut h = SamHeader::new(Command::ConnRead, 0, 0, 0, u16::MAX, 0);
    h.data_buffer_available = 4096;
    let (r, d) = cmd(&mut b, &bus, at(3), h, &[]);
    assert_eq!((r, d.len()), (2048, 2048));
}

#[test]
fn write_promises_only_what_is_buffered_and_push_applies_when_all_is_taken() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_003);
    // The peer does not read: the stack takes nothing.
    b.pool_mut().stack_mut().set_send_window(id, 0);
    assert_eq!(write(&mut b, &bus, at(2), 0, 0, &[1u8; 1500]), 1500);
    let s = status(&mut b, &bus, at(3), 0);
    assert_eq!(s.write_buffer_space, 548);
    // A pushed write bigger than the space: partial, and the push is not applied.
    assert_eq!(write(&mut b, &bus, at(4), 0, FLAG_PUSH, &[2u8; 1000]), 548);
    assert_eq!(status(&mut b, &bus, at(5), 0).write_buffer_space, 0);
    assert_eq!(write(&mut b, &bus, at(6), 0, FLAG_PUSH, &[3u8; 10]), 0);
    // The peer opens its window: every byte goes to the stack, with MORE (no push was
    // applied), and the stack holds them...
    b.pool_mut().stack_mut().set_send_window(id, usize::MAX);
    b.service(at(7));
    let st = b.pool().stack();
    assert_eq!(st.sent_total(id), 2048, "nothing kept back");
    assert_eq!(
        (st.last_flag(id), st.pushes(id), st.held(id)),
        (Some(SendFlag::More), 0, 2048)
    );
    // ...until a zero-length push, a flush: the stack sends what it holds.
    assert_eq!(write(&mut b, &bus, at(8), 0, FLAG_PUSH, &[]), 0);
    let st = b.pool().stack();
    assert_eq!(
        (st.sent_total(id), st.on_wire(id), st.stack_pushes(id)),
        (2048, 2048, 1)
    );
    assert_eq!(&st.peer_sent(id)[1499..1501], &[1, 2]);
    assert_eq!(b.stats().bytes_from_sam, 2048);
}

#[test]
fn a_late_push_reaches_the_wire_without_a_kept_back_byte() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_012);
    // A response head written with MORE: every byte goes to the stack at once, which
    // holds them for the body.
    assert_eq!(write(&mut b, &bus, at(10), 0, 0, b"HTTP/1.1 200 OK\r\n\r\n"), 19);
    let st = b.pool().stack();
    assert_eq!(st.peer_sent(id), b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(
        (st.last_flag(id), st.held(id), st.on_wire(id)),
        (Some(SendFlag::More), 19, 0)
    );
    assert_eq!(b.buffered(0), Some((0, 0)), "the bridge keeps no byte back");
    // The SAM ends the message late with a zero-length push: on the wire at once,
    // long before the pool's coalescing delay, with no byte to carry the push.
    assert_eq!(write(&mut b, &bus, at(20), 0, FLAG_PUSH, &[]), 0);
    let st = b.pool().stack();
    assert_eq!(
        (st.held(id), st.on_wire(id), st.stack_pushes(id), st.pushes(id)),
        (0, 19, 1, 0)
    );
    // The push is not repeated on later passes.
    b.service(at(30));
    b.service(at(10 + 300));
    assert_eq!(b.pool().stack().stack_pushes(id), 1);
}

#[test]
fn unpushed_bytes_go_out_after_the_coalescing_delay() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_004);
    assert_eq!(write(&mut b, &bus, at(10), 0, 0, b"hello"), 5);
    let st = b.pool().stack();
    assert_eq!((st.peer_sent(id), st.held(id)), (&b"hello"[..], 5));
    b.service(at(100));
    assert_eq!(b.pool().stack().held(id), 5);
    // The pool's coalescing delay (200 ms) expires: it pushes them itself.
    b.service(at(10 + 200));
    let st = b.pool().stack();
    assert_eq!((st.on_wire(id), st.held(id), st.stack_pushes(id)), (5, 0, 1));
}

#[test]
fn close_after_write_sends_everything_then_closes() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_005);
    b.pool_mut().stack_mut().set_send_window(id, 3);
    let flags = FLAG_PUSH | FLAG_CLOSE_AFTER_WRITE;
    assert_eq!(write(&mut b, &bus, at(2), 0, flags, b"HTTP/1.1 200 OK\r\n"), 17);
    // The SAM let go: free at once, the bytes are still being handed over.
    assert_eq!(status(&mut b, &bus, at(3), 0).state, ConnState::Free);
    assert_eq!(b.pool().stack().sent_total(id), 3);
    assert!(!b.pool().stack().closed_by_app(id));
    b.pool_mut().stack_mut().set_send_window(id, usize::MAX);
    b.service(at(4));
    let st = b.pool().stack();
    assert_eq!(st.peer_sent(id), b"HTTP/1.1 200 OK\r\n");
    assert_eq!(st.last_flag(id), Some(SendFlag::Push));
    assert!(closed_gracefully(st, id));
    assert_eq!(b.pool().free_slots(), 8);
}

#[test]
fn close_flag_is_ignored_when_not_every_byte_is_accepted() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_006);
    b.pool_mut().stack_mut().set_send_window(id, 0);
    assert_eq!(write(&mut b, &bus, at(2), 0, 0, &[0u8; 2000]), 2000);
    assert_eq!(
        write(&mut b, &bus, at(3), 0, FLAG_CLOSE_AFTER_WRITE, &[0u8; 100]),
        48
    );
    assert_eq!(status(&mut b, &bus, at(4), 0).state, ConnState::Connected);
}

#[test]
fn abort_frees_the_slot_with_a_reset() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_007);
    assert_eq!(
        cmd(
            &mut b,
            &bus,
            at(2),
            SamHeader::new(Command::ConnAbort, 0, 0, 0, 0, 0),
            &[]
        )
        .0,
        0
    );
    assert!(aborted(b.pool().stack(), id));
    assert_eq!(status(&mut b, &bus, at(3), 0).state, ConnState::Free);
    // Idempotent.
    assert_eq!(
        cmd(
            &mut b,
            &bus,
            at(4),
            SamHeader::new(Command::ConnAbort, 0, 0, 0, 0, 0),
            &[]
        )
        .0,
        0
    );
}

#[test]
fn a_reaped_connection_is_reported_aborted_until_the_sam_acknowledges() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(&mut b, &bus, 50_008);
    let h = b.pool().handle_at(0).unwrap();
    b.pool_mut().stack_mut().set_send_window(id, 0);
    assert_eq!(write(&mut b, &bus, at(10), 0, FLAG_PUSH, &[9u8; 100]), 100);
    // Stall grace is 2 s: the pool reaps the non-reader, releases its socket (RST)...
    let mut t = 10;
    while b.pool().counters().reaped == 0 && t < 5_000 {
        t += 100;
        b.service(at(t));
    }
    assert_eq!(b.pool().counters().reaped, 1);
    assert_eq!(b.stats().bytes_dropped, 100);
    assert!(aborted(b.pool().stack(), id));
    // ...but keeps the slot: the pool's own state is what the SAM sees, for as long
    // as the SAM takes.
    for k in 1..=3 {
        b.service(at(t + k * 60_000));
    }
    t += 180_000;
    assert_eq!(b.pool().state(h), Ok(ConnState::Aborted));
    let report = b.pool().slot_report(0, at(t)).unwrap();
    assert_eq!(report.close_reason, Some(CloseReason::Stalled));
    let s = status(&mut b, &bus, at(t + 1), 0);
    assert_eq!((s.state, s.remote_port), (ConnState::Aborted, 50_008));
    assert_eq!(s.other_end_closed_sockets, 1);
    assert_eq!(s.write_buffer_space, 0);
    assert_eq!(write(&mut b, &bus, at(t + 2), 0, FLAG_PUSH, b"late"), -4);
    // The slot number is not reused behind the SAM's back: a new connection gets
    // another slot, shown at once under its own number.
    let id2 = b.pool_mut().stack_mut().peer_connect(HTTP, peer(50_009)).unwrap();
    b.service(at(t + 3));
    assert_eq!(b.pool().free_slots(), 6);
    let s = status(&mut b, &bus, at(t + 4), 1);
    assert_eq!((s.state, s.remote_port), (ConnState::Connected, 50_009));
    assert!(established(b.pool().stack(), id2));
    assert_eq!(status(&mut b, &bus, at(t + 5), 0).state, ConnState::Aborted);
    // The SAM acknowledges with connAbort: now the slot is free.
    assert_eq!(
        cmd(
            &mut b,
            &bus,
            at(t + 6),
            SamHeader::new(Command::ConnAbort, 0, 0, 0, 0, 0),
            &[]
        )
        .0,
        0
    );
    assert_eq!(b.pool().state(h), Ok(ConnState::Free));
    assert!(b.pool().handle_at(0).is_none());
    assert_eq!(status(&mut b, &bus, at(t + 7), 0).state, ConnState::Free);
    assert_eq!(b.pool().free_slots(), 7);
}

#[test]
fn an_idle_timeout_is_held_too_and_conn_close_acknowledges_it() {
    let bus = RefCell::new(MockBus::new());
    let config = Config::new().with_idle_timeout(Some(Duration::from_secs(1)));
    let pool = Pool::new(test_stack(), config);
    let mut b: TestBridge<'_> = Bridge::new(
        pool,
        MockSpi(&bus),
        MockCs(&bus),
        MockReady(&bus),
        MockRequest(&bus),
    );
    b.set_wifi_state(WiFiState::Connected);
    let id = connected(&mut b, &bus, 50_013);
    b.service(at(1_500));
    assert_eq!(b.pool().counters().idle_closed, 1);
    assert!(closed_gracefully(b.pool().stack(), id));
    assert_eq!(status(&mut b, &bus, at(1_501), 0).state, ConnState::Aborted);
    assert_eq!(
        b.pool().slot_report(0, at(1_501)).unwrap().close_reason,
        Some(CloseReason::Idle)
    );
    let close = SamHeader::new(Command::ConnClose, 0, 0, 0, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(1_502), close, &[]).0, 0);
    assert_eq!(status(&mut b, &bus, at(1_503), 0).state, ConnState::Free);
    assert_eq!(b.pool().free_slots(), 8);
}

#[test]
fn listeners_have_caps_ftp_data_is_one_shot_and_zero_stops() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    assert_eq!(listen(&mut b, &bus, at(0), HTTP, 0, 2), 0);
    let stack = b.pool_mut().stack_mut();
    for p in 0..3 {
        stack.peer_connect(HTTP, peer(40_000 + p)).unwrap();
    }
    b.service(at(1));
    assert_eq!(b.pool().free_slots(), 6);
    assert_eq!(b.pool().counters().rejected_port_cap, 1);
    // FTP data: one connection, then the listener is gone.
    assert_eq!(listen(&mut b, &bus, at(2), 1025, Protocol::FtpData.value(), 1), 0);
    b.pool_mut().stack_mut().peer_connect(1025, peer(41_000)).unwrap();
    b.service(at(3));
    assert!(b.pool().listener(1025).is_none());
    assert_eq!(
        b.pool_mut().stack_mut().peer_connect(1025, peer(41_001)),
        Err(PeerRefused::NoListener)
    );
    let s = status(&mut b, &bus, at(4), 2);
    assert_eq!(
        (s.state, s.local_port, s.protocol),
        (ConnState::Connected, 1025, 3)
    );
    // maxConnections 0 stops the HTTP listener; its connections keep running.
    assert_eq!(listen(&mut b, &bus, at(5), HTTP, 0, 0), 0);
    assert!(b.pool().listener(HTTP).is_none());
    assert_eq!(b.pool().free_slots(), 5);
}

#[test]
fn listen_failure_is_reported_through_the_last_error() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    assert_eq!(listen(&mut b, &bus, at(0), HTTP, 0, 4), 0);
    // Same port again with a second listener table full: make the table full first.
    for (i, port) in [81u16, 82, 83].into_iter().enumerate() {
        assert_eq!(listen(&mut b, &bus, at(1 + i as u64), port, 0, 1), 0);
    }
    assert_eq!(listen(&mut b, &bus, at(5), 84, 0, 1), 0);
    assert_eq!(b.last_error(), Some("Listen failed"));
    let h = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, 100, 0);
    let (r, d) = cmd(&mut b, &bus, at(6), h, &[]);
    assert_eq!(r, 14);
    assert_eq!(d, b"Listen failed\0");
    assert_eq!(b.last_error(), None);
}

#[test]
fn connect_is_gated_by_the_link_and_reports_the_socket_number() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let lcd = ListenOrConnectData {
        remote_ip: ip_to_wire(Ipv4Addr::new(10, 0, 0, 2)),
        protocol: Protocol::Ftp.value(),
        port: 21,
        max_connections: 0,
    };
    let h = SamHeader::new(Command::ConnCreate, 0, 0, 12, 0, 0);
    b.set_wifi_state(WiFiState::Idle);
    assert_eq!(
        cmd(&mut b, &bus, at(0), h, &lcd.encode()).0,
        Response::WrongState.code()
    );
    assert_eq!(
        b.pool().counters().connects,
        0,
        "nothing sent while the link is down"
    );
    b.set_wifi_state(WiFiState::Connected);
    b.pool_mut()
        .stack_mut()
        .set_default_connect(ConnectScript::SucceedAfter(2));
    assert_eq!(cmd(&mut b, &bus, at(1), h, &lcd.encode()).0, 0);
    assert_eq!(status(&mut b, &bus, at(2), 0).state, ConnState::Connecting);
    b.service(at(3));
    b.service(at(4));
    let s = status(&mut b, &bus, at(5), 0);
    assert_eq!(
        (s.state, s.remote_port, s.protocol),
        (ConnState::Connected, 21, 1)
    );
    assert_eq!(s.remote_ip.to_le_bytes(), [10, 0, 0, 2]);
    // Wrong length: −5.
    let bad = SamHeader::new(Command::ConnCreate, 0, 0, 8, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(6), bad, &[0; 8]).0, -5);
}

#[test]
fn failed_and_timed_out_connects_show_aborted_and_an_error() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let lcd = ListenOrConnectData {
        remote_ip: ip_to_wire(Ipv4Addr::new(10, 0, 0, 2)),
        protocol: 0,
        port: 80,
        max_connections: 0,
    };
    let h = SamHeader::new(Command::ConnCreate, 0, 0, 12, 0, 0);
    b.pool_mut().stack_mut().set_default_connect(REFUSE);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &lcd.encode()).0, 0);
    let s = status(&mut b, &bus, at(1), 0);
    assert_eq!((s.state, s.remote_port), (ConnState::Aborted, 80));
    assert_eq!(b.last_error(), Some("Connection creation failed"));
    let fetch = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, 100, 0);
    assert!(cmd(&mut b, &bus, at(2), fetch, &[]).0 > 0);
    // Socket 0 is still held (aborted): the next connect gets socket 1, and the
    // pool connects into slot 1 (its first free slot would be 0).
    b.pool_mut()
        .stack_mut()
        .set_default_connect(ConnectScript::NeverComplete);
    assert_eq!(cmd(&mut b, &bus, at(3), h, &lcd.encode()).0, 1);
    assert!(b.pool().handle_at(0).is_none());
    assert!(b.pool().handle_at(1).is_some());
    b.service(at(5_000));
    assert_eq!(status(&mut b, &bus, at(5_001), 1).state, ConnState::Connecting);
    // The connect times out (10 s): aborted, with an error message for the SAM.
    b.service(at(10_005));
    assert_eq!(status(&mut b, &bus, at(10_006), 1).state, ConnState::Aborted);
    assert_eq!(b.last_error(), Some("Connection creation failed"));
    assert_eq!(
        b.pool().counters().connect_failed,
        2,
        "both failures counted, by the pool"
    );
    for socket in [0, 1] {
        let abort = SamHeader::new(Command::ConnAbort, socket, 0, 0, 0, 0);
        assert_eq!(cmd(&mut b, &bus, at(10_007), abort, &[]).0, 0);
        assert_eq!(status(&mut b, &bus, at(10_008), socket).state, ConnState::Free);
    }
    assert_eq!(b.pool().free_slots(), 8);
}

#[test]
fn conn_create_connects_into_the_socket_number_it_replied() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    // Socket 0: an accepted connection the SAM has closed while its bytes still go
    // out (it reads `free`, the pool slot is still in use).
    let id = connected(&mut b, &bus, 50_014);
    b.pool_mut().stack_mut().set_send_window(id, 0);
    let flags = FLAG_PUSH | FLAG_CLOSE_AFTER_WRITE;
    assert_eq!(write(&mut b, &bus, at(2), 0, flags, b"bye"), 3);
    assert_eq!(status(&mut b, &bus, at(3), 0).state, ConnState::Free);
    assert!(b.pool().handle_at(0).is_some());
    // Socket 1: a refused connect the SAM has not acknowledged (pool slot 1 free).
    let lcd = ListenOrConnectData {
        remote_ip: ip_to_wire(Ipv4Addr::new(10, 0, 0, 3)),
        protocol: Protocol::Telnet.value(),
        port: 23,
        max_connections: 0,
    };
    let create = SamHeader::new(Command::ConnCreate, 0, 0, 12, 0, 0);
    b.pool_mut().stack_mut().set_default_connect(REFUSE);
    assert_eq!(cmd(&mut b, &bus, at(4), create, &lcd.encode()).0, 1);
    assert!(b.pool().handle_at(1).is_none());
    // The next connect is announced as socket 2 and lands in pool slot 2.
    b.pool_mut()
        .stack_mut()
        .set_default_connect(ConnectScript::SucceedAfter(0));
    assert_eq!(cmd(&mut b, &bus, at(5), create, &lcd.encode()).0, 2);
    let h = b.pool().handle_at(2).expect("the pool connected into slot 2");
    assert_eq!(h.slot(), 2);
    assert!(b.pool().handle_at(1).is_none());
    let s = status(&mut b, &bus, at(6), 2);
    assert_eq!(
        (s.state, s.remote_port, s.protocol),
        (ConnState::Connected, 23, 2)
    );
    // An incoming connection now takes pool slot 1 but stays unseen: the SAM still
    // holds number 1 as aborted. It is shown once the SAM lets go.
    assert_eq!(listen(&mut b, &bus, at(7), HTTP, 0, 4), 0);
    b.pool_mut().stack_mut().peer_connect(HTTP, peer(50_015)).unwrap();
    b.service(at(8));
    assert!(b.pool().handle_at(1).is_some());
    assert_eq!(status(&mut b, &bus, at(9), 1).state, ConnState::Aborted);
    let abort = SamHeader::new(Command::ConnAbort, 1, 0, 0, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(10), abort, &[]).0, 0);
    b.service(at(11));
    let s = status(&mut b, &bus, at(12), 1);
    assert_eq!((s.state, s.remote_port), (ConnState::Connected, 50_015));
}

#[test]
fn network_status_is_168_bytes_and_host_name_takes_exactly_64() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let mut name = [0u8; 64];
    name[..7].copy_from_slice(b"printer");
    let h = SamHeader::new(Command::NetworkSetHostName, 0, 0, 64, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &name).0, 0);
    assert_eq!(b.host_name(), b"printer");
    let h = SamHeader::new(Command::NetworkSetHostName, 0, 0, 63, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(1), h, &name[..63]).0, -5);
    b.network_status_mut().rssi = -55;
    let h = SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, 168, 0);
    let (r, d) = cmd(&mut b, &bus, at(2), h, &[]);
    assert_eq!(r, 168);
    let s = NetworkStatusResponse::decode(&d).unwrap();
    assert_eq!(c_str(&s.host_name), b"printer");
    assert_eq!(s.rssi, -55);
    // An older SAM with a 144-byte buffer gets the prefix; under 140 is refused.
    let h = SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, 144, 0);
    assert_eq!(cmd(&mut b, &bus, at(3), h, &[]).0, 144);
    let h = SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, 100, 0);
    assert_eq!(cmd(&mut b, &bus, at(4), h, &[]).0, -9);
}

#[test]
fn status_changes_pulse_the_request_pin_until_fetched() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    b.start(at(0));
    assert_eq!(bus.borrow().request_rises, 1);
    assert!(bus.borrow().request);
    // The startup state is waiting: pulses every 200 ms, none in between.
    b.service(at(100));
    assert_eq!(bus.borrow().request_rises, 1);
    b.service(at(200));
    assert_eq!(bus.borrow().request_rises, 2);
    b.service(at(300));
    assert_eq!(bus.borrow().request_rises, 2);
    b.service(at(400));
    assert_eq!(bus.borrow().request_rises, 3);
    assert!(bus.borrow().request, "idle high");
    let h = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, 100, 0);
    assert_eq!(cmd(&mut b, &bus, at(401), h, &[]).0, 0);
    for t in (500..2000).step_by(100) {
        b.service(at(t));
    }
    assert_eq!(bus.borrow().request_rises, 3, "nothing more to fetch");
    // A new state pulses at once.
    b.set_wifi_state(WiFiState::Reconnecting);
    b.service(at(2001));
    assert_eq!(bus.borrow().request_rises, 4);
    assert_eq!(b.stats().request_pulses, 3);
}

#[test]
fn mode_changes_reply_at_once_and_leave_the_work_to_the_platform() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let h = SamHeader::new(Command::NetworkStartClient, 0, 0, 32, 0, 0);
    let mut ssid = [0u8; 32];
    ssid[..4].copy_from_slice(b"shop");
    assert_eq!(cmd(&mut b, &bus, at(0), h, &ssid).0, -4, "already connected");
    let id = connected(&mut b, &bus, 50_010);
    let h = SamHeader::new(Command::NetworkStop, 0, 0, 0, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(2), h, &[]).0, 0);
    assert_eq!(b.take_mode_request(), Some(esp8266_bridge::ModeRequest::Stop));
    assert_eq!(b.pool().free_slots(), 8);
    assert!(b.pool().listener(HTTP).is_none());
    assert!(aborted(b.pool().stack(), id));
    b.set_wifi_state(WiFiState::Idle);
    let h = SamHeader::new(Command::NetworkStartClient, 0, 0, 32, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(3), h, &ssid).0, 0);
    match b.take_mode_request() {
        Some(esp8266_bridge::ModeRequest::StartClient { ssid }) => assert_eq!(c_str(&ssid), b"shop"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn diagnostics_reply_zero_and_leave_a_report() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    connected(&mut b, &bus, 50_011);
    let h = SamHeader::new(Command::Diagnostics, 0, 0, 0, 0, 0);
    assert_eq!(cmd(&mut b, &bus, at(2), h, &[]).0, 0);
    let report = b.take_diagnostics().expect("a report");
    assert_eq!(report.free_slots(), 7);
    assert_eq!(report.counters.accepted, 1);
    assert!(b.take_diagnostics().is_none());
}

#[test]
fn tx_power_and_clock_control_are_recorded() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    assert_eq!(
        cmd(
            &mut b,
            &bus,
            at(0),
            SamHeader::new(Command::NetworkSetTxPower, 0, 60, 0, 0, 0),
            &[]
        )
        .0,
        0
    );
    assert_eq!(
        cmd(
            &mut b,
            &bus,
            at(0),
            SamHeader::new(Command::NetworkSetTxPower, 0, 83, 0, 0, 0),
            &[]
        )
        .0,
        -11
    );
    assert_eq!(b.tx_power(), Some(60));
    let h = SamHeader::new(Command::NetworkSetClockControl, 0, 0, 0, 0, 0x2001);
    assert_eq!(cmd(&mut b, &bus, at(0), h, &[]).0, 0);
    assert_eq!(b.clock_control(), Some(0x2001));
}

#[test]
fn writes_to_sockets_without_a_connection_are_wrong_state() {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    assert_eq!(write(&mut b, &bus, at(0), 3, FLAG_PUSH, b"x"), -4);
    assert_eq!(read(&mut b, &bus, at(0), 3, 100), b"");
}
