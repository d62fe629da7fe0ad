//! The board's side of the SPI link against a scripted module on the virtual bus.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use std::vec::Vec;

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::spi::SpiDevice;

use super::*;
use crate::host::bus::VirtualBus;
use crate::protocol::{padded_len, EspHeader};

const REMOTE_IP: u32 = 0x0100_007f;
const REMOTE_PORT: u16 = 50_000;

/// What the scripted module saw and how it is steered.
struct Script {
    /// Commands received (the command byte of each header).
    log: Arc<Mutex<Vec<u8>>>,
    /// Told when the first `connClose` has been swallowed.
    lost: Receiver<()>,
    /// Tell it to let the swallowed transfer go; it answers once chip select is up.
    release: Sender<()>,
    released: Receiver<()>,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

/// A module holding one connection in socket 0 (from `REMOTE_IP:REMOTE_PORT`) until
/// the board closes or aborts it. The first `connClose` is lost: the module reads
/// its header and then stalls, chip select low, until the board has given up on it
/// (told through `release`), and acts on none of it.
fn scripted_module(bus: &Arc<VirtualBus>) -> Script {
    let (mut spi, mut cs, mut ready, mut request) = bus.bridge_side();
    let _ = request.set_high();
    let _ = cs.set_high();
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (lost_tx, lost) = channel();
    let (release, release_rx) = channel::<()>();
    let (released_tx, released) = channel();
    let bus = bus.clone();
    let (log2, stop2) = (log.clone(), stop.clone());
    let thread = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut held, mut swallowed) = (true, false);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            if !bus.wait_ready(Duration::from_millis(10)) || !ready.is_high().unwrap_or(false) {
                continue;
            }
            let _ = cs.set_low();
            let out = EspHeader::new(WiFiState::Connected, 0).encode();
            let mut prefix = [0u8; 8];
            let _ = spi.transfer(&mut prefix, &out[..8]);
            let Ok(h) = SamHeader::decode_prefix(&prefix) else {
                let _ = cs.set_high();
                continue;
            };
            log2.lock().unwrap_or_else(|e| e.into_inner()).push(h.command);
            let command = Command::try_from(h.command);
            if command == Ok(Command::ConnClose) && !swallowed {
                swallowed = true;
                let _ = lost_tx.send(());
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
                let _ = cs.set_high();
                let _ = released_tx.send(());
                continue;
            }
            let mut to_sam = Vec::new();
            let mut from_sam = 0;
            let response = match command {
                Ok(Command::ConnGetStatus) => {
                    let st = ConnStatusResponse {
                        state: if held {
                            netpool::ConnState::Connected
                        } else {
                            netpool::ConnState::Free
                        },
                        socket_number: h.socket_number,
                        protocol: 0,
                        rssi: 0,
                        local_port: if held { 80 } else { 0 },
                        remote_port: if held { REMOTE_PORT } else { 0 },
                        remote_ip: if held { REMOTE_IP } else { 0 },
                        bytes_available: 0,
                        write_buffer_space: if held { 2048 } else { 0 },
                        connected_sockets: u16::from(held),
                        other_end_closed_sockets: 0,
                    };
                    to_sam = st.encode().to_vec();
                    to_sam.len() as i32
                }
                Ok(Command::ConnClose | Command::ConnAbort) => {
                    held = false;
                    0
                }
                Ok(Command::ConnWrite) => {
                    from_sam = usize::from(h.data_length);
                    h.data_length.into()
                }
                _ => 0,
            };
            let mut param = [0u8; 4];
            let _ = spi.transfer(&mut param, &response.to_le_bytes());
            to_sam.resize(padded_len(to_sam.len()), 0);
            let _ = spi.write(&to_sam);
            let mut data = std::vec![0u8; padded_len(from_sam)];
            let _ = spi.read(&mut data);
            let _ = cs.set_high();
        }
    });
    Script {
        log,
        lost,
        release,
        released,
        stop,
        thread,
    }
}

/// Seen under CPU load: a `connClose` lost to the SPI timeout left the connection
/// open in the module while the board forgot the socket; at the next poll the board
/// took it for a new connection and later sent it a second response. The board
/// must ask again, and must not count a new connection.
#[test]
fn a_close_lost_to_the_spi_timeout_is_sent_again_not_taken_for_a_new_connection() {
    let bus = VirtualBus::new(false);
    let script = scripted_module(&bus);
    let shared = Arc::new(SamShared::default());
    let (_uart_tx, uart) = channel();
    let config = SamConfig {
        spi_timeout: Duration::from_millis(50),
        ..SamConfig::default()
    };
    let mut sam = Sam::new(bus.sam_side(), config, shared.clone(), uart);
    // Socket 0 has handed its whole response to the module: push, then close.
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
    sam.sockets[0] = SamSocket {
        phase: Phase::Active,
        remote_ip: REMOTE_IP,
        remote_port: REMOTE_PORT,
        responder: true,
        sent: response.len(),
        response: Some(response),
        ..SamSocket::new()
    };
    sam.serve(0, Instant::now());
    script
        .lost
        .recv_timeout(Duration::from_secs(10))
        .expect("the board sent connClose");
    let _ = script.release.send(());
    script
        .released
        .recv_timeout(Duration::from_secs(10))
        .expect("the module let the lost transfer go");
    assert_eq!(
        shared.stats.link_errors.load(Ordering::Relaxed),
        1,
        "the close timed out"
    );

    // The module still shows the connection: the board closes it again.
    assert!(sam.poll(0));
    let closes = |log: &Mutex<Vec<u8>>| {
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().filter(|&&c| c == Command::ConnClose as u8).count()
    };
    assert_eq!(closes(&script.log), 2, "the lost connClose was sent again");
    assert_eq!(shared.stats.release_retries.load(Ordering::Relaxed), 1);
    assert_eq!(
        shared.stats.connections.load(Ordering::Relaxed),
        0,
        "the old connection was not taken for a new one"
    );
    assert_eq!(sam.sockets[0].phase, Phase::Inactive);
    assert!(sam.sockets[0].response.is_none(), "nothing left to send on it");
    // The module has let go now: the next poll finds the number free.
    assert!(!sam.poll(0));
    assert_eq!(closes(&script.log), 2);
    assert_eq!(shared.stats.connections.load(Ordering::Relaxed), 0);

    script.stop.store(true, Ordering::Relaxed);
    script.thread.join().expect("the scripted module ran to its end");
}
