//! How state crosses between the control loop and the network side.
//!
//! The control loop must never wait on anything the network holds (see the furnace
//! deadlock report this example answers). So:
//!
//! - **Flags and counters** are atomics with plain `load`/`store` (no compare-and-swap:
//!   the RP2040's Cortex-M0+ has none). Each has exactly one writer.
//! - **Multi-field state** (the [`Snapshot`], the temperature [`History`], the command
//!   [`Mailbox`]) sits behind `critical_section::Mutex`, and every access is a copy in
//!   or a copy out: O(1), or O(history length) for the history copy. Nothing is ever
//!   done while holding one — no I/O, no formatting, no waiting. A critical section
//!   cannot be held across an `.await` or a socket call, because the closure given to
//!   [`critical_section::with`] is synchronous and every closure here only copies.
//! - **Commands** from the web (new setpoint, reset cutoff) go into a [`Mailbox`]:
//!   the latest setpoint wins, a reset request is a flag. The control loop takes the
//!   whole mailbox at the start of a cycle.
//!
//! The link state is *written* by the network side from what the WiFi driver and the
//! netif report, and only *read* (one atomic load) by the control loop, for display.
//!
//! Use it as a `static`:
//!
//! ```
//! use pico_w_furnace::shared::Shared;
//! static SHARED: Shared<120> = Shared::new(10_000);
//! let snap = SHARED.snapshot();            // network side: copy out, render from the copy
//! assert_eq!(snap.cycles, 0);
//! ```

use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use critical_section::Mutex;
use netpool::LinkState;

use crate::control::Command;
use crate::history::History;
use crate::state::Snapshot;
use crate::temp::Temp;

/// Commands waiting for the control loop.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The latest setpoint requested (°C), if any since the last take.
    pub setpoint_c: Option<i32>,
    /// A cutoff reset was requested since the last take.
    pub reset_cutoff: bool,
}

impl Mailbox {
    /// An empty mailbox.
    pub const EMPTY: Mailbox = Mailbox {
        setpoint_c: None,
        reset_cutoff: false,
    };

    /// Put a command in (a later setpoint replaces an earlier one).
    pub fn post(&mut self, command: Command) {
        match command {
            Command::SetSetpoint(c) => self.setpoint_c = Some(c),
            Command::ResetCutoff => self.reset_cutoff = true,
        }
    }

    /// The commands, in the order the control loop applies them: the setpoint first,
    /// then the reset.
    pub fn commands(self) -> impl Iterator<Item = Command> {
        let sp = self.setpoint_c.map(Command::SetSetpoint);
        let reset = self.reset_cutoff.then_some(Command::ResetCutoff);
        sp.into_iter().chain(reset)
    }
}

const fn link_to_u8(link: LinkState) -> u8 {
    match link {
        LinkState::Unknown => 0,
        LinkState::Up => 1,
        LinkState::Down => 2,
    }
}

const fn link_from_u8(v: u8) -> LinkState {
    match v {
        1 => LinkState::Up,
        2 => LinkState::Down,
        _ => LinkState::Unknown,
    }
}

/// The state shared by the control loop and the network side; `H` history samples.
pub struct Shared<const H: usize> {
    snapshot: Mutex<Cell<Snapshot>>,
    history: Mutex<RefCell<History<H>>>,
    mailbox: Mutex<Cell<Mailbox>>,
    link: AtomicU8,
    cycles: AtomicU32,
    element_on: AtomicBool,
    overheat_latched: AtomicBool,
}

impl<const H: usize> Shared<H> {
    /// Boot state: [`Snapshot::BOOT`], an empty history sampled every
    /// `history_period_ms`, an empty mailbox, link unknown.
    pub const fn new(history_period_ms: u32) -> Self {
        Shared {
            snapshot: Mutex::new(Cell::new(Snapshot::BOOT)),
            history: Mutex::new(RefCell::new(History::new(history_period_ms))),
            mailbox: Mutex::new(Cell::new(Mailbox::EMPTY)),
            link: AtomicU8::new(0),
            cycles: AtomicU32::new(0),
            element_on: AtomicBool::new(false),
            overheat_latched: AtomicBool::new(false),
        }
    }

    // ------------------------------------------------------------ control side

    /// Publish the state after a cycle (one short critical section, three stores).
    pub fn publish(&self, snapshot: &Snapshot) {
        critical_section::with(|cs| self.snapshot.borrow(cs).set(*snapshot));
        self.element_on
            .store(snapshot.outputs.element_on, Ordering::Release);
        self.overheat_latched
            .store(snapshot.overheat_latched, Ordering::Release);
        self.cycles.store(snapshot.cycles, Ordering::Release);
    }

    /// Record a history sample if one is due (one short critical section, O(1)).
    pub fn record(&self, now_ms: u64, t: Option<Temp>) -> bool {
        critical_section::with(|cs| self.history.borrow_ref_mut(cs).record(now_ms, t))
    }

    /// Take every waiting command, leaving the mailbox empty.
    pub fn take_mailbox(&self) -> Mailbox {
        critical_section::with(|cs| self.mailbox.borrow(cs).replace(Mailbox::EMPTY))
    }

    // ------------------------------------------------------------ network side

    /// A copy of the latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        critical_section::with(|cs| self.snapshot.borrow(cs).get())
    }

    /// Copy the history into `into` (one critical section, O(H), no allocation).
    pub fn copy_history(&self, into: &mut History<H>) {
        critical_section::with(|cs| into.copy_from(&self.history.borrow_ref(cs)));
    }

    /// Queue a command for the control loop's next cycle.
    pub fn post(&self, command: Command) {
        critical_section::with(|cs| {
            let cell = self.mailbox.borrow(cs);
            let mut mailbox = cell.get();
            mailbox.post(command);
            cell.set(mailbox);
        });
    }

    /// Record the link state read from the network driver (never probed).
    pub fn set_link(&self, link: LinkState) {
        self.link.store(link_to_u8(link), Ordering::Release);
    }

    // ------------------------------------------------------------ either side

    /// The link state last recorded by [`set_link`](Self::set_link).
    pub fn link(&self) -> LinkState {
        link_from_u8(self.link.load(Ordering::Acquire))
    }

    /// Completed control cycles (the heartbeat: it keeps moving while the loop runs).
    pub fn cycles(&self) -> u32 {
        self.cycles.load(Ordering::Acquire)
    }

    /// The element relay as last published.
    pub fn element_on(&self) -> bool {
        self.element_on.load(Ordering::Acquire)
    }

    /// The overheat latch as last published.
    pub fn overheat_latched(&self) -> bool {
        self.overheat_latched.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::control::Mode;
    use std::sync::atomic::AtomicBool as StdFlag;
    use std::thread;
    use std::vec::Vec;

    #[test]
    fn mailbox_latest_setpoint_wins_and_take_empties_it() {
        let shared: Shared<4> = Shared::new(1000);
        shared.post(Command::SetSetpoint(300));
        shared.post(Command::ResetCutoff);
        shared.post(Command::SetSetpoint(320));
        let mail = shared.take_mailbox();
        assert_eq!(
            mail.commands().collect::<Vec<_>>(),
            [Command::SetSetpoint(320), Command::ResetCutoff]
        );
        assert_eq!(shared.take_mailbox(), Mailbox::EMPTY);
    }

    #[test]
    fn link_round_trips() {
        let shared: Shared<4> = Shared::new(1000);
        assert_eq!(shared.link(), LinkState::Unknown);
        for l in [LinkState::Up, LinkState::Down, LinkState::Unknown] {
            shared.set_link(l);
            assert_eq!(shared.link(), l);
        }
    }

    /// A writer publishes snapshots whose fields agree with each other; readers on
    /// other threads must never see a mix of two snapshots.
    #[test]
    fn snapshots_are_never_torn() {
        static SHARED: Shared<8> = Shared::new(1);
        static DONE: StdFlag = StdFlag::new(false);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                thread::spawn(|| {
                    let mut seen = 0u32;
                    let mut history = History::<8>::new(1);
                    for _ in 0..200_000 {
                        let s = SHARED.snapshot();
                        if s.cycles == 0 {
                            assert_eq!(s, Snapshot::BOOT); // nothing published yet
                            continue;
                        }
                        assert_eq!(s.uptime_ms, u64::from(s.cycles) * 10);
                        assert_eq!(s.setpoint.quarters(), s.cycles as i32 % 1000);
                        SHARED.copy_history(&mut history);
                        assert!(history.len() <= 8);
                        seen = seen.max(s.cycles);
                        if DONE.load(Ordering::Acquire) {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        for i in 1..=50_000u32 {
            let mut s = Snapshot::BOOT;
            s.cycles = i;
            s.uptime_ms = u64::from(i) * 10;
            s.setpoint = Temp::from_quarters(i as i32 % 1000);
            s.mode = if i % 2 == 0 {
                Mode::Regulating
            } else {
                Mode::Banking
            };
            SHARED.publish(&s);
            SHARED.record(u64::from(i), Some(Temp::from_quarters(i as i32 % 4000)));
        }
        DONE.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() <= 50_000);
        }
        assert_eq!(SHARED.cycles(), 50_000);
    }
}
