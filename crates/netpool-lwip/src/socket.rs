//! [`LwipSocket`], the token the rest of the crate holds for an lwIP PCB: the
//! registry's index and generation ([`ffi`](crate::ffi) resolves it).

use core::fmt;

/// A socket of [`LwipStack`](crate::LwipStack): a `Copy` token (table index + generation).
///
/// It names a fresh or bound socket, a listener (after [`listen`](embedded_nal::TcpFullStack::listen))
/// or a connection. Once it is given back (`close`, `abort`), every copy is stale
/// ([`LwipError::Stale`](crate::LwipError::Stale)) and never reaches the slot's next user.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LwipSocket {
    index: u16,
    generation: u32,
}

impl LwipSocket {
    pub(crate) const fn new(index: u16, generation: u32) -> Self {
        LwipSocket { index, generation }
    }

    /// The table slot.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The generation the token was issued for.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for LwipSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lwip {}#{}", self.index, self.generation)
    }
}
