//! The bridge's command dispatcher, driven by arbitrary transfers and peer events
//! on the test stack (netpool-testkit's scripted stack) and the mock bus
//! (`esp8266_bridge::mock::exercise`, which asserts the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    esp8266_bridge::mock::exercise(script);
});
