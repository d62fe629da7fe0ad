#!/usr/bin/env python3
"""Worst-case stack depth of a call tree in the linked firmware, from its disassembly.

Usage: stack_depth.py ELF ROOT [--edge CALLER=CALLEE ...] (a name, or a part of mangled names) [--objdump TOOL]

For each function: its frame (the prologue's `addi a1, a1, -N`, or `movi aX, -N` with
`add`/`or` into a1, as gcc and LLVM emit for the lx106's CALL0 ABI) and its calls
(`call0 ADDR`, and `callx0 aN` whose register was last loaded by `l32r aN, <literal>`
pointing at a function). The depth of ROOT is its frame plus the deepest callee's,
recursively; recursion is cut (and reported). Calls through a function pointer
(`callx0` of a register loaded otherwise) cannot be followed: they are counted and
listed; --edge adds known targets by hand (e.g. lwIP's netif->output).

A static estimate: it does not know which paths run, only which exist, and it misses
what only function pointers reach except the --edge ones.
"""
import re
import signal
import subprocess
import sys
from collections import defaultdict


def _prologue(op, rest, regs):
    """Bytes this prologue instruction takes off the stack pointer a1, if any. The
    lx106's CALL0 prologues: `addi a1, a1, -n`; `addmi a1, a1, -n`; gcc's `movi aX, n`
    + `sub a1, a1, aX`; LLVM's `addi aX, a1, -n` + `or a1, aX, aX`, and `movi aX, -n`
    + `add aY, a1, aX` (+ `or a1, aY, aY`)."""
    m = re.match(r"(a\d+), (a\d+), (-?\d+)$", rest)
    if op in ("addi", "addmi") and m and m.group(2) == "a1" and int(m.group(3)) < 0:
        return -int(m.group(3))
    m = re.match(r"(a\d+), (0x[0-9a-f]+|-?\d+)$", rest)
    if op == "movi" and m:
        v = int(m.group(2), 0)
        if v >= 0x80000000:
            v -= 1 << 32
        regs["movi:" + m.group(1)] = v
        return 0
    m = re.match(r"(a\d+), (a\d+), (a\d+)$", rest)
    if m and m.group(2) == "a1":
        v = regs.get("movi:" + m.group(3))
        if v is not None:
            if op == "sub" and v > 0:
                return v
            if op == "add" and v < 0:
                return -v
    return 0


def _keeps_first_operand(op):
    """Instructions whose first operand is not a register they write."""
    return (
        (op[0] == "s" and op[1:2].isdigit())  # stores: s8i, s16i, s32i(.n), s32e
        or op.startswith("b")  # branches
        or op in ("j", "jx", "ret", "ret.n", "call0", "callx0", "wsr", "wur", "wer", "nop", "nop.n")
        or op.startswith("wsr.")
    )


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = sys.argv[1:]
    objdump = "xtensa-lx106-elf-objdump"
    edges = []
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--edge":
            edges.append(args[i + 1].split("=", 1))
            i += 2
        elif args[i] == "--objdump":
            objdump = args[i + 1]
            i += 2
        else:
            pos.append(args[i])
            i += 1
    elf, root = pos
    text = subprocess.run([objdump, "-d", elf], capture_output=True, text=True, check=True).stdout

    func_re = re.compile(r"^([0-9a-f]{8}) <(.+)>:$")
    ins_re = re.compile(r"^([0-9a-f]{8}):\s+[0-9a-f]+\s+(\S+)\s*(.*)$")
    frames, calls, indirect = {}, defaultdict(set), defaultdict(int)
    addr_name = {}
    cur = None
    done = set()
    regs = {}
    head = 0
    for line in text.splitlines():
        m = func_re.match(line)
        if m:
            cur = m.group(2)
            addr_name[int(m.group(1), 16)] = cur
            frames.setdefault(cur, 0)
            regs = {}
            head = 0
            continue
        m = ins_re.match(line.strip()) if cur else None
        if not m:
            continue
        op, rest = m.group(2), m.group(3)
        head += 1
        if head <= 12 and cur not in done:
            frame = _prologue(op, rest, regs)
            if frame:
                frames[cur] += frame
                # gcc may follow `addmi a1, a1, -256*k` with an `addi a1, a1, -n`
                if op != "addmi":
                    done.add(cur)
        if op != "l32r" and not _keeps_first_operand(op):
            d = re.match(r"(a\d+)\b", rest)
            if d:
                regs.pop(d.group(1), None)
        if op == "l32r":
            lm = re.match(r"(a\d+), \S+ \S+ \(([0-9a-f]+)", rest)
            if lm:
                regs[lm.group(1)] = int(lm.group(2), 16)
        elif op == "call0":
            cm = re.match(r"([0-9a-f]+)", rest)
            if cm:
                calls[cur].add(int(cm.group(1), 16))
        elif op == "callx0":
            r = rest.strip()
            if r in regs:
                calls[cur].add(regs[r])
            else:
                indirect[cur] += 1
    by_name = {v: k for k, v in addr_name.items()}
    def resolve(spec):
        """Functions named by `spec`: alternatives separated by `|`; each a name (with
        gcc's clones of it, `name.constprop.0`, `name$part$0`), else every function
        whose name contains it."""
        found = []
        for name in spec.split("|"):
            exact = [n for n in by_name if n == name or re.match(re.escape(name) + r"[.$]", n)]
            found += exact or [n for n in by_name if name in n]
        return found

    for a, b in edges:
        callers, callees = resolve(a), resolve(b)
        if not callers or not callees:
            print(f"warning: --edge {a}={b}: no such function", file=sys.stderr)
        for caller in callers:
            for callee in callees:
                calls[caller].add(by_name[callee])

    memo, cut = {}, set()

    def depth(name, stack):
        if name in memo:
            return memo[name]
        if name in stack:
            cut.add(name)
            return (0, [])
        stack.add(name)
        best = (0, [])
        for target in calls.get(name, ()):
            callee = addr_name.get(target)
            if callee is None:
                continue
            d = depth(callee, stack)
            if d[0] > best[0]:
                best = d
        stack.discard(name)
        res = (frames.get(name, 0) + best[0], [name] + best[1])
        memo[name] = res
        return res

    roots = resolve(root)
    if not roots:
        sys.exit(f"{root}: no such function in {elf}")
    root = roots[0]
    sys.setrecursionlimit(100000)
    total, path = depth(root, set())
    print(f"worst-case stack from {root}: {total} bytes (static estimate)")
    print("deepest path (frame bytes):")
    for name in path:
        short = name if len(name) < 110 else name[:107] + "..."
        print(f"  {frames.get(name, 0):6d}  {short}")
    reach = set()
    todo = [root]
    while todo:
        n = todo.pop()
        if n in reach:
            continue
        reach.add(n)
        todo.extend(addr_name[t] for t in calls.get(n, ()) if t in addr_name)
    ind = sorted((n for n in reach if indirect.get(n)), key=lambda n: -indirect[n])
    print(f"reachable functions: {len(reach)}; with calls through function pointers: {len(ind)}"
          f" ({sum(indirect[n] for n in ind)} call sites, not followed)")
    for n in ind:
        short = n if len(n) < 100 else n[:97] + "..."
        print(f"  {indirect[n]:3d} x  {short}")
    if cut:
        print(f"recursion cut at: {len(cut)} function(s)")


if __name__ == "__main__":
    main()
