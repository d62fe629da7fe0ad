//! Test support shared by the integration tests.
//!
//! Each test binary includes it with `mod support; use support::*;` and uses a subset,
//! hence the `dead_code` allowance.
//!
//! - [`scripted`]: [`ScriptedStack`], a deterministic in-memory TCP stack where the test
//!   plays the stack's environment and every remote peer (PCB budget with lwIP's
//!   kill-the-oldest, scripted connects and failures, recorded MORE/push flags).

#![allow(dead_code)]

pub mod scripted;

#[allow(unused_imports)] // each test binary uses a subset
pub use scripted::*;
