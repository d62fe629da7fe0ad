//! Local ports: the ephemeral range for connects, seeded, skipping ports in use.

use super::{tcp_ref, Role, SmolError, SmoltcpStack};

/// First port of the ephemeral range (IANA dynamic ports).
pub(super) const EPHEMERAL_FIRST: u16 = 49152;
/// Number of ports in the ephemeral range (49152..=65535).
pub(super) const EPHEMERAL_COUNT: u16 = 16384;

impl<'a, const M: usize> SmoltcpStack<'a, M> {
    /// Whether `port` is bound or listened on by this stack (what `bind` refuses, like
    /// a host with `SO_REUSEADDR`: connections on the port do not block it).
    pub(super) fn port_reserved(&self, port: u16) -> bool {
        self.listeners.iter().any(|l| l.open && l.port == port)
            || self.entries.iter().any(|e| e.role == (Role::Bound { port }))
    }

    /// Whether `port` is reserved or the local port of any socket in the set, even a
    /// closing or TIME-WAIT one (what an ephemeral port must not be).
    pub(super) fn port_in_use(&self, port: u16) -> bool {
        self.port_reserved(port)
            || self.entries.iter().any(|e| {
                let s = tcp_ref(&self.sockets, e.handle);
                s.local_endpoint().is_some_and(|ep| ep.port == port)
                    || (s.is_listening() && s.listen_endpoint().port == port)
            })
    }

    /// The next ephemeral port not in use.
    pub(super) fn ephemeral_port(&mut self) -> Result<u16, SmolError> {
        for _ in 0..EPHEMERAL_COUNT {
            let port = self.next_port;
            self.next_port = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            if !self.port_in_use(port) {
                return Ok(port);
            }
        }
        Err(SmolError::NoPort)
    }
}
