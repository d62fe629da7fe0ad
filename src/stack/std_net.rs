//! OS-socket backend (placeholder, being written).
