#!/usr/bin/env python3
"""Half-open SYNs against furnace-net-host on a TAP device: a measurement, not a test.

    sudo python3 examples/pico-w-furnace/half-open-syns.py target/debug/furnace-net-host

Creates a network namespace with a TAP device (10.77.0.1/24 on the kernel's side),
starts the binary on it (10.77.0.2), and from inside the namespace sends raw SYNs to
port 80 from spoofed addresses of the TAP subnet (10.77.0.100-250) that answer
nothing, not even ARP: every such handshake stays half-open on the device. Two phases:

  burst:     24 SYNs at once, then a client (curl) every 100 ms for 12 s: how long
             until the first one is served, how many are served;
  sustained: 20 SYN/s for 30 s (and a client every 250 ms meanwhile): how many of
             the clients are served (each given 2 s).

Prints one line per phase and the binary's final `report` line (lease_* counters).
Needs root, iproute2, curl and /dev/net/tun.
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time

NS = f"emb-lease-{os.getpid()}"
HOST_IP, DEVICE_IP = "10.77.0.1", "10.77.0.2"


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def syn(src: str, sport: int, dst: str, dport: int) -> bytes:
    seq = sport * 1000
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), sport, 0, 64, 6, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def sender():
    """A raw socket inside the namespace (this process enters it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    n = [0]

    def send():
        k = n[0]
        n[0] += 1
        src = f"10.77.0.{100 + k % 151}"
        s.sendto(syn(src, 20000 + k % 40000, DEVICE_IP, 80), (DEVICE_IP, 0))

    return send


def client(timeout: float) -> bool:
    try:
        c = socket.create_connection((DEVICE_IP, 80), timeout=timeout)
        c.settimeout(timeout)
        c.sendall(b"GET /api/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = c.recv(4096)
            if not b:
                break
            data += b
        c.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def main():
    binary = os.path.abspath(sys.argv[1])
    sh("ip", "netns", "add", NS)
    try:
        for step in (
            ["tuntap", "add", "dev", "tap0", "mode", "tap"],
            ["addr", "add", f"{HOST_IP}/24", "dev", "tap0"],
            ["link", "set", "tap0", "up"],
            ["link", "set", "lo", "up"],
        ):
            sh("ip", "-n", NS, *step)
        host = subprocess.Popen(
            ["ip", "netns", "exec", NS, binary, "--tap", "tap0", "--address", f"{DEVICE_IP}/24"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        lines = []

        def pump():
            for line in host.stdout:
                lines.append(line)

        threading.Thread(target=pump, daemon=True).start()
        end = time.time() + 20
        while not any("network up" in l for l in lines):
            if time.time() > end:
                sys.exit("furnace-net-host did not come up")
            time.sleep(0.1)
        # The clients and the raw socket run inside the namespace.
        subprocess.run(["ip", "netns", "exec", NS, sys.executable, __file__, "--inside"], check=True)
        host.stdin.write("report\n")
        host.stdin.flush()
        time.sleep(1)
        report = [l for l in lines if l.startswith("report")]
        if report:
            kv = dict(p.split("=", 1) for p in report[-1].split()[1:])
            print("report:", " ".join(f"{k}={v}" for k, v in kv.items()
                                      if k.startswith(("lease_", "accepted", "backlog_", "responded_ok"))))
    finally:
        # What runs in the namespace is this script's: furnace-net-host.
        pids = subprocess.run(["ip", "netns", "pids", NS], capture_output=True, text=True).stdout.split()
        for pid in pids:
            os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def inside():
    send = sender()
    assert client(5), "not served before any SYN"

    # burst
    t0 = time.time()
    for _ in range(24):
        send()
    first, served, tries = None, 0, 0
    while time.time() - t0 < 12:
        tries += 1
        if client(2):
            served += 1
            if first is None:
                first = time.time() - t0
        time.sleep(0.1)
    print(f"burst: 24 half-open SYNs at once; first client served after "
          f"{'never' if first is None else f'{first:.2f} s'}; {served}/{tries} clients served in 12 s",
          flush=True)
    time.sleep(4)  # let the burst's handshakes expire

    # sustained
    stop = time.time() + 30
    sent = [0]

    def flood():
        while time.time() < stop:
            send()
            sent[0] += 1
            time.sleep(0.05)

    f = threading.Thread(target=flood)
    f.start()
    served, tries = 0, 0
    while time.time() < stop:
        tries += 1
        served += client(2)
        time.sleep(0.25)
    f.join()
    print(f"sustained: {sent[0]} half-open SYNs at 20/s for 30 s; "
          f"{served}/{tries} clients served ({100.0 * served / max(tries, 1):.1f} %)", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--inside"]:
        inside()
    else:
        main()
