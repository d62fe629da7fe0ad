//! The core alone: no stack, no sockets.
