//! nftables rules in the test's namespace (`ip netns exec NAME nft -f -`): packet loss
//! on the TAP device (netdev ingress and egress hooks), and connections made to vanish
//! (every packet of theirs dropped both ways). The rules live in the namespace and go
//! with it.
//!
//! Needs `nft` (Debian: `apt-get install nftables`). A phase that needs it and finds
//! it missing FAILS, saying so; it never skips.

use std::io::Write;
use std::process::Stdio;

use super::Netns;

/// Fail the test, loudly, unless `nft` runs in the namespace.
pub fn require(ns: &Netns) {
    let out = ns.command("nft").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "TAP test cannot run: `nft --version` failed in namespace {} ({}): {}. \
             This phase needs nftables (apt-get install nftables); this is a failure, not a skip.",
            ns.name,
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "TAP test cannot run: cannot run `nft` in namespace {} ({e}). This phase needs \
             nftables (apt-get install nftables); this is a failure, not a skip.",
            ns.name
        ),
    }
}

/// Run an nft script in the namespace; fail the test if nft refuses it.
pub fn apply(ns: &Netns, script: &str) {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run nft in {} (apt-get install nftables): {e}", ns.name));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .expect("write the nft script");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft -f in {} failed ({}): {}\nscript:\n{script}",
        ns.name,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The device nothing reads that [`start_loss`] sends the client's lost frames to.
const BLACKHOLE: &str = "npt-bh0";

/// Lose `percent` % of the frames each way on the TAP device, as on the air: the
/// kernel's TCP must not see the loss, only the silence. So both rules are netdev
/// hooks on the TAP device (`numgen random mod 100 < percent`): frames from the device
/// are dropped at ingress (before IP), frames to the device are taken at egress and
/// sent to a TAP device nobody reads ([`BLACKHOLE`]: `fwd` is a stolen verdict, the
/// sender sees success). A drop in the inet output chain would not do: the kernel's
/// TCP gets EPERM for its own packet, keeps it unsent without a retransmission timer
/// and sends it only at its next event, so a client's request waited up to 5 s (the
/// bridge answered 408) where a real loss costs one retransmission (200 ms).
/// Table `netdev npt_loss`.
pub fn start_loss(ns: &Netns, percent: u32) {
    let tap = &ns.tap;
    for step in [
        &["tuntap", "add", "dev", BLACKHOLE, "mode", "tap"][..],
        &["link", "set", BLACKHOLE, "up"],
    ] {
        let out = ns.command("ip").args(step).output().expect("ip");
        assert!(
            out.status.success(),
            "ip {step:?} in {}: {}",
            ns.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    apply(
        ns,
        &format!(
            "table netdev npt_loss {{\n\
             \tchain ingress {{ type filter hook ingress device \"{tap}\" priority 0; \
             numgen random mod 100 < {percent} counter drop; }}\n\
             \tchain egress {{ type filter hook egress device \"{tap}\" priority 0; \
             numgen random mod 100 < {percent} counter fwd to \"{BLACKHOLE}\"; }}\n\
             }}\n"
        ),
    );
}

/// Remove the loss table (and the device the lost frames went to).
pub fn stop_loss(ns: &Netns) {
    apply(ns, "delete table netdev npt_loss\n");
    let _ = ns.command("ip").args(["link", "del", BLACKHOLE]).output();
}

/// The frames the loss table took so far (from the device, to the device).
pub fn loss_counters(ns: &Netns) -> (u64, u64) {
    let out = ns
        .command("nft")
        .args(["list", "table", "netdev", "npt_loss"])
        .output()
        .expect("nft list");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = text
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok());
    (counts.next().unwrap_or(0), counts.next().unwrap_or(0))
}

/// The table `inet npt_vanish`, with empty input and output chains.
pub fn start_vanish(ns: &Netns) {
    apply(
        ns,
        "table inet npt_vanish {\n\
         \tchain input { type filter hook input priority 0; policy accept; }\n\
         \tchain output { type filter hook output priority 0; policy accept; }\n\
         }\n",
    );
}

/// From now on drop every packet of the client connection whose local port is `port`
/// (to `peer`), both ways: no FIN, no RST, no ACK ever leaves it, nothing reaches it.
pub fn vanish(ns: &Netns, peer: std::net::Ipv4Addr, port: u16) {
    apply(
        ns,
        &format!(
            "add rule inet npt_vanish input ip saddr {peer} tcp dport {port} counter drop\n\
             add rule inet npt_vanish output ip daddr {peer} tcp sport {port} counter drop\n"
        ),
    );
}
