//! The bridge's command semantics on the bridge package's test stack (netpool-testkit's
//! scripted stack, `esp8266_bridge::mock::TestStack`) and simulated SAM
//! (`esp8266_bridge::mock::MockBus`), on the target CPU: the scenarios of the package's
//! `tests/bridge.rs`, without `std` (replies are kept in a fixed buffer).

use core::cell::RefCell;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddr};

use esp8266_bridge::mock::*;
use esp8266_bridge::protocol::*;
use esp8266_bridge::{Bridge, ModeRequest};
use netpool::stack::SendFlag;
use netpool::{CloseReason, Config, ConnState, Duration, Instant, Pool};

use crate::harness::{Ctx, Outcome, Test};
use crate::{ensure, ensure_eq};

type TestBridge<'a> = Bridge<TestStack, MockSpi<'a>, MockCs<'a>, MockReady<'a>, MockRequest<'a>, 4, 0>;

pub const TESTS: &[Test] = &[
    (
        "free_socket_status_is_twenty_bytes_with_empty_bitmaps",
        free_socket_status,
    ),
    ("protocol_errors_get_their_codes", protocol_errors_get_their_codes),
    (
        "incoming_connection_is_shown_with_its_addresses_and_data",
        incoming_connection,
    ),
    (
        "other_end_closed_is_reported_only_once_the_data_is_read",
        other_end_closed,
    ),
    ("read_is_capped_at_the_transfer_maximum", read_is_capped),
    (
        "write_promises_only_what_is_buffered_and_push_applies_when_all_is_taken",
        write_promises,
    ),
    ("a_late_push_reaches_the_wire_without_a_kept_back_byte", late_push),
    (
        "unpushed_bytes_go_out_after_the_coalescing_delay",
        unpushed_bytes_go_out,
    ),
    (
        "close_after_write_sends_everything_then_closes",
        close_after_write,
    ),
    (
        "close_flag_is_ignored_when_not_every_byte_is_accepted",
        close_flag_ignored,
    ),
    ("abort_frees_the_slot_with_a_reset", abort_frees_the_slot),
    (
        "a_reaped_connection_is_reported_aborted_until_the_sam_acknowledges",
        reaped_connection_stays_aborted,
    ),
    (
        "an_idle_timeout_is_held_too_and_conn_close_acknowledges_it",
        idle_timeout_held,
    ),
    (
        "listeners_have_caps_ftp_data_is_one_shot_and_zero_stops",
        listeners,
    ),
    (
        "listen_failure_is_reported_through_the_last_error",
        listen_failure,
    ),
    (
        "connect_is_gated_by_the_link_and_reports_the_socket_number",
        connect_gated,
    ),
    (
        "failed_and_timed_out_connects_show_aborted_and_an_error",
        failed_connects,
    ),
    (
        "conn_create_connects_into_the_socket_number_it_replied",
        connect_into_replied_slot,
    ),
    (
        "network_status_is_168_bytes_and_host_name_takes_exactly_64",
        network_status,
    ),
    (
        "status_changes_pulse_the_request_pin_until_fetched",
        request_pin_pulses,
    ),
    (
        "mode_changes_reply_at_once_and_leave_the_work_to_the_platform",
        mode_changes,
    ),
    ("diagnostics_reply_zero_and_leave_a_report", diagnostics),
    (
        "tx_power_and_clock_control_are_recorded",
        tx_power_and_clock_control,
    ),
    (
        "writes_to_sockets_without_a_connection_are_wrong_state",
        writes_without_connection,
    ),
];

/// One line of RAM facts: the test bridge (bridge state, pool and test stack), the
/// test stack alone, the simulated SAM's end of the bus.
pub fn print_sizes(out: &mut dyn fmt::Write) {
    let bridge = core::mem::size_of::<TestBridge<'static>>();
    let stack = core::mem::size_of::<TestStack>();
    let _ = writeln!(
        out,
        "sizes: test bridge {bridge} bytes = bridge and pool {} + test stack {stack}; mock bus {}",
        bridge - stack,
        core::mem::size_of::<MockBus>()
    );
}

const HTTP: u16 = 80;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(192, 168, 1, 20).into(), port)
}

/// The bridge under test: the host tests' fixture (there with a `with_config` that
/// restates the default `BridgeConfig`). Inlined: every by-value move of this
/// 110 KiB value can cost a stack copy.
#[inline(always)]
fn bridge(bus: &RefCell<MockBus>) -> TestBridge<'_> {
    let config = Config::new().with_stall_grace(Duration::from_secs(2));
    let mut b = Bridge::new(
        Pool::new(test_stack(), config),
        MockSpi(bus),
        MockCs(bus),
        MockReady(bus),
        MockRequest(bus),
    );
    b.set_wifi_state(WiFiState::Connected);
    b
}

/// The data of a reply (what `Vec<u8>` is in the host tests).
struct Data {
    bytes: [u8; MAX_DATA_LENGTH],
    len: usize,
}

impl Data {
    fn get(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// One transaction: arm, serve, return the reply's response code and data.
fn cmd(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    header: SamHeader,
    data: &[u8],
) -> Result<(i32, Data), crate::harness::Fail> {
    bus.borrow_mut().arm(&header, data);
    let done = bus.borrow().completed;
    b.service(now);
    let bus = bus.borrow();
    ensure_eq!(t, bus.completed, done + 1, "the transfer was served");
    ensure!(t, !bus.selected, "chip select released");
    let reply = bus.reply();
    ensure!(t, reply.is_some(), "a reply header");
    let Some((h, d)) = reply else { unreachable!() };
    ensure_eq!(t, h.format_version, FORMAT_VERSION);
    let mut out = Data {
        bytes: [0; MAX_DATA_LENGTH],
        len: d.len(),
    };
    out.bytes[..d.len()].copy_from_slice(d);
    Ok((h.response, out))
}

/// `cmd`, response code only.
fn code(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    header: SamHeader,
    data: &[u8],
) -> Result<i32, crate::harness::Fail> {
    Ok(cmd(t, b, bus, now, header, data)?.0)
}

fn status(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    socket: u8,
) -> Result<ConnStatusResponse, crate::harness::Fail> {
    let (r, d) = cmd(
        t,
        b,
        bus,
        now,
        SamHeader::new(Command::ConnGetStatus, socket, 0, 0, 20, 0),
        &[],
    )?;
    ensure_eq!(t, r, 20);
    let s = ConnStatusResponse::decode(d.get());
    ensure!(t, s.is_ok(), "{:?}", s);
    Ok(s.unwrap_or_else(|_| unreachable!()))
}

fn listen(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    port: u16,
    protocol: u8,
    max: u16,
) -> Result<i32, crate::harness::Fail> {
    let lcd = ListenOrConnectData {
        remote_ip: 0,
        protocol,
        port,
        max_connections: max,
    };
    code(
        t,
        b,
        bus,
        now,
        SamHeader::new(Command::NetworkListen, 0, 0, 12, 0, 0),
        &lcd.encode(),
    )
}

fn write(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    socket: u8,
    flags: u8,
    data: &[u8],
) -> Result<i32, crate::harness::Fail> {
    let h = SamHeader::new(Command::ConnWrite, socket, flags, data.len() as u16, 0, 0);
    code(t, b, bus, now, h, data)
}

fn read(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    now: Instant,
    socket: u8,
    room: u16,
) -> Result<Data, crate::harness::Fail> {
    let (r, d) = cmd(
        t,
        b,
        bus,
        now,
        SamHeader::new(Command::ConnRead, socket, 0, 0, room, 0),
        &[],
    )?;
    ensure!(t, r >= 0, "response {}", r);
    ensure_eq!(t, d.len, r as usize);
    Ok(d)
}

/// A connected HTTP socket 0 with its peer on the test stack.
fn connected(
    t: &mut Ctx<'_>,
    b: &mut TestBridge<'_>,
    bus: &RefCell<MockBus>,
    remote_port: u16,
) -> Result<PeerId, crate::harness::Fail> {
    ensure_eq!(t, listen(t, b, bus, at(0), HTTP, 0, 4)?, 0);
    let id = b.pool_mut().stack_mut().peer_connect(HTTP, peer(remote_port));
    ensure!(t, id.is_ok(), "the listener takes the connection: {:?}", id);
    b.service(at(1));
    let Ok(id) = id else { unreachable!() };
    Ok(id)
}

fn window(b: &mut TestBridge<'_>, id: PeerId, window: usize) {
    b.pool_mut().stack_mut().set_send_window(id, window);
}

/// The test stack under the bridge.
fn stack<'b>(b: &'b TestBridge<'_>) -> &'b TestStack {
    b.pool().stack()
}

// ------------------------------------------------------------------------ tests

fn free_socket_status(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let s = status(t, &mut b, &bus, at(0), 5)?;
    ensure_eq!(t, s.state, ConnState::Free);
    ensure_eq!(t, s.socket_number, 5);
    ensure_eq!(t, (s.connected_sockets, s.other_end_closed_sockets), (0, 0));
    ensure_eq!(t, s.write_buffer_space, 0);
    Ok(())
}

fn protocol_errors_get_their_codes(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let mut h = SamHeader::new(Command::ConnGetStatus, 0, 0, 0, 20, 0);
    h.format_version = 0x3D;
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, -2);
    let h = SamHeader::new(Command::ConnWrite, 0, 0, 2049, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, -5);
    let h = SamHeader::new(Command::ConnRead, 8, 0, 0, 100, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, -11);
    let mut h = SamHeader::new(Command::NullCommand, 0, 0, 0, 0, 0);
    h.command = 200;
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, -1);
    let h = SamHeader::new(Command::NetworkAddSsid, 0, 0, 112, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[0; 112])?, -1);
    // networkListen with a bad length gets a response word (the original sent none).
    let h = SamHeader::new(Command::NetworkListen, 0, 0, 8, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[0; 8])?, -5);
    let h = SamHeader::new(Command::NullCommand, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, 0);
    let stats = b.stats();
    ensure_eq!(
        t,
        (
            stats.bad_format_version,
            stats.bad_data_length,
            stats.bad_parameter,
            stats.unknown_command
        ),
        (1, 2, 1, 2)
    );
    Ok(())
}

fn incoming_connection(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_000)?;
    b.pool_mut().stack_mut().peer_send(id, b"GET / HTTP/1.1\r\n\r\n");
    b.service(at(2));
    let s = status(t, &mut b, &bus, at(3), 0)?;
    ensure_eq!(t, s.state, ConnState::Connected);
    ensure_eq!(t, (s.local_port, s.remote_port), (HTTP, 50_000));
    ensure_eq!(t, s.remote_ip.to_le_bytes(), [192, 168, 1, 20]);
    ensure_eq!(t, s.bytes_available, 18);
    ensure_eq!(t, s.write_buffer_space, 2048);
    ensure_eq!(t, s.connected_sockets, 1);
    // connRead gives at most what the SAM has room for.
    ensure_eq!(t, read(t, &mut b, &bus, at(4), 0, 4)?.get(), b"GET ");
    ensure_eq!(
        t,
        read(t, &mut b, &bus, at(5), 0, 2048)?.get(),
        b"/ HTTP/1.1\r\n\r\n"
    );
    ensure_eq!(t, read(t, &mut b, &bus, at(6), 0, 2048)?.get(), b"");
    Ok(())
}

fn other_end_closed(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_001)?;
    let stack = b.pool_mut().stack_mut();
    stack.peer_send(id, b"last words");
    stack.peer_fin(id);
    b.service(at(2));
    let s = status(t, &mut b, &bus, at(3), 0)?;
    ensure_eq!(t, (s.state, s.bytes_available), (ConnState::Connected, 10));
    ensure_eq!(t, read(t, &mut b, &bus, at(4), 0, 2048)?.get(), b"last words");
    b.service(at(5));
    let s = status(t, &mut b, &bus, at(6), 0)?;
    ensure_eq!(t, s.state, ConnState::OtherEndClosed);
    ensure_eq!(t, (s.connected_sockets, s.other_end_closed_sockets), (0, 1));
    // The SAM closes: free at once.
    let h = SamHeader::new(Command::ConnClose, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(7), h, &[])?, 0);
    ensure_eq!(t, status(t, &mut b, &bus, at(8), 0)?.state, ConnState::Free);
    ensure_eq!(t, b.pool().free_slots(), 8);
    Ok(())
}

fn read_is_capped(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_002)?;
    b.pool_mut().stack_mut().peer_send(id, &[7u8; 2048]);
    b.service(at(2));
    let mut h = SamHeader::new(Command::ConnRead, 0, 0, 0, u16::MAX, 0);
    h.data_buffer_available = 4096;
    let (r, d) = cmd(t, &mut b, &bus, at(3), h, &[])?;
    ensure_eq!(t, (r, d.len), (2048, 2048));
    Ok(())
}

fn write_promises(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_003)?;
    // The peer does not read: the stack takes nothing.
    window(&mut b, id, 0);
    ensure_eq!(t, write(t, &mut b, &bus, at(2), 0, 0, &[1u8; 1500])?, 1500);
    ensure_eq!(t, status(t, &mut b, &bus, at(3), 0)?.write_buffer_space, 548);
    // A pushed write bigger than the space: partial, and the push is not applied.
    ensure_eq!(t, write(t, &mut b, &bus, at(4), 0, FLAG_PUSH, &[2u8; 1000])?, 548);
    ensure_eq!(t, status(t, &mut b, &bus, at(5), 0)?.write_buffer_space, 0);
    ensure_eq!(t, write(t, &mut b, &bus, at(6), 0, FLAG_PUSH, &[3u8; 10])?, 0);
    // The peer opens its window: every byte goes to the stack, with MORE (no push was
    // applied), and the stack holds them...
    window(&mut b, id, usize::MAX);
    b.service(at(7));
    let st = stack(&b);
    ensure_eq!(t, st.sent_total(id), 2048, "nothing kept back");
    ensure_eq!(
        t,
        (st.last_flag(id), st.pushes(id), st.held(id)),
        (Some(SendFlag::More), 0, 2048)
    );
    // ...until a zero-length push, a flush: the stack sends what it holds.
    ensure_eq!(t, write(t, &mut b, &bus, at(8), 0, FLAG_PUSH, &[])?, 0);
    let st = stack(&b);
    ensure_eq!(
        t,
        (st.sent_total(id), st.on_wire(id), st.stack_pushes(id)),
        (2048, 2048, 1)
    );
    ensure_eq!(t, &st.peer_sent(id)[1499..1501], &[1, 2]);
    ensure_eq!(t, b.stats().bytes_from_sam, 2048);
    Ok(())
}

fn late_push(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_012)?;
    // A response head written with MORE: every byte goes to the stack at once, which
    // holds them for the body.
    ensure_eq!(
        t,
        write(t, &mut b, &bus, at(10), 0, 0, b"HTTP/1.1 200 OK\r\n\r\n")?,
        19
    );
    let st = stack(&b);
    ensure_eq!(t, st.peer_sent(id), b"HTTP/1.1 200 OK\r\n\r\n");
    ensure_eq!(
        t,
        (st.last_flag(id), st.held(id), st.on_wire(id)),
        (Some(SendFlag::More), 19, 0)
    );
    ensure_eq!(t, b.buffered(0), Some((0, 0)), "the bridge keeps no byte back");
    // The SAM ends the message late with a zero-length push: on the wire at once,
    // long before the pool's coalescing delay, with no byte to carry the push.
    ensure_eq!(t, write(t, &mut b, &bus, at(20), 0, FLAG_PUSH, &[])?, 0);
    let st = stack(&b);
    ensure_eq!(
        t,
        (st.held(id), st.on_wire(id), st.stack_pushes(id), st.pushes(id)),
        (0, 19, 1, 0)
    );
    // The push is not repeated on later passes.
    b.service(at(30));
    b.service(at(10 + 300));
    ensure_eq!(t, stack(&b).stack_pushes(id), 1);
    Ok(())
}

fn unpushed_bytes_go_out(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_004)?;
    ensure_eq!(t, write(t, &mut b, &bus, at(10), 0, 0, b"hello")?, 5);
    let st = stack(&b);
    ensure_eq!(t, (st.peer_sent(id), st.held(id)), (&b"hello"[..], 5));
    b.service(at(100));
    ensure_eq!(t, stack(&b).held(id), 5);
    // The pool's coalescing delay (200 ms) expires: it pushes them itself.
    b.service(at(10 + 200));
    let st = stack(&b);
    ensure_eq!(t, (st.on_wire(id), st.held(id), st.stack_pushes(id)), (5, 0, 1));
    Ok(())
}

fn close_after_write(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_005)?;
    window(&mut b, id, 3);
    let flags = FLAG_PUSH | FLAG_CLOSE_AFTER_WRITE;
    ensure_eq!(
        t,
        write(t, &mut b, &bus, at(2), 0, flags, b"HTTP/1.1 200 OK\r\n")?,
        17
    );
    // The SAM let go: free at once, the bytes are still being handed over.
    ensure_eq!(t, status(t, &mut b, &bus, at(3), 0)?.state, ConnState::Free);
    ensure_eq!(t, stack(&b).sent_total(id), 3);
    window(&mut b, id, usize::MAX);
    b.service(at(4));
    let st = stack(&b);
    ensure_eq!(t, st.peer_sent(id), b"HTTP/1.1 200 OK\r\n");
    ensure_eq!(t, st.last_flag(id), Some(SendFlag::Push));
    ensure!(t, closed_gracefully(st, id));
    ensure_eq!(t, b.pool().free_slots(), 8);
    Ok(())
}

fn close_flag_ignored(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_006)?;
    window(&mut b, id, 0);
    ensure_eq!(t, write(t, &mut b, &bus, at(2), 0, 0, &[0u8; 2000])?, 2000);
    ensure_eq!(
        t,
        write(t, &mut b, &bus, at(3), 0, FLAG_CLOSE_AFTER_WRITE, &[0u8; 100])?,
        48
    );
    ensure_eq!(t, status(t, &mut b, &bus, at(4), 0)?.state, ConnState::Connected);
    Ok(())
}

fn abort_frees_the_slot(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_007)?;
    let abort = SamHeader::new(Command::ConnAbort, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(2), abort, &[])?, 0);
    ensure!(t, aborted(stack(&b), id));
    ensure_eq!(t, status(t, &mut b, &bus, at(3), 0)?.state, ConnState::Free);
    // Idempotent.
    ensure_eq!(t, code(t, &mut b, &bus, at(4), abort, &[])?, 0);
    Ok(())
}

fn reaped_connection_stays_aborted(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let id = connected(t, &mut b, &bus, 50_008)?;
    let h = b.pool().handle_at(0);
    ensure!(t, h.is_some());
    let h = h.unwrap_or_else(|| unreachable!());
    window(&mut b, id, 0);
    ensure_eq!(t, write(t, &mut b, &bus, at(10), 0, FLAG_PUSH, &[9u8; 100])?, 100);
    // Stall grace is 2 s: the pool reaps the non-reader, releases its socket (RST)...
    let mut now = 10;
    while b.pool().counters().reaped == 0 && now < 5_000 {
        now += 100;
        b.service(at(now));
    }
    ensure_eq!(t, b.pool().counters().reaped, 1);
    ensure_eq!(t, b.stats().bytes_dropped, 100);
    ensure!(t, aborted(stack(&b), id));
    // ...but keeps the slot: the pool's own state is what the SAM sees, for as long
    // as the SAM takes.
    for k in 1..=3 {
        b.service(at(now + k * 60_000));
    }
    now += 180_000;
    ensure_eq!(t, b.pool().state(h), Ok(ConnState::Aborted));
    let reason = b.pool().slot_report(0, at(now)).and_then(|r| r.close_reason);
    ensure_eq!(t, reason, Some(CloseReason::Stalled));
    let s = status(t, &mut b, &bus, at(now + 1), 0)?;
    ensure_eq!(t, (s.state, s.remote_port), (ConnState::Aborted, 50_008));
    ensure_eq!(t, s.other_end_closed_sockets, 1);
    ensure_eq!(t, s.write_buffer_space, 0);
    ensure_eq!(t, write(t, &mut b, &bus, at(now + 2), 0, FLAG_PUSH, b"late")?, -4);
    // The slot number is not reused behind the SAM's back: a new connection gets
    // another slot, shown at once under its own number.
    let id2 = b.pool_mut().stack_mut().peer_connect(HTTP, peer(50_009));
    ensure!(t, id2.is_ok(), "{:?}", id2);
    let Ok(id2) = id2 else { unreachable!() };
    b.service(at(now + 3));
    ensure_eq!(t, b.pool().free_slots(), 6);
    let s = status(t, &mut b, &bus, at(now + 4), 1)?;
    ensure_eq!(t, (s.state, s.remote_port), (ConnState::Connected, 50_009));
    ensure!(t, established(stack(&b), id2));
    ensure_eq!(
        t,
        status(t, &mut b, &bus, at(now + 5), 0)?.state,
        ConnState::Aborted
    );
    // The SAM acknowledges with connAbort: now the slot is free.
    let abort = SamHeader::new(Command::ConnAbort, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(now + 6), abort, &[])?, 0);
    ensure_eq!(t, b.pool().state(h), Ok(ConnState::Free));
    ensure!(t, b.pool().handle_at(0).is_none());
    ensure_eq!(t, status(t, &mut b, &bus, at(now + 7), 0)?.state, ConnState::Free);
    ensure_eq!(t, b.pool().free_slots(), 7);
    Ok(())
}

fn idle_timeout_held(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let config = Config::new().with_idle_timeout(Some(Duration::from_secs(1)));
    let mut b: TestBridge<'_> = Bridge::new(
        Pool::new(test_stack(), config),
        MockSpi(&bus),
        MockCs(&bus),
        MockReady(&bus),
        MockRequest(&bus),
    );
    b.set_wifi_state(WiFiState::Connected);
    let id = connected(t, &mut b, &bus, 50_013)?;
    b.service(at(1_500));
    ensure_eq!(t, b.pool().counters().idle_closed, 1);
    ensure!(t, closed_gracefully(stack(&b), id));
    ensure_eq!(
        t,
        status(t, &mut b, &bus, at(1_501), 0)?.state,
        ConnState::Aborted
    );
    let reason = b.pool().slot_report(0, at(1_501)).and_then(|r| r.close_reason);
    ensure_eq!(t, reason, Some(CloseReason::Idle));
    let close = SamHeader::new(Command::ConnClose, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(1_502), close, &[])?, 0);
    ensure_eq!(t, status(t, &mut b, &bus, at(1_503), 0)?.state, ConnState::Free);
    ensure_eq!(t, b.pool().free_slots(), 8);
    Ok(())
}

fn listeners(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    ensure_eq!(t, listen(t, &mut b, &bus, at(0), HTTP, 0, 2)?, 0);
    let stack = b.pool_mut().stack_mut();
    for p in 0..3 {
        ensure!(t, stack.peer_connect(HTTP, peer(40_000 + p)).is_ok());
    }
    b.service(at(1));
    ensure_eq!(t, b.pool().free_slots(), 6);
    ensure_eq!(t, b.pool().counters().rejected_port_cap, 1);
    // FTP data: one connection, then the listener is gone.
    ensure_eq!(
        t,
        listen(t, &mut b, &bus, at(2), 1025, Protocol::FtpData.value(), 1)?,
        0
    );
    ensure!(
        t,
        b.pool_mut().stack_mut().peer_connect(1025, peer(41_000)).is_ok()
    );
    b.service(at(3));
    ensure!(t, b.pool().listener(1025).is_none());
    ensure_eq!(
        t,
        b.pool_mut().stack_mut().peer_connect(1025, peer(41_001)),
        Err(PeerRefused::NoListener)
    );
    let s = status(t, &mut b, &bus, at(4), 2)?;
    ensure_eq!(
        t,
        (s.state, s.local_port, s.protocol),
        (ConnState::Connected, 1025, 3)
    );
    // maxConnections 0 stops the HTTP listener; its connections keep running.
    ensure_eq!(t, listen(t, &mut b, &bus, at(5), HTTP, 0, 0)?, 0);
    ensure!(t, b.pool().listener(HTTP).is_none());
    ensure_eq!(t, b.pool().free_slots(), 5);
    Ok(())
}

fn listen_failure(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    ensure_eq!(t, listen(t, &mut b, &bus, at(0), HTTP, 0, 4)?, 0);
    // Fill the pool's four listener slots, then ask for a fifth port.
    for (i, port) in [81u16, 82, 83].into_iter().enumerate() {
        ensure_eq!(t, listen(t, &mut b, &bus, at(1 + i as u64), port, 0, 1)?, 0);
    }
    ensure_eq!(t, listen(t, &mut b, &bus, at(5), 84, 0, 1)?, 0);
    ensure_eq!(t, b.last_error(), Some("Listen failed"));
    let h = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, 100, 0);
    let (r, d) = cmd(t, &mut b, &bus, at(6), h, &[])?;
    ensure_eq!(t, r, 14);
    ensure_eq!(t, d.get(), b"Listen failed\0");
    ensure_eq!(t, b.last_error(), None);
    Ok(())
}

fn connect_gated(t: &mut Ctx<'_>) -> Outcome {
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
    ensure_eq!(
        t,
        code(t, &mut b, &bus, at(0), h, &lcd.encode())?,
        Response::WrongState.code()
    );
    ensure_eq!(
        t,
        b.pool().counters().connects,
        0,
        "nothing sent while the link is down"
    );
    b.set_wifi_state(WiFiState::Connected);
    b.pool_mut()
        .stack_mut()
        .set_default_connect(ConnectScript::SucceedAfter(2));
    ensure_eq!(t, code(t, &mut b, &bus, at(1), h, &lcd.encode())?, 0);
    ensure_eq!(t, status(t, &mut b, &bus, at(2), 0)?.state, ConnState::Connecting);
    b.service(at(3));
    b.service(at(4));
    let s = status(t, &mut b, &bus, at(5), 0)?;
    ensure_eq!(
        t,
        (s.state, s.remote_port, s.protocol),
        (ConnState::Connected, 21, 1)
    );
    ensure_eq!(t, s.remote_ip.to_le_bytes(), [10, 0, 0, 2]);
    // Wrong length: −5.
    let bad = SamHeader::new(Command::ConnCreate, 0, 0, 8, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(6), bad, &[0; 8])?, -5);
    Ok(())
}

fn failed_connects(t: &mut Ctx<'_>) -> Outcome {
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
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &lcd.encode())?, 0);
    let s = status(t, &mut b, &bus, at(1), 0)?;
    ensure_eq!(t, (s.state, s.remote_port), (ConnState::Aborted, 80));
    ensure_eq!(t, b.last_error(), Some("Connection creation failed"));
    let fetch = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, 100, 0);
    ensure!(t, code(t, &mut b, &bus, at(2), fetch, &[])? > 0);
    // Socket 0 is still held (aborted): the next connect gets socket 1, and the
    // pool connects into slot 1 (its first free slot would be 0).
    b.pool_mut()
        .stack_mut()
        .set_default_connect(ConnectScript::NeverComplete);
    ensure_eq!(t, code(t, &mut b, &bus, at(3), h, &lcd.encode())?, 1);
    ensure!(t, b.pool().handle_at(0).is_none());
    ensure!(t, b.pool().handle_at(1).is_some());
    b.service(at(5_000));
    ensure_eq!(
        t,
        status(t, &mut b, &bus, at(5_001), 1)?.state,
        ConnState::Connecting
    );
    // The connect times out (10 s): aborted, with an error message for the SAM.
    b.service(at(10_005));
    ensure_eq!(
        t,
        status(t, &mut b, &bus, at(10_006), 1)?.state,
        ConnState::Aborted
    );
    ensure_eq!(t, b.last_error(), Some("Connection creation failed"));
    ensure_eq!(t, b.pool().counters().connect_failed, 2, "both failures counted, by the pool");
    for socket in [0, 1] {
        let abort = SamHeader::new(Command::ConnAbort, socket, 0, 0, 0, 0);
        ensure_eq!(t, code(t, &mut b, &bus, at(10_007), abort, &[])?, 0);
        ensure_eq!(
            t,
            status(t, &mut b, &bus, at(10_008), socket)?.state,
            ConnState::Free
        );
    }
    ensure_eq!(t, b.pool().free_slots(), 8);
    Ok(())
}

fn connect_into_replied_slot(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    // Socket 0: an accepted connection the SAM has closed while its bytes still go
    // out (it reads `free`, the pool slot is still in use).
    let id = connected(t, &mut b, &bus, 50_014)?;
    window(&mut b, id, 0);
    let flags = FLAG_PUSH | FLAG_CLOSE_AFTER_WRITE;
    ensure_eq!(t, write(t, &mut b, &bus, at(2), 0, flags, b"bye")?, 3);
    ensure_eq!(t, status(t, &mut b, &bus, at(3), 0)?.state, ConnState::Free);
    ensure!(t, b.pool().handle_at(0).is_some());
    // Socket 1: a refused connect the SAM has not acknowledged (pool slot 1 free).
    let lcd = ListenOrConnectData {
        remote_ip: ip_to_wire(Ipv4Addr::new(10, 0, 0, 3)),
        protocol: Protocol::Telnet.value(),
        port: 23,
        max_connections: 0,
    };
    let create = SamHeader::new(Command::ConnCreate, 0, 0, 12, 0, 0);
    b.pool_mut().stack_mut().set_default_connect(REFUSE);
    ensure_eq!(t, code(t, &mut b, &bus, at(4), create, &lcd.encode())?, 1);
    ensure!(t, b.pool().handle_at(1).is_none());
    // The next connect is announced as socket 2 and lands in pool slot 2.
    b.pool_mut()
        .stack_mut()
        .set_default_connect(ConnectScript::SucceedAfter(0));
    ensure_eq!(t, code(t, &mut b, &bus, at(5), create, &lcd.encode())?, 2);
    ensure_eq!(t, b.pool().handle_at(2).map(|h| h.slot()), Some(2));
    ensure!(t, b.pool().handle_at(1).is_none());
    let s = status(t, &mut b, &bus, at(6), 2)?;
    ensure_eq!(
        t,
        (s.state, s.remote_port, s.protocol),
        (ConnState::Connected, 23, 2)
    );
    // An incoming connection now takes pool slot 1 but stays unseen: the SAM still
    // holds number 1 as aborted. It is shown once the SAM lets go.
    ensure_eq!(t, listen(t, &mut b, &bus, at(7), HTTP, 0, 4)?, 0);
    ensure!(
        t,
        b.pool_mut().stack_mut().peer_connect(HTTP, peer(50_015)).is_ok()
    );
    b.service(at(8));
    ensure!(t, b.pool().handle_at(1).is_some());
    ensure_eq!(t, status(t, &mut b, &bus, at(9), 1)?.state, ConnState::Aborted);
    let abort = SamHeader::new(Command::ConnAbort, 1, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(10), abort, &[])?, 0);
    b.service(at(11));
    let s = status(t, &mut b, &bus, at(12), 1)?;
    ensure_eq!(t, (s.state, s.remote_port), (ConnState::Connected, 50_015));
    Ok(())
}

fn network_status(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let mut name = [0u8; 64];
    name[..7].copy_from_slice(b"printer");
    let h = SamHeader::new(Command::NetworkSetHostName, 0, 0, 64, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &name)?, 0);
    ensure_eq!(t, b.host_name(), b"printer");
    let h = SamHeader::new(Command::NetworkSetHostName, 0, 0, 63, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(1), h, &name[..63])?, -5);
    b.network_status_mut().rssi = -55;
    let h = SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, 168, 0);
    let (r, d) = cmd(t, &mut b, &bus, at(2), h, &[])?;
    ensure_eq!(t, r, 168);
    let s = NetworkStatusResponse::decode(d.get());
    ensure!(t, s.is_ok(), "{:?}", s);
    let s = s.unwrap_or_default();
    ensure_eq!(t, c_str(&s.host_name), b"printer");
    ensure_eq!(t, s.rssi, -55);
    // An older SAM with a 144-byte buffer gets the prefix; under 140 is refused.
    let h = SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, 144, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(3), h, &[])?, 144);
    let h = SamHeader::new(Command::NetworkGetStatus, 0, 0, 0, 100, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(4), h, &[])?, -9);
    Ok(())
}

fn request_pin_pulses(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    b.start(at(0));
    ensure_eq!(t, bus.borrow().request_rises, 1);
    ensure!(t, bus.borrow().request);
    // The startup state is waiting: pulses every 200 ms, none in between.
    b.service(at(100));
    ensure_eq!(t, bus.borrow().request_rises, 1);
    b.service(at(200));
    ensure_eq!(t, bus.borrow().request_rises, 2);
    b.service(at(300));
    ensure_eq!(t, bus.borrow().request_rises, 2);
    b.service(at(400));
    ensure_eq!(t, bus.borrow().request_rises, 3);
    ensure!(t, bus.borrow().request, "idle high");
    let h = SamHeader::new(Command::NetworkGetLastError, 0, 0, 0, 100, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(401), h, &[])?, 0);
    for now in (500..2000).step_by(100) {
        b.service(at(now));
    }
    ensure_eq!(t, bus.borrow().request_rises, 3, "nothing more to fetch");
    // A new state pulses at once.
    b.set_wifi_state(WiFiState::Reconnecting);
    b.service(at(2001));
    ensure_eq!(t, bus.borrow().request_rises, 4);
    ensure_eq!(t, b.stats().request_pulses, 3);
    Ok(())
}

fn mode_changes(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let h = SamHeader::new(Command::NetworkStartClient, 0, 0, 32, 0, 0);
    let mut ssid = [0u8; 32];
    ssid[..4].copy_from_slice(b"shop");
    ensure_eq!(
        t,
        code(t, &mut b, &bus, at(0), h, &ssid)?,
        -4,
        "already connected"
    );
    let id = connected(t, &mut b, &bus, 50_010)?;
    let stop = SamHeader::new(Command::NetworkStop, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(2), stop, &[])?, 0);
    ensure_eq!(t, b.take_mode_request(), Some(ModeRequest::Stop));
    ensure_eq!(t, b.pool().free_slots(), 8);
    ensure!(t, b.pool().listener(HTTP).is_none());
    ensure!(t, aborted(stack(&b), id));
    b.set_wifi_state(WiFiState::Idle);
    ensure_eq!(t, code(t, &mut b, &bus, at(3), h, &ssid)?, 0);
    let request = b.take_mode_request();
    let asked = match request {
        Some(ModeRequest::StartClient { ssid }) => ssid,
        _ => [0; SSID_LENGTH],
    };
    ensure!(
        t,
        matches!(request, Some(ModeRequest::StartClient { .. })),
        "{:?}",
        request
    );
    ensure_eq!(t, c_str(&asked), b"shop");
    Ok(())
}

fn diagnostics(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    connected(t, &mut b, &bus, 50_011)?;
    let h = SamHeader::new(Command::Diagnostics, 0, 0, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(2), h, &[])?, 0);
    let report = b.take_diagnostics();
    ensure!(t, report.is_some(), "a report");
    if let Some(report) = report {
        ensure_eq!(t, report.free_slots(), 7);
        ensure_eq!(t, report.counters.accepted, 1);
    }
    ensure!(t, b.take_diagnostics().is_none());
    Ok(())
}

fn tx_power_and_clock_control(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    let h = SamHeader::new(Command::NetworkSetTxPower, 0, 60, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, 0);
    let h = SamHeader::new(Command::NetworkSetTxPower, 0, 83, 0, 0, 0);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, -11);
    ensure_eq!(t, b.tx_power(), Some(60));
    let h = SamHeader::new(Command::NetworkSetClockControl, 0, 0, 0, 0, 0x2001);
    ensure_eq!(t, code(t, &mut b, &bus, at(0), h, &[])?, 0);
    ensure_eq!(t, b.clock_control(), Some(0x2001));
    Ok(())
}

fn writes_without_connection(t: &mut Ctx<'_>) -> Outcome {
    let bus = RefCell::new(MockBus::new());
    let mut b = bridge(&bus);
    ensure_eq!(t, write(t, &mut b, &bus, at(0), 3, FLAG_PUSH, b"x")?, -4);
    ensure_eq!(t, read(t, &mut b, &bus, at(0), 3, 100)?.get(), b"");
    Ok(())
}
