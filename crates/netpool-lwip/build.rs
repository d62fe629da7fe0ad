//! Builds the C side of the backend.
//!
//! * `c/shim.c`, always: small accessor functions over lwIP's macros and structs
//!   (`tcp_sndbuf`, the PCB state, addresses...), so the Rust side never depends on the
//!   layout of an lwIP struct and works with whatever `lwipopts.h` the firmware uses.
//! * With feature `bundled`: lwIP itself (core, IPv4, TCP; no sockets, no netconn) and
//!   `c/port.c` (the host port: diagnostics hook, random numbers, the simulator's
//!   network interface), compiled with `c/lwipopts.h`.
//!
//! # Where lwIP's C sources come from (feature `bundled`)
//!
//! 1. `NETPOOL_LWIP_SRC`, if set: the root of any lwIP 2.x tree (the directory holding
//!    `src/include/lwip/init.h`), e.g. a git checkout of lwIP.
//! 2. Otherwise the `lwip` crate (0.4.0) from crates.io, which ships lwIP's sources.
//!    `Cargo.toml` declares it as a dependency for a platform that never matches
//!    (`cfg(any())`), so it is never compiled — its own build script (bindgen, an
//!    older lwIP under `old-src/`, a fixed configuration) never runs — but Cargo.lock
//!    pins it with its checksum. This script asks `cargo metadata` where it is;
//!    `cargo metadata` downloads it (and, as it resolves every package, the sources
//!    of the `lwip` crate's own dependencies) on first use.
//!
//! Without `bundled`, the firmware links its own lwIP. `c/shim.c` is then compiled
//! against the firmware's headers when `NETPOOL_LWIP_INCLUDE` lists their directories
//! (the one holding `lwipopts.h`, lwIP's `src/include`, the port's `arch/`...); if it
//! is not set, nothing is compiled here and the firmware's own C build must compile
//! `c/shim.c` (see the README).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// lwIP's C files for a NO_SYS, IPv4-only, TCP-only build.
const LWIP_FILES: &[&str] = &[
    "src/core/init.c",
    "src/core/def.c",
    "src/core/inet_chksum.c",
    "src/core/ip.c",
    "src/core/mem.c",
    "src/core/memp.c",
    "src/core/netif.c",
    "src/core/pbuf.c",
    "src/core/stats.c",
    "src/core/tcp.c",
    "src/core/tcp_in.c",
    "src/core/tcp_out.c",
    "src/core/timeouts.c",
    "src/core/udp.c",
    "src/core/ipv4/icmp.c",
    "src/core/ipv4/ip4.c",
    "src/core/ipv4/ip4_addr.c",
    "src/core/ipv4/ip4_frag.c",
    "src/api/err.c",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-env-changed=NETPOOL_LWIP_SRC");
    println!("cargo:rerun-if-env-changed=NETPOOL_LWIP_INCLUDE");
    let here = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));

    if env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        let root = lwip_root(&here);
        let version = lwip_version(&root);
        if !version.starts_with("2.") {
            panic!(
                "lwIP at {} is version {version}; netpool-lwip needs lwIP 2.x",
                root.display()
            );
        }
        println!("cargo:rustc-env=NETPOOL_LWIP_VERSION={version}");
        println!("cargo:rustc-env=NETPOOL_LWIP_SRC_DIR={}", root.display());
        println!("cargo:version={version}");
        println!("cargo:root={}", root.display());

        let mut build = cc::Build::new();
        build
            .include(here.join("c"))
            .include(here.join("c/include"))
            .include(root.join("src/include"))
            .warnings(false)
            .flag_if_supported("-w")
            .file(here.join("c/port.c"))
            .file(here.join("c/shim.c"));
        for f in LWIP_FILES {
            build.file(root.join(f));
        }
        build.compile("netpool_lwip");
    } else if let Some(dirs) = env::var_os("NETPOOL_LWIP_INCLUDE") {
        let mut build = cc::Build::new();
        for dir in env::split_paths(&dirs) {
            build.include(dir);
        }
        build.file(here.join("c/shim.c")).compile("netpool_lwip_shim");
    } else {
        println!(
            "cargo:warning=netpool-lwip: feature `bundled` is off and NETPOOL_LWIP_INCLUDE is not set: \
             compile c/shim.c in the firmware's own C build (README, \"Firmware\")"
        );
    }
}

/// The root of the lwIP tree to compile (see the module docs).
fn lwip_root(here: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("NETPOOL_LWIP_SRC") {
        let dir = PathBuf::from(dir);
        assert!(
            is_lwip_root(&dir),
            "NETPOOL_LWIP_SRC={} does not hold src/include/lwip/init.h",
            dir.display()
        );
        return dir;
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(here.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running `{cargo} metadata` to find the `lwip` crate's sources: {e}"));
    if !out.status.success() {
        panic!(
            "`cargo metadata` failed ({}); set NETPOOL_LWIP_SRC to an lwIP 2.x source tree instead\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json = String::from_utf8_lossy(&out.stdout);
    manifest_paths(&json)
        .into_iter()
        .filter_map(|m| m.parent().map(Path::to_path_buf))
        .find(|dir| {
            dir.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "lwip" || n.starts_with("lwip-"))
                && is_lwip_root(dir)
        })
        .unwrap_or_else(|| {
            panic!(
                "`cargo metadata` lists no `lwip` package holding lwIP's sources; \
                 set NETPOOL_LWIP_SRC to an lwIP 2.x source tree"
            )
        })
}

fn is_lwip_root(dir: &Path) -> bool {
    dir.join("src/include/lwip/init.h").is_file() && dir.join("src/core/tcp.c").is_file()
}

/// Every `"manifest_path":"..."` value in `cargo metadata`'s JSON.
fn manifest_paths(json: &str) -> Vec<PathBuf> {
    const KEY: &str = "\"manifest_path\":\"";
    let mut paths = Vec::new();
    let mut rest = json;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = i;
                    break;
                }
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c => value.push(c),
            }
        }
        rest = &rest[end..];
        paths.push(PathBuf::from(value));
    }
    paths
}

/// "MAJOR.MINOR.REVISION" plus lwIP's suffix ("d": development snapshot), from
/// `lwip/init.h` (what lwIP's own `LWIP_VERSION_STRING` says).
fn lwip_version(root: &Path) -> String {
    let init = fs::read_to_string(root.join("src/include/lwip/init.h")).expect("reading lwip/init.h");
    let field = |name: &str| {
        init.lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(name))
                    .then(|| words.next().map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| "?".into())
    };
    // lwIP's own suffix: "" for a release, "d" for a development (git) snapshot.
    let suffix = match field("LWIP_VERSION_RC").as_str() {
        "LWIP_RC_RELEASE" | "255" => String::new(),
        "LWIP_RC_DEVELOPMENT" | "0" => "d".into(),
        rc => format!("rc{rc}"),
    };
    format!(
        "{}.{}.{}{suffix}",
        field("LWIP_VERSION_MAJOR"),
        field("LWIP_VERSION_MINOR"),
        field("LWIP_VERSION_REVISION")
    )
}
