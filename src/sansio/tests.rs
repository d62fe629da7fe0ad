//! The core alone: no stack, no sockets. Random sequences of driver inputs must keep
//! the table consistent, respect every cap, count every decision, and keep
//! `poll_timeout` exact: after the timers due at `now` are handled, the next timeout
//! is strictly later (a firmware sleeping until it never spins).

use core::net::{Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::stack::PeerStatus;
use crate::time::Duration;

const N: usize = 4;
const L: usize = 2;
const PORTS: [u16; 2] = [80, 21];

#[derive(Clone, Debug)]
enum Op {
    Listen {
        port: usize,
        cap: u8,
        one_shot: bool,
    },
    Incoming {
        port: usize,
    },
    Connect {
        slot: Option<usize>,
        established: bool,
    },
    Connected {
        slot: usize,
    },
    Read {
        slot: usize,
        n: usize,
    },
    Write {
        slot: usize,
        taken: usize,
        refused: bool,
        buffered: bool,
    },
    PeerFin {
        slot: usize,
    },
    Error {
        slot: usize,
        class: usize,
    },
    Close {
        slot: usize,
        abort: bool,
    },
    Advance {
        ms: u64,
    },
}

const CLASSES: [ErrorClass; 6] = [
    ErrorClass::WouldBlock,
    ErrorClass::Timeout,
    ErrorClass::Reset,
    ErrorClass::Closed,
    ErrorClass::ConnectionTimedOut,
    ErrorClass::Fatal,
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..4u8, any::<bool>()).prop_map(|(port, cap, one_shot)| Op::Listen {
            port,
            cap,
            one_shot
        }),
        (0..2usize).prop_map(|port| Op::Incoming { port }),
        (proptest::option::of(0..N + 1), any::<bool>())
            .prop_map(|(slot, established)| Op::Connect { slot, established }),
        (0..N).prop_map(|slot| Op::Connected { slot }),
        (0..N, 0..100usize).prop_map(|(slot, n)| Op::Read { slot, n }),
        (0..N, 0..100usize, any::<bool>(), any::<bool>()).prop_map(|(slot, taken, refused, buffered)| {
            Op::Write {
                slot,
                taken,
                refused,
                buffered,
            }
        }),
        (0..N).prop_map(|slot| Op::PeerFin { slot }),
        (0..N, 0..CLASSES.len()).prop_map(|(slot, class)| Op::Error { slot, class }),
        (0..N, any::<bool>()).prop_map(|(slot, abort)| Op::Close { slot, abort }),
        (0..20_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (any::<bool>(), any::<bool>(), 1..20_000u64).prop_map(|(idle, hold, grace)| {
        Config::new()
            .with_stall_grace(Duration::from_millis(grace))
            .with_idle_timeout(idle.then_some(Duration::from_secs(7)))
            .with_hold_ended(hold)
    })
}

fn remote() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 4000)
}

/// A driver for the core's own timer work ([`Core::poll_slots`], the one sequence both
/// drivers run): connects never complete by themselves (`Op::Connected` does that),
/// a push empties the coalescing buffer, the peer's status is unknown, and the send
/// queue never drains (so stall readings can reap).
struct TimerIo;

impl SlotIo for TimerIo {
    fn connect(&mut self, _: usize, _: SocketAddr) -> Result<bool, ErrorClass> {
        Ok(false)
    }
    fn push(&mut self, _: usize, slot: &mut Slot, _: &Config, _: Instant) -> Result<(), ErrorClass> {
        slot.set_flush_due(None);
        Ok(())
    }
    fn peer_status(&mut self, _: usize) -> PeerStatus {
        PeerStatus::Unknown
    }
    fn send_queue(&mut self, _: usize) -> Option<usize> {
        Some(1)
    }
    fn release(&mut self, _: usize, _: Release, _: &mut Slot, _: &Config, _: Instant) -> Option<usize> {
        Some(0)
    }
    fn abort(&mut self, _: usize) {}
}

/// What a driver does at `now`: the core's timer work over every slot.
fn run_timers(core: &mut Core<N, L>, now: Instant) {
    let mut out = SlotOutcome::default();
    core.poll_slots(now, LinkState::Unknown, &mut TimerIo, &mut out);
}

proptest! {
    #[test]
    fn the_core_stays_consistent_and_its_timeout_is_exact(config in config(), ops in proptest::collection::vec(op(), 1..80)) {
        let mut core: Core<N, L> = Core::new(config);
        let mut now = Instant::from_millis(1);
        let mut incoming = 0u32;
        let mut told: [Option<usize>; L] = [None; L];
        for op in ops {
            match op {
                Op::Listen { port, cap, one_shot } => {
                    let mode = if one_shot { ListenMode::OneShot } else { ListenMode::Persistent };
                    let params = ListenParams::new(cap).with_mode(mode);
                    match core.plan_listen(PORTS[port], params) {
                        ListenPlan::Start(i) | ListenPlan::Update(i) => { core.set_listener(i, PORTS[port], params); }
                        ListenPlan::Stop(i) => core.remove_listener(i),
                        ListenPlan::Nothing | ListenPlan::TableFull => {}
                    }
                }
                Op::Incoming { port } => {
                    if let Some(li) = core.listener_index(PORTS[port]) {
                        incoming += 1;
                        let cap = core.listener(li).map(|l| l.params.max_conns as usize).unwrap_or(0);
                        let before = core.open_on_port(PORTS[port]);
                        match core.handle_incoming(li, remote(), now) {
                            Ok(_) => prop_assert!(before < cap && core.open_on_port(PORTS[port]) <= cap),
                            Err(Rejection::PortCap) => prop_assert!(before >= cap),
                            Err(Rejection::PoolFull) => prop_assert_eq!(core.free_slots(), 0),
                            Err(Rejection::UnsupportedAddress) => prop_assert!(false, "an IPv4 peer was refused"),
                        }
                    }
                }
                Op::Connect { slot, established } => {
                    if let Ok(i) = core.pick_connect_slot(slot, remote(), LinkState::Up) {
                        let h = core.handle_connect_started(i, remote(), 1, established, now + Duration::from_secs(3), now);
                        prop_assert_eq!(h.slot(), i);
                    }
                }
                Op::Connected { slot } => {
                    core.handle_connected(slot, now);
                }
                Op::Read { slot, n } => if core.slot(slot).is_open() { core.handle_read(slot, n, now) },
                Op::Write { slot, taken, refused, buffered } => {
                    if core.slot(slot).is_open() && core.slot(slot).can_send {
                        let delay = core.config().coalesce_delay;
                        let s = core.slot_mut(slot);
                        s.progress.on_handed(taken, now);
                        s.progress.set_blocked(refused, now);
                        if buffered && s.flush_due().is_none() {
                            s.set_flush_due(Some(Stamp::of(now).plus(delay)));
                        }
                        core.handle_written(slot, taken, now);
                    }
                }
                Op::PeerFin { slot } => { core.handle_peer_fin(slot, now); }
                Op::Error { slot, class } => if core.slot(slot).state.is_in_use() {
                    core.handle_error(slot, CLASSES[class], now);
                },
                Op::Close { slot, abort } => {
                    let h = core.slot(slot).handle(slot);
                    if let Ok(Some(i)) = core.handle_app_close(h, abort) {
                        let reason = if abort { CloseReason::Aborted } else { CloseReason::Closed };
                        core.handle_released(i, reason, now);
                        prop_assert_eq!(core.slot(i).state, ConnState::Free);
                    }
                }
                Op::Advance { ms } => now = now + Duration::from_millis(ms),
            }
            run_timers(&mut core, now);

            // A driver that announces every change knows each listener's room now.
            for (li, told) in told.iter_mut().enumerate() {
                if let Some(room) = core.room_to_announce(li) {
                    *told = Some(room);
                }
                if let Some(l) = core.listener(li) {
                    let room = core.listener_room(li);
                    prop_assert_eq!(*told, Some(room), "listener {} announced stale", li);
                    prop_assert!(room <= usize::from(l.params.max_conns).saturating_sub(core.open_on_port(l.port)));
                    prop_assert!(room <= core.free_slots());
                }
            }

            // The table and the counters agree.
            let c = core.counters();
            let in_use = (0..N).filter(|&i| core.slot(i).state.is_in_use()).count();
            prop_assert_eq!(c.in_use as usize, in_use);
            prop_assert!(c.high_water as usize >= in_use);
            prop_assert_eq!(c.accepted + c.rejected, incoming);
            prop_assert_eq!(c.rejected, c.rejected_port_cap + c.rejected_pool_full + c.rejected_address);
            // Exact and never in the past once its work is done: no spin.
            if let Some(t) = core.poll_timeout() {
                prop_assert!(t > now, "poll_timeout {} not after {} with nothing left to do", t, now);
                let due_then = (0..N).any(|i| Timer::ALL.iter().any(|&tm| core.due(i, tm, t)));
                prop_assert!(due_then, "nothing is due at poll_timeout {}", t);
            }
            for i in 0..N {
                for tm in Timer::ALL {
                    prop_assert!(!core.due(i, tm, now), "{:?} of slot {} still due at {}", tm, i, now);
                }
            }
        }
        // Closing every handle frees every slot.
        for i in 0..N {
            let h = core.slot(i).handle(i);
            if let Ok(Some(i)) = core.handle_app_close(h, false) {
                core.handle_released(i, CloseReason::Closed, now);
            }
        }
        prop_assert_eq!(core.free_slots(), N);
    }
}

#[test]
fn admission_checks_the_port_cap_before_the_pool() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    let now = Instant::from_millis(1);
    core.set_listener(0, 80, ListenParams::new(0));
    assert_eq!(core.handle_incoming(0, remote(), now), Err(Rejection::PortCap));
    core.set_listener(0, 80, ListenParams::new(2));
    assert!(core.handle_incoming(0, remote(), now).is_ok());
    assert_eq!(core.handle_incoming(0, remote(), now), Err(Rejection::PoolFull));
    let c = core.counters();
    assert_eq!((c.accepted, c.rejected_port_cap, c.rejected_pool_full), (1, 1, 1));
}

#[test]
fn a_listeners_room_is_its_cap_left_at_most_the_free_slots_announced_once_per_change() {
    let mut core: Core<3, 2> = Core::new(Config::new());
    let now = Instant::from_millis(1);
    assert_eq!(core.room_to_announce(0), None, "no listener, nothing to say");
    core.set_listener(0, 80, ListenParams::new(2));
    core.set_listener(1, 21, ListenParams::new(8));
    assert_eq!(core.room_to_announce(0), Some(2), "the cap");
    assert_eq!(core.room_to_announce(1), Some(3), "at most the free slots");
    assert_eq!(core.room_to_announce(0), None, "once per change");
    let a = core.handle_incoming(0, remote(), now).unwrap();
    assert_eq!(
        (core.room_to_announce(0), core.room_to_announce(1)),
        (Some(1), Some(2))
    );
    core.handle_incoming(0, remote(), now).unwrap();
    assert_eq!(
        (core.room_to_announce(0), core.room_to_announce(1)),
        (Some(0), Some(1))
    );
    // An outgoing connection takes a slot but not the port's cap.
    let i = core.pick_connect_slot(None, remote(), LinkState::Up).unwrap();
    core.handle_connect_started(i, remote(), 0, true, now + Duration::from_secs(1), now);
    assert_eq!(
        (core.room_to_announce(0), core.room_to_announce(1)),
        (None, Some(0)),
        "port 80's room is still 0: nothing new to tell"
    );
    core.handle_app_close(a.handle, false).unwrap();
    core.handle_released(a.handle.slot(), CloseReason::Closed, now);
    assert_eq!(
        (core.room_to_announce(0), core.room_to_announce(1)),
        (Some(1), Some(1))
    );
    // A new cap is a change too.
    core.set_listener(0, 80, ListenParams::new(1));
    assert_eq!(core.room_to_announce(0), Some(0));
}

#[test]
fn events_are_drained_once_each_and_hold_keeps_a_reaped_slot() {
    let mut core: Core<2, 1> = Core::new(Config::new().with_hold_ended(true));
    let now = Instant::from_millis(1);
    core.set_listener(0, 80, ListenParams::new(2));
    let a = core.handle_incoming(0, remote(), now).unwrap().handle;
    core.handle_peer_fin(a.slot(), now);
    let e1 = core.poll_event().unwrap();
    let e2 = core.poll_event().unwrap();
    assert_eq!((e1.handle, e1.kind), (a, crate::EventKind::Accepted));
    assert_eq!((e2.handle, e2.kind), (a, crate::EventKind::PeerClosed));
    assert_eq!(core.poll_event(), None);
    // Reaped by the pool: kept, Aborted with the reason, until the application closes it.
    core.handle_released(a.slot(), CloseReason::Stalled, now);
    assert_eq!(core.slot(a.slot()).state, ConnState::Aborted);
    assert_eq!(core.poll_event().map(|e| e.kind), Some(crate::EventKind::Reaped));
    assert_eq!(core.handle_app_close(a, false), Ok(Some(a.slot())));
    core.handle_released(a.slot(), CloseReason::Closed, now);
    assert_eq!(core.slot(a.slot()).state, ConnState::Free);
    assert_eq!(core.slot(a.slot()).close_reason, Some(CloseReason::Stalled));
}

#[test]
fn connect_at_takes_the_chosen_slot_or_says_why_not() {
    let mut core: Core<2, 1> = Core::new(Config::new());
    assert_eq!(
        core.pick_connect_slot(Some(5), remote(), LinkState::Up),
        Err(ConnectError::NoSuchSlot)
    );
    assert_eq!(core.pick_connect_slot(Some(1), remote(), LinkState::Up), Ok(1));
    let now = Instant::from_millis(1);
    core.handle_connect_started(1, remote(), 0, false, now + Duration::from_secs(1), now);
    assert_eq!(
        core.pick_connect_slot(Some(1), remote(), LinkState::Up),
        Err(ConnectError::SlotInUse)
    );
    assert_eq!(core.pick_connect_slot(None, remote(), LinkState::Up), Ok(0));
}

/// The slot record's size is part of the footprint budget (64 bytes a slot beyond the
/// socket, `ipv6` off): no pointers inside, so it is the same on 32- and 64-bit targets.
#[test]
fn a_slot_record_fits_its_budget() {
    let expected = if cfg!(feature = "ipv6") { 76 } else { 64 };
    assert_eq!(core::mem::size_of::<Slot>(), expected);
}

#[test]
fn remote_addresses_round_trip_or_are_refused_with_a_reason() {
    use core::net::Ipv6Addr;
    let v4 = remote();
    let v6 = SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(), 443);
    assert_eq!(Remote::of(v4).and_then(Remote::addr), Some(v4));
    let mut core: Core<2, 1> = Core::new(Config::new());
    let now = Instant::from_millis(1);
    core.set_listener(0, 80, ListenParams::new(2));
    if cfg!(feature = "ipv6") {
        assert_eq!(Remote::of(v6).and_then(Remote::addr), Some(v6));
        assert!(core.handle_incoming(0, v6, now).is_ok());
        assert_eq!(core.pick_connect_slot(None, v6, LinkState::Up), Ok(1));
    } else {
        assert_eq!(Remote::of(v6), None);
        assert_eq!(
            core.handle_incoming(0, v6, now),
            Err(Rejection::UnsupportedAddress)
        );
        assert_eq!(core.counters().rejected_address, 1);
        assert_eq!(
            core.pick_connect_slot(None, v6, LinkState::Up),
            Err(ConnectError::UnsupportedAddress)
        );
        assert_eq!(core.free_slots(), 2);
    }
}

#[test]
fn a_connect_to_port_zero_is_refused_with_its_own_error_and_takes_nothing() {
    let mut core: Core<2, 1> = Core::new(Config::new());
    let zero = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 0);
    assert_eq!(
        core.pick_connect_slot(None, zero, LinkState::Up),
        Err(ConnectError::PortZero)
    );
    assert_eq!(
        core.pick_connect_slot(Some(1), zero, LinkState::Up),
        Err(ConnectError::PortZero)
    );
    assert_eq!(core.free_slots(), 2);
    assert_eq!(core.counters().exhausted, 0);
}

#[test]
fn a_connect_while_the_link_is_down_is_refused_first_and_takes_nothing() {
    let mut core: Core<2, 1> = Core::new(Config::new());
    let zero = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 0);
    // The link is read before anything else: even a bad address gets LinkDown.
    assert_eq!(
        core.pick_connect_slot(None, zero, LinkState::Down),
        Err(ConnectError::LinkDown)
    );
    assert_eq!(
        core.pick_connect_slot(None, remote(), LinkState::Down),
        Err(ConnectError::LinkDown)
    );
    assert_eq!(
        core.pick_connect_slot(None, remote(), LinkState::Unknown),
        Ok(0),
        "unknown is up"
    );
    assert_eq!((core.free_slots(), core.counters().exhausted), (2, 0));
}

#[test]
fn a_rejected_connection_is_released_as_the_reject_policy_says() {
    let core: Core<2, 1> = Core::new(Config::new());
    assert_eq!(core.rejected_release(), Release::Abort, "the default: RST");
    let core: Core<2, 1> = Core::new(Config::new().with_reject(crate::config::RejectPolicy::Close));
    assert_eq!(core.rejected_release(), Release::Close);
}

#[test]
fn an_accept_loop_yields_after_accepts_in_a_row_turned_away_then_counts_again() {
    let config = Config::new().with_accepts_per_poll(3);
    let mut streak = RejectStreak::default();
    let yields: [bool; 7] = core::array::from_fn(|_| streak.turned_away(&config));
    assert_eq!(yields, [false, false, true, false, false, true, false]);
}

#[test]
fn an_application_close_aborts_what_was_given_up_on_and_closes_the_rest() {
    let mut core: Core<3, 1> = Core::new(Config::new().with_hold_ended(true));
    let now = Instant::from_millis(1);
    core.set_listener(0, 80, ListenParams::new(3));
    let open = core.handle_incoming(0, remote(), now).unwrap().handle.slot();
    let stalled = core.handle_incoming(0, remote(), now).unwrap().handle.slot();
    let idle = core.handle_incoming(0, remote(), now).unwrap().handle.slot();
    core.handle_gave_up(stalled, CloseReason::Stalled, now);
    core.handle_gave_up(idle, CloseReason::Idle, now);
    assert_eq!(core.release_on_close(open), Release::Close);
    assert_eq!(core.release_on_close(stalled), Release::Abort);
    assert_eq!(core.release_on_close(idle), Release::Close);
    core.handle_error(open, ErrorClass::Fatal, now);
    assert_eq!(core.release_on_close(open), Release::Abort);
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Serve one incoming connection on listener 0 at `ms`: its slot.
fn serve<const N: usize, const L: usize>(core: &mut Core<N, L>, ms: u64) -> usize {
    core.handle_incoming(0, remote(), at(ms)).unwrap().handle.slot()
}

#[test]
fn the_clock_is_the_latest_now_given_and_never_goes_back() {
    let mut core: Core<2, 1> = Core::new(Config::new());
    assert_eq!(core.clock(), Instant::ZERO);
    core.set_listener(0, 80, ListenParams::new(2));
    let a = serve(&mut core, 5_000);
    assert_eq!(core.clock(), at(5_000));
    // A `now` read before another task moved the clock on is older: the clock stays.
    core.handle_error(a, ErrorClass::WouldBlock, at(3_000));
    assert_eq!(core.clock(), at(5_000));
    core.handle_peer_fin(a, at(7_000));
    assert_eq!(core.clock(), at(7_000));
}

#[test]
fn a_new_configuration_applies_to_the_timers_from_then_on() {
    let mut core: Core<1, 1> = Core::new(Config::new().with_idle_timeout(None));
    core.set_listener(0, 80, ListenParams::new(1));
    let a = serve(&mut core, 1_000);
    assert_eq!(core.deadline(a, Timer::Idle), None);
    let config = Config::new().with_idle_timeout(Some(Duration::from_secs(7)));
    core.set_config(config);
    assert_eq!(core.config(), &config);
    assert_eq!(core.deadline(a, Timer::Idle), Some(Stamp::of(at(8_000))));
}

#[test]
fn a_listener_updated_on_its_port_keeps_its_generation_and_a_new_listener_gets_a_new_one() {
    let mut core: Core<2, 1> = Core::new(Config::new());
    let ok = |_: ListenerIo| Ok(());
    let Ok(ListenOutcome::Started(first)) = core.handle_listen(80, ListenParams::new(1), ok) else {
        panic!("port 80 starts");
    };
    assert_eq!(
        core.handle_listen(80, ListenParams::new(2), ok),
        Ok(ListenOutcome::Updated(first)),
        "a new cap is the same listener"
    );
    assert_eq!(core.listener(0).map(|l| l.generation), Some(first.generation));
    assert_eq!(
        core.handle_listen(80, ListenParams::new(0), ok),
        Ok(ListenOutcome::Stopped)
    );
    let Ok(ListenOutcome::Started(second)) = core.handle_listen(80, ListenParams::new(1), ok) else {
        panic!("port 80 starts again");
    };
    assert_ne!(second, first, "a restarted listener is a new one");
    // An entry given to another port is a new listener too.
    let third = core.set_listener(0, 21, ListenParams::new(1));
    assert_ne!(third.generation, second.generation);
}

#[test]
fn accept_errors_are_counted_unless_they_only_say_retry() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    core.handle_accept_error(ErrorClass::WouldBlock);
    core.handle_accept_error(ErrorClass::Timeout);
    assert_eq!(core.counters().accept_errors, 0);
    core.handle_accept_error(ErrorClass::OutOfResources);
    assert_eq!(core.counters().accept_errors, 1);
}

#[test]
fn an_established_connect_and_a_completed_one_each_report_connected() {
    let mut core: Core<2, 1> = Core::new(Config::new());
    let now = at(1);
    let deadline = now + Duration::from_secs(3);
    let a = core.handle_connect_started(0, remote(), 0, true, deadline, now);
    let b = core.handle_connect_started(1, remote(), 0, false, deadline, now);
    let kinds = |e: Option<Event>| e.map(|e| (e.handle, e.kind));
    assert_eq!(kinds(core.poll_event()), Some((a, EventKind::Connected)));
    assert_eq!(core.poll_event(), None, "still connecting: nothing to say");
    core.handle_connected(1, now);
    assert_eq!(kinds(core.poll_event()), Some((b, EventKind::Connected)));
    assert_eq!(core.poll_event(), None);
}

#[test]
fn a_connect_the_stack_refuses_counts_as_a_failed_connect_and_takes_no_slot() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    core.handle_connect_refused();
    let c = core.counters();
    assert_eq!((c.connects, c.connect_failed, c.in_use), (1, 1, 0));
    assert_eq!(core.free_slots(), 1);
}

#[test]
fn reads_and_writes_wait_while_connecting_and_go_once_connected() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    let now = at(1);
    core.handle_connect_started(0, remote(), 0, false, now + Duration::from_secs(3), now);
    assert_eq!(
        (core.may_read(0), core.may_write(0)),
        (Access::Wait, Access::Wait)
    );
    core.handle_connected(0, now);
    assert_eq!((core.may_read(0), core.may_write(0)), (Access::Go, Access::Go));
    core.handle_error(0, ErrorClass::Fatal, now);
    assert_eq!(
        (core.may_read(0), core.may_write(0)),
        (Access::Fail, Access::Fail)
    );
}

#[test]
fn after_the_peers_fin_alone_a_read_that_finds_nothing_waits_but_learns_a_dead_connection_at_once() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    core.set_listener(0, 80, ListenParams::new(1));
    let a = core.handle_incoming(0, remote(), at(1)).unwrap().handle.slot();
    assert_eq!(core.nothing_to_read(a), None);
    // Half-closed by the peer: still writable, nothing known dead.
    core.handle_peer_fin(a, at(2));
    assert_eq!(core.nothing_to_read(a), None);
    // A write found the peer gone: the reader learns it too.
    core.handle_error(a, ErrorClass::Reset, at(3));
    assert_eq!(core.nothing_to_read(a), Some(core.error_for(a)));
    assert!(matches!(core.nothing_to_read(a), Some(ConnError::PeerGone(_))));
}

#[test]
fn a_read_or_a_write_of_nothing_is_not_activity() {
    let mut core: Core<1, 1> = Core::new(Config::new().with_idle_timeout(Some(Duration::from_secs(7))));
    core.set_listener(0, 80, ListenParams::new(1));
    let a = serve(&mut core, 1_000);
    let idle_at = |core: &Core<1, 1>| core.deadline(a, Timer::Idle);
    assert_eq!(idle_at(&core), Some(Stamp::of(at(8_000))));
    core.handle_read(a, 0, at(4_000));
    assert_eq!(idle_at(&core), Some(Stamp::of(at(8_000))), "an empty read");
    core.handle_written(a, 0, at(5_000));
    assert_eq!(idle_at(&core), Some(Stamp::of(at(8_000))), "an empty write");
    core.handle_read(a, 1, at(6_000));
    assert_eq!(idle_at(&core), Some(Stamp::of(at(13_000))));
    core.handle_written(a, 1, at(7_000));
    assert_eq!(idle_at(&core), Some(Stamp::of(at(14_000))));
}

#[test]
fn a_fatal_error_while_connecting_aborts_and_is_counted_once() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    let now = at(1);
    let h = core.handle_connect_started(0, remote(), 0, false, now + Duration::from_secs(3), now);
    assert_eq!(core.handle_error(0, ErrorClass::Fatal, now), AfterError::Abort);
    assert_eq!(core.slot(0).state, ConnState::Aborted);
    assert_eq!(core.counters().aborted, 1);
    assert_eq!(
        core.poll_event().map(|e| (e.handle, e.kind)),
        Some((h, EventKind::Aborted))
    );
    // Already aborted: nothing new to count or to tell.
    assert_eq!(core.handle_error(0, ErrorClass::Fatal, now), AfterError::Abort);
    assert_eq!(core.counters().aborted, 1);
    assert_eq!(core.poll_event(), None);
}

#[test]
fn a_connection_freed_as_abandoned_is_released_with_a_reset() {
    let after = Duration::from_secs(30);
    let mut core: Core<1, 1> = Core::new(Config::new().with_abandoned_after(Some(after)));
    core.set_listener(0, 80, ListenParams::new(1));
    let a = serve(&mut core, 1_000);
    core.handle_peer_fin(a, at(1_000));
    let now = at(31_000);
    assert_eq!(
        core.handle_expired(a, Timer::Abandoned, now),
        Some((Release::Abort, CloseReason::Abandoned))
    );
    core.handle_released(a, CloseReason::Abandoned, now);
    assert_eq!(core.slot(a).state, ConnState::Free);
    // The task still holding the socket closes it later: RST, as the pool decided.
    assert_eq!(core.release_on_close(a), Release::Abort);
}

/// Accept `conns` connections on a table of `M` slots, each with two events
/// (accepted, then the peer's FIN), and drain them in order.
fn drain_order<const M: usize>(conns: usize, out: &mut [(usize, EventKind)]) {
    let mut core: Core<M, 1> = Core::new(Config::new());
    core.set_listener(0, 80, ListenParams::new(u8::MAX));
    for _ in 0..conns {
        core.handle_incoming(0, remote(), at(1)).unwrap();
    }
    for i in 0..conns {
        core.handle_peer_fin(i, at(2));
    }
    for o in out.iter_mut() {
        let e = core.poll_event().expect("an event left");
        *o = (e.handle.slot(), e.kind);
    }
    assert_eq!(core.poll_event(), None);
}

#[test]
fn events_are_served_round_robin_over_the_slots() {
    use EventKind::{Accepted, PeerClosed};
    let mut order = [(0, Accepted); 6];
    drain_order::<3>(3, &mut order);
    assert_eq!(
        order,
        [
            (0, Accepted),
            (1, Accepted),
            (2, Accepted),
            (0, PeerClosed),
            (1, PeerClosed),
            (2, PeerClosed)
        ]
    );
    // The largest table: the rotation still moves on to the next slot.
    let mut order = [(0, Accepted); 4];
    drain_order::<255>(2, &mut order);
    assert_eq!(
        order,
        [(0, Accepted), (1, Accepted), (0, PeerClosed), (1, PeerClosed)]
    );
}

#[test]
fn a_peer_gone_error_half_ends_an_open_connection_once_reads_go_on_and_writes_fail() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    core.set_listener(0, 80, ListenParams::new(1));
    let h = core.handle_incoming(0, remote(), at(1)).unwrap().handle;
    core.claim_accepted(h.slot());
    assert_eq!(
        core.handle_error(h.slot(), ErrorClass::Reset, at(2)),
        AfterError::PeerGone
    );
    assert_eq!(core.slot(h.slot()).state, ConnState::OtherEndClosed);
    assert_eq!(core.counters().peer_closed, 1);
    assert_eq!(
        core.poll_event().map(|e| (e.handle, e.kind)),
        Some((h, EventKind::PeerClosed))
    );
    // What arrived before stays readable; nothing more can be sent.
    assert_eq!(
        (core.may_read(h.slot()), core.may_write(h.slot())),
        (Access::Go, Access::Fail)
    );
    // Already half-ended: nothing new to count or to tell.
    assert_eq!(
        core.handle_error(h.slot(), ErrorClass::Closed, at(3)),
        AfterError::PeerGone
    );
    assert_eq!(core.counters().peer_closed, 1);
    assert_eq!(core.poll_event(), None);
}

#[test]
fn a_failed_connect_reports_connect_failed() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    let now = at(1);
    let h = core.handle_connect_started(0, remote(), 0, false, now + Duration::from_secs(3), now);
    core.handle_connect_failed(0, CloseReason::ConnectTimeout, now);
    assert_eq!(
        core.poll_event().map(|e| (e.handle, e.kind, e.reason)),
        Some((h, EventKind::ConnectFailed, Some(CloseReason::ConnectTimeout)))
    );
    assert_eq!(core.counters().connect_failed, 1);
}

#[test]
fn the_handles_listed_are_those_of_the_slots_in_use() {
    let mut core: Core<3, 1> = Core::new(Config::new());
    core.set_listener(0, 80, ListenParams::new(3));
    let a = core.handle_incoming(0, remote(), at(1)).unwrap().handle;
    let b = core.handle_incoming(0, remote(), at(1)).unwrap().handle;
    core.handle_released(a.slot(), CloseReason::Closed, at(2));
    let mut listed = core.handles();
    assert_eq!((listed.next(), listed.next()), (Some(b), None));
}

#[test]
fn a_refused_write_is_read_for_progress_at_once_while_the_connection_may_send() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    core.set_listener(0, 80, ListenParams::new(1));
    let a = serve(&mut core, 1_000);
    assert_eq!(
        (core.deadline(a, Timer::Stall), core.poll_timeout()),
        (None, None)
    );
    core.handle_handed(a, 0, 10, at(2_000));
    assert_eq!(core.deadline(a, Timer::Stall), Some(Stamp::of(at(2_000))));
    assert_eq!(core.poll_timeout(), Some(at(2_000)));
    // The peer is gone: nothing more can be sent, nothing to watch.
    core.handle_error(a, ErrorClass::Reset, at(2_000));
    assert_eq!(core.deadline(a, Timer::Stall), None);
}

#[test]
fn a_connect_is_due_by_its_deadline_and_a_report_tells_a_connections_age() {
    let mut core: Core<1, 1> = Core::new(Config::new());
    let now = at(1_000);
    core.handle_connect_started(0, remote(), 0, false, at(4_000), now);
    assert_eq!(core.deadline(0, Timer::Connect), Some(Stamp::of(at(4_000))));
    assert_eq!(core.poll_timeout(), Some(at(4_000)));
    assert_eq!(core.slot_report(0, at(3_500)).age, Duration::from_millis(2_500));
}

#[test]
fn one_table_says_which_timer_runs_in_which_state() {
    use ConnState::*;
    // Order of `Timer::ALL`: Connect, Flush, Stall, Idle, Abandoned.
    let runs = |s| Timer::ALL.map(|t| t.runs_in(s));
    assert_eq!(runs(Free), [false, false, false, false, false]);
    assert_eq!(runs(Connecting), [true, false, false, false, false]);
    assert_eq!(runs(Connected), [false, true, true, true, false]);
    assert_eq!(runs(OtherEndClosed), [false, true, true, true, true]);
    assert_eq!(runs(Aborted), [false, false, false, false, true]);
}
