//! The decoders and the command dispatcher on hostile input, on the target CPU: the
//! bridge package's fuzz regression inputs, a realistic script and generated scripts,
//! through `esp8266_bridge::mock::exercise` (which asserts the dispatcher's
//! invariants; a broken invariant panics, and the panic handler reports it).

use esp8266_bridge::mock::exercise;
use esp8266_bridge::protocol::*;

use crate::harness::{Ctx, Outcome, Test};
use crate::{ensure, ensure_eq};

include!(concat!(env!("OUT_DIR"), "/regressions.rs"));

/// Decoder tests (no bridge: small enough for the chip's RAM).
pub const DECODE: &[Test] = &[
    ("decode_regressions", decode_regressions),
    ("decoders_take_arbitrary_bytes", decoders_take_arbitrary_bytes),
];

/// Dispatcher tests on the test stack and the mock bus.
pub const DISPATCH: &[Test] = &[
    ("dispatch_regressions", dispatch_regressions),
    (
        "a_long_realistic_script_serves_transfers",
        a_long_realistic_script_serves_transfers,
    ),
    (
        "generated_scripts_keep_the_invariants",
        generated_scripts_keep_the_invariants,
    ),
];

/// Every decoder on `bytes`: no panic, and what decodes re-encodes to itself.
fn decode_everything(t: &mut Ctx<'_>, bytes: &[u8]) -> Outcome {
    if let Ok(h) = SamHeader::decode(bytes) {
        let _ = h.validate();
        let _ = h.socket();
        ensure_eq!(t, SamHeader::decode(&h.encode()), Ok(h));
    }
    let _ = SamHeader::decode_prefix(bytes);
    if let Ok(h) = EspHeader::decode(bytes) {
        let _ = h.validate();
    }
    if let Ok(s) = ConnStatusResponse::decode(bytes) {
        ensure_eq!(t, ConnStatusResponse::decode(&s.encode()), Ok(s));
    }
    if let Ok(l) = ListenOrConnectData::decode(bytes) {
        ensure_eq!(t, ListenOrConnectData::decode(&l.encode()), Ok(l));
    }
    if let Ok(w) = WirelessConfigurationData::decode(bytes) {
        ensure_eq!(t, WirelessConfigurationData::decode(&w.encode()), Ok(w));
    }
    if let Ok(n) = NetworkStatusResponse::decode(bytes) {
        let _ = n.encode();
    }
    if bytes.len() >= 4 {
        let code = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let _ = Reply::from_code(code);
        let _ = Response::try_from(code);
    }
    Ok(())
}

fn decode_regressions(t: &mut Ctx<'_>) -> Outcome {
    let mut n = 0;
    for (name, bytes) in REGRESSIONS {
        // Every input goes through the decoders (the dispatch inputs are bytes too).
        decode_everything(t, bytes)?;
        n += usize::from(name.starts_with("decode-"));
    }
    ensure!(t, n > 0, "no decode-* inputs in fuzz/regressions");
    Ok(())
}

fn dispatch_regressions(t: &mut Ctx<'_>) -> Outcome {
    let mut n = 0;
    for (name, bytes) in REGRESSIONS {
        if name.starts_with("dispatch-") {
            exercise(bytes);
            n += 1;
        }
    }
    ensure!(t, n > 0, "no dispatch-* inputs in fuzz/regressions");
    Ok(())
}

fn a_long_realistic_script_serves_transfers(t: &mut Ctx<'_>) -> Outcome {
    // listen on 80, a peer connects and sends, the SAM polls and reads.
    let mut script = [0u8; 12 + 10 * 18];
    script[..12].copy_from_slice(&[8, 0, 0, 4, 5, 0, 7, 9, 6, 1, 20, 65]);
    for i in 0..10 {
        let at = 12 + i * 18;
        script[at..at + 9].copy_from_slice(&[0, 0, 6, 0, 0, 0, 0, 20, 0]); // connGetStatus socket 0
        script[at + 9..at + 18].copy_from_slice(&[1, 0, 4, 0, 0, 0, 0, 0, 1]); // connRead 256
    }
    let out = exercise(&script);
    ensure!(t, out.transfers >= 21, "{:?}", out);
    ensure_eq!(t, out.incoming, 1);
    Ok(())
}

/// xorshift32: deterministic pseudo-random bytes.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

/// Generated scripts per run.
const SCRIPTS: u32 = 32;

fn generated_scripts_keep_the_invariants(t: &mut Ctx<'_>) -> Outcome {
    let mut rng = Rng(0x5eed_1234);
    let mut script = [0u8; 1024];
    let (mut transfers, mut incoming) = (0, 0);
    for _ in 0..SCRIPTS {
        // A listener on port 80 and a peer connecting to it, then random steps.
        script[..8].copy_from_slice(&[8, 0, 0, 4, 5, 0, 7, 9]);
        let len = 64 + (rng.next() as usize % (script.len() - 64));
        rng.fill(&mut script[8..len]);
        let out = exercise(&script[..len]);
        transfers += out.transfers;
        incoming += out.incoming;
    }
    // Each script ends with networkStop (one transfer); random bytes add more.
    ensure!(t, transfers > SCRIPTS, "{} transfers served", transfers);
    ensure!(t, incoming >= SCRIPTS, "{} peers connected", incoming);
    Ok(())
}

fn decoders_take_arbitrary_bytes(t: &mut Ctx<'_>) -> Outcome {
    let mut rng = Rng(0xC0FF_EE11);
    let mut bytes = [0u8; 200];
    for round in 0..500 {
        let len = round % bytes.len();
        rng.fill(&mut bytes[..len]);
        if len >= 1 && round % 3 == 0 {
            bytes[0] = FORMAT_VERSION;
        }
        decode_everything(t, &bytes[..len])?;
    }
    Ok(())
}
