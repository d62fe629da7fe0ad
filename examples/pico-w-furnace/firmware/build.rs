//! Puts `memory.x` where cortex-m-rt's `link.x` finds it and links the binary with
//! cortex-m-rt's `link.x`, embassy-rp's `link-rp.x` (boot2 placement) and defmt's
//! `defmt.x`. WIFI_SSID / WIFI_PASSWORD are read with `option_env!` in the source,
//! which rustc tracks itself (changing them rebuilds the firmware).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tlink-rp.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
