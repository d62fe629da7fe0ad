//! Link awareness without probing ([`LinkState`], [`LinkStatus`]).

/// The link as the network driver sees it.
///
/// Whether a connection can be opened is a question for the network driver (WiFi
/// associated? cable in? address assigned?), never for the network: netpool does not
/// open a connection to find out whether it can open one. A stack (or the application)
/// reports the link through [`LinkStatus`]; the pool refuses to connect while the link
/// is [`Down`](LinkState::Down) and treats [`Unknown`](LinkState::Unknown) as up.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkState {
    /// The driver cannot tell. Treated as up.
    #[default]
    Unknown,
    /// Link up and configured: connections may be attempted.
    Up,
    /// Link down: connects are refused at once.
    Down,
}

impl LinkState {
    /// Whether a connect may be attempted: anything but `Down`.
    pub const fn allows_connect(self) -> bool {
        !matches!(self, LinkState::Down)
    }
}

/// A source of the link state: read it from the driver, never probe the network.
///
/// Fallback (the default method): [`LinkState::Unknown`].
pub trait LinkStatus {
    /// The link state now. Must be cheap and must not block or send anything.
    fn link_state(&self) -> LinkState {
        LinkState::Unknown
    }
}
