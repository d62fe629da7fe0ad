//! Headless Chromium as the project's browser tests start it: one binary path and
//! one set of flags, so that every test starts it the same way.

/// Debian's Chromium (package `chromium`), which the browser tests drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless, without a sandbox or GPU, and without the background traffic (updates,
/// sync, QUIC probes) a closed test network refuses. Each test adds its own
/// `--user-data-dir` (a fresh profile) and its URL.
pub const HEADLESS_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];
