#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod link;
pub mod stack;
pub mod state;
pub mod time;

pub use error::{Classify, Disposition, ErrorClass, LwipErr};
pub use link::{LinkState, LinkStatus};
pub use state::ConnState;
pub use time::{Duration, Instant};
