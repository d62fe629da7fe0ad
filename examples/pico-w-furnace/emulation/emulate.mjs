// Runs the pico-w-furnace firmware (a UF2, as flashed) in rp2040js with an emulated
// MAX6675 on SPI0 and a thermal model of the furnace driven by the relay pins, and
// checks the control loop's behaviour. Exit code 0 when every check passes, 1 otherwise.
//
//   node emulate.mjs [--network none|idle|dead] [--label NAME] FIRMWARE.uf2 ...
//
//   --network none   the `no-wifi` build: no CYW43 code at all (WL_ON never driven)
//   --network idle   the `wifi` build without credentials: the network side logs and
//                    stays off (WL_ON never driven)
//   --network dead   the `wifi` build with credentials: the CYW43 is powered up
//                    (WL_ON high) and its driver waits forever for a chip rp2040js does
//                    not model -- the network is dead while the control loop must run
//
// rp2040js has no bootrom: the image is loaded into flash and the core started at the
// vector table after boot2 (VTOR = 0x10000100). Only core 0 is emulated.
//
// Pins (see ../firmware/README.md): SPI0 SCK GP18, MISO GP16, MAX6675 CS GP17,
// element relay GP14, cutoff (supply-enable, fail-safe) relay GP15, CYW43 WL_ON GP23.
//
// Scenario, in simulated time, for each image:
//   A  0-40 s   furnace at 200 C, setpoint 250 C (boot default), hysteresis 5 C:
//               the element must be on after every reading <= 245 C, off after every
//               reading >= 255 C, the supply enabled, and the furnace held in the band
//   B  40-45 s  open thermocouple (frame bit 2): element off and supply cut within one
//               cycle, for the whole fault; 45-60 s: readings return, regulation resumes
//   C  60 s-    runaway (an uncontrolled 150 C/s heat source): the cutoff trips when a
//               reading reaches 900 C; 2 s later the runaway stops and the furnace is
//               back at 300 C, and the cutoff must stay latched (no reset is sent)
//   throughout  one MAX6675 read and one watchdog feed per 500 ms cycle, no watchdog
//               reset, no panic -- whatever the network side is doing
//   E  end      SPI0 stops completing transfers (a wedged peripheral): the control loop
//               blocks mid-cycle, feeds stop, and the hardware watchdog must fire within
//               its 2 s timeout (so nothing else -- no timer, no network task -- feeds it)
// and, in a second run of the same image:
//   F  5.25 s   a HardFault (what a panic anywhere becomes on the chip) with both relays
//               closed: the fault handler must open both at once, nothing may feed the
//               watchdog any more, and the watchdog must fire

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { RP2040, ConsoleLogger, LogLevel, GPIOPinState } from 'rp2040js';

// ------------------------------------------------------------------ constants

const PIN = { element: 14, supply: 15, cs: 17, wlOn: 23 };
const CYCLE_MS = 500; // pico_w_furnace::cycle::CONTROL_PERIOD_MS
const WATCHDOG_MS = 2000; // firmware control::WATCHDOG_TIMEOUT
const SETPOINT = 250; // pico_w_furnace::control::DEFAULT_SETPOINT_C
const HYST = 5; // Config::DEFAULT.hysteresis
const OVERHEAT = 900; // Config::DEFAULT.overheat
const NS_PER_CYCLE = 8; // 125 MHz clk_sys

// Thermal model: dT/dt = heat - (T - AMBIENT) / TAU, heat = ELEMENT_C_PER_S while the
// element relay and the supply relay are both closed, plus any runaway source.
const AMBIENT = 20;
const TAU_S = 100;
const ELEMENT_C_PER_S = 6;
const RUNAWAY_C_PER_S = 150;

// ------------------------------------------------------------------ arguments

const args = process.argv.slice(2);
const images = [];
let network = 'none';
let label = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--network') network = args[++i];
  else if (args[i] === '--label') label = args[++i];
  else if (args[i] === '-h' || args[i] === '--help') {
    console.log(readFileSync(new URL(import.meta.url)).toString().split('\n').slice(0, 20).join('\n'));
    process.exit(0);
  } else images.push({ path: args[i], network, label: label ?? basename(args[i]) }), (label = null);
}
if (!images.length || images.some((i) => !['none', 'idle', 'dead'].includes(i.network))) {
  console.error('usage: node emulate.mjs [--network none|idle|dead] [--label NAME] FIRMWARE.uf2 ...');
  process.exit(2);
}

// ------------------------------------------------------------------ one run

function loadUf2(mcu, path) {
  const uf2 = readFileSync(path);
  let blocks = 0;
  for (let off = 0; off + 512 <= uf2.length; off += 512) {
    const v = new DataView(uf2.buffer, uf2.byteOffset + off, 512);
    if (v.getUint32(0, true) !== 0x0a324655 || v.getUint32(4, true) !== 0x9e5d5157) {
      throw new Error(`${path}: block ${off / 512} is not a UF2 block`);
    }
    const addr = v.getUint32(12, true);
    const n = v.getUint32(16, true);
    if (addr < 0x10000000 || addr + n > 0x10000000 + mcu.flash.length) {
      throw new Error(`${path}: block at ${addr.toString(16)} outside flash`);
    }
    mcu.flash.set(uf2.subarray(off + 32, off + 32 + n), addr - 0x10000000);
    blocks++;
  }
  return blocks;
}

function frameFor(tempC) {
  const q = Math.max(0, Math.min(0x0fff, Math.round(tempC * 4)));
  return q << 3;
}

function run(image, scenario) {
  const mcu = new RP2040();
  mcu.logger = new ConsoleLogger(LogLevel.Error, true); // ROSC/VREG are unimplemented: quiet
  const blocks = loadUf2(mcu, image.path);
  mcu.core.VTOR = 0x10000100;
  mcu.core.reset();
  const { clock } = mcu;
  const nowMs = () => clock.nanos / 1e6;

  const checks = [];
  const check = (name, ok, detail) => checks.push({ name, ok: !!ok, detail });

  // ---- furnace model
  let temp = 200;
  let modelAt = 0;
  let runaway = false;
  let sensorOpen = false;
  let spiWedged = false;
  const pinHigh = (p) => mcu.gpio[p].value === GPIOPinState.High;
  const advance = () => {
    const t = nowMs();
    const dt = (t - modelAt) / 1000;
    if (dt <= 0) return;
    const heat =
      (pinHigh(PIN.element) && pinHigh(PIN.supply) ? ELEMENT_C_PER_S : 0) +
      (runaway ? RUNAWAY_C_PER_S : 0);
    const eq = AMBIENT + heat * TAU_S;
    temp = eq + (temp - eq) * Math.exp(-dt / TAU_S);
    modelAt = t;
  };

  // ---- relays
  const transitions = { [PIN.element]: [], [PIN.supply]: [] };
  for (const p of [PIN.element, PIN.supply]) {
    mcu.gpio[p].addListener((state) => {
      advance(); // integrate up to the switch with the old state
      transitions[p].push({ t: nowMs(), high: state === GPIOPinState.High });
    });
  }
  let wlOnDriven = false;
  let wlOnHigh = false;
  mcu.gpio[PIN.wlOn].addListener((state) => {
    wlOnDriven = true;
    wlOnHigh = state === GPIOPinState.High;
  });

  // ---- MAX6675 on SPI0: 16-bit frames, MSB first, while CS (GP17) is low
  const reads = []; // { t, temp, open, element, supply } -- relays sampled at the NEXT read
  let frame = 0;
  let byteIndex = 0;
  let csLow = false;
  let badWindows = 0;
  mcu.gpio[PIN.cs].addListener((state) => {
    const low = state === GPIOPinState.Low;
    if (low && !csLow) {
      advance();
      // The outputs now are the decision taken after the previous reading.
      if (reads.length) {
        const prev = reads[reads.length - 1];
        prev.element = pinHigh(PIN.element);
        prev.supply = pinHigh(PIN.supply);
      }
      frame = sensorOpen ? 0x0004 : frameFor(temp);
      reads.push({ t: nowMs(), temp, open: sensorOpen, element: null, supply: null });
      byteIndex = 0;
    } else if (!low && csLow && byteIndex !== 2) {
      badWindows++;
    }
    csLow = low;
  });
  const spi = mcu.spi[0];
  spi.onTransmit = () => {
    if (spiWedged) return; // never completes: the firmware's blocking read spins
    let byte = 0xff; // MISO floats high outside a frame
    if (csLow) byte = byteIndex === 0 ? frame >> 8 : byteIndex === 1 ? frame & 0xff : 0;
    byteIndex++;
    spi.completeTransmit(byte);
  };

  // ---- watchdog and panics
  const watchdog = mcu.peripherals[0x40058];
  const feeds = [];
  const writeWatchdog = watchdog.writeUint32.bind(watchdog);
  watchdog.writeUint32 = (offset, value) => {
    if (offset === 0x04) feeds.push(nowMs()); // LOAD: a feed
    writeWatchdog(offset, value);
  };
  const watchdogFired = [];
  // A real RP2040 resets here. rp2040js only calls this (again on every tick), so
  // record it, stop the watchdog and stop the run.
  watchdog.onWatchdogTrigger = () => {
    watchdogFired.push(nowMs());
    watchdog.timer.enable = false;
    watchdog.alarm.enable = false;
    stopped = true;
  };
  const breaks = [];
  let stopped = false;
  // A panic (panic-probe: `udf`) or breakpoint: rp2040js calls onBreak and carries on;
  // record it and stop the run.
  mcu.onBreak = (code) => {
    breaks.push({ t: nowMs(), code, pc: mcu.core.PC });
    stopped = true;
  };

  // ---- stepping
  let instructions = 0;
  const runUntil = (ms) => {
    const end = ms * 1e6;
    while (clock.nanos < end && !stopped) {
      if (mcu.core.waiting) {
        const d = clock.nanosToNextAlarm;
        clock.tick(d > 0 ? Math.min(d, end - clock.nanos) : end - clock.nanos);
      } else {
        clock.tick(mcu.core.executeInstruction() * NS_PER_CYCLE);
        instructions++;
      }
    }
    advance();
  };
  const wall0 = Date.now();

  // ================================================================ F: a fault
  if (scenario === 'fault') {
    // Cold furnace: both relays closed after the first cycles.
    runUntil(5_250); // between two cycles
    const before = pinHigh(PIN.element) && pinHigh(PIN.supply);
    const feedsBefore = feeds.length;
    // A panic (panic-probe ends in `udf`) or a bus fault anywhere -- in the network
    // stack, say -- enters HardFault on a real RP2040. rp2040js does not escalate
    // `udf`, so the fault is injected: exception 3, as the core would take it.
    const faultAt = nowMs();
    mcu.core.waiting = false;
    mcu.core.exceptionEntry(3);
    runUntil(faultAt + 0.01);
    const offAfter = !pinHigh(PIN.element) && !pinHigh(PIN.supply);
    const off = [PIN.element, PIN.supply].map((p) => transitions[p].find((x) => x.t >= faultAt && !x.high));
    check(
      'F a fault de-energises both relays at once',
      before && offAfter,
      before
        ? `element and supply closed before; after the fault: element ${pinHigh(PIN.element) ? 'ON' : 'off'} ` +
            `(${off[0] ? ((off[0].t - faultAt) * 1000).toFixed(1) + ' us' : 'never'}), supply ${pinHigh(PIN.supply) ? 'ON' : 'cut'} ` +
            `(${off[1] ? ((off[1].t - faultAt) * 1000).toFixed(1) + ' us' : 'never'})`
        : 'relays were not closed before the fault (setup failed)'
    );
    runUntil(faultAt + WATCHDOG_MS + CYCLE_MS + 500);
    const fired = watchdogFired.find((t) => t > faultAt);
    const lastFeed = feeds[feeds.length - 1];
    check(
      'F after the fault: no feeds, the watchdog resets the chip',
      fired !== undefined && feeds.length === feedsBefore && fired - lastFeed <= WATCHDOG_MS + 1,
      fired === undefined
        ? `watchdog did not fire (${feeds.length - feedsBefore} feeds after the fault)`
        : `fired ${(fired - faultAt).toFixed(1)} ms after the fault, ${(fired - lastFeed).toFixed(1)} ms after ` +
            `the last feed; ${feeds.length - feedsBefore} feeds after the fault; relays still ` +
            `${!pinHigh(PIN.element) && !pinHigh(PIN.supply) ? 'open' : 'CLOSED'}`
    );
    return { checks, stats: { blocks, simS: nowMs() / 1000, wallMs: Date.now() - wall0, instructions } };
  }

  // ================================================================ A: regulate
  runUntil(40_000);
  const a = reads.filter((r) => r.t < 40_000 && r.element !== null);
  const lo = SETPOINT - HYST;
  const hi = SETPOINT + HYST;
  const wrongOn = a.filter((r) => r.temp >= hi && r.element);
  const wrongOff = a.filter((r) => r.temp <= lo && !r.element);
  const noSupply = a.filter((r) => !r.supply);
  const onOff = transitions[PIN.element].filter((x) => !x.high && x.t < 40_000).length;
  const firstInBand = a.find((r) => r.temp >= lo);
  const held = firstInBand ? a.filter((r) => r.t >= firstInBand.t).map((r) => r.temp) : [];
  const heldMin = Math.min(...held);
  const heldMax = Math.max(...held);
  check(
    'A element follows the setpoint (on at <= SP-H, off at >= SP+H)',
    a.length >= 70 && wrongOn.length === 0 && wrongOff.length === 0 && onOff >= 2,
    `${a.length} cycles checked, ${wrongOn.length} on above the band, ${wrongOff.length} off below it, ` +
      `element switched off ${onOff} times`
  );
  check('A supply (cutoff relay) enabled while regulating', noSupply.length === 0, `${noSupply.length} cycles with the supply cut`);
  check(
    'A furnace held around the setpoint',
    held.length > 20 && heldMin >= lo - 5 && heldMax <= hi + 5,
    `after reaching ${lo} C: ${heldMin.toFixed(1)}..${heldMax.toFixed(1)} C over ${held.length} readings`
  );

  // ================================================================ B: open thermocouple
  sensorOpen = true;
  runUntil(45_000);
  sensorOpen = false;
  const b = reads.filter((r) => r.open && r.element !== null);
  const bBad = b.filter((r) => r.element || r.supply);
  check(
    'B open thermocouple: element off, supply cut, from the first open frame',
    b.length >= 8 && bBad.length === 0,
    `${b.length} open frames, ${bBad.length} cycles with a relay still closed`
  );
  runUntil(60_000);
  const b2 = reads.filter((r) => r.t >= 46_000 && r.t < 60_000 && r.element !== null);
  const b2Bad = b2.filter((r) => !r.supply || (r.temp <= lo && !r.element) || (r.temp >= hi && r.element));
  check(
    'B readings back: regulation resumes',
    b2.length >= 25 && b2Bad.length === 0 && b2.some((r) => r.element),
    `${b2.length} cycles after the fault, ${b2Bad.length} wrong`
  );

  // ================================================================ C: runaway
  runaway = true;
  let tripAt = null;
  for (let t = 60_000; t < 70_000 && tripAt === null; t += 100) {
    runUntil(t + 100);
    const s = transitions[PIN.supply].find((x) => x.t >= 60_000 && !x.high);
    if (s) tripAt = s.t;
  }
  const hot = reads.find((r) => r.t >= 60_000 && r.temp >= OVERHEAT);
  check(
    'C cutoff trips on runaway',
    tripAt !== null && hot && tripAt - hot.t < 5 && !pinHigh(PIN.element),
    tripAt === null
      ? 'supply never cut'
      : `first reading >= ${OVERHEAT} C at ${hot?.t.toFixed(1)} ms (${hot?.temp.toFixed(1)} C), supply cut ` +
          `${(tripAt - (hot?.t ?? 0)).toFixed(3)} ms later, element ${pinHigh(PIN.element) ? 'ON' : 'off'}`
  );
  const cEnd = (tripAt ?? 70_000) + 2_000;
  runUntil(cEnd);
  runaway = false;
  temp = 300; // the runaway is over; the furnace is far below the reset threshold
  runUntil(cEnd + 10_000);
  const latched = reads.filter((r) => r.t > cEnd && r.element !== null);
  const reclosed = latched.filter((r) => r.supply || r.element);
  check(
    'C cutoff stays latched after the temperature falls (no reset sent)',
    latched.length >= 18 && reclosed.length === 0,
    `${latched.length} cycles at ~300 C after the runaway, ${reclosed.length} with a relay closed`
  );

  // ================================================================ throughout
  const simMs = nowMs();
  const expected = Math.floor(simMs / CYCLE_MS);
  const cyclingGaps = reads.slice(1).map((r, i) => r.t - reads[i].t);
  const maxGap = Math.max(...cyclingGaps);
  check(
    'control loop cycles every 500 ms throughout',
    reads.length >= expected - 1 && maxGap <= CYCLE_MS + 5 && badWindows === 0,
    `${reads.length} MAX6675 reads in ${(simMs / 1000).toFixed(1)} s (expected ~${expected}), ` +
      `longest gap ${maxGap.toFixed(3)} ms, ${badWindows} malformed CS windows`
  );
  // Every feed but the first (the watchdog's start) comes right after a MAX6675 read,
  // i.e. at the end of a control cycle -- never from anywhere else.
  const readTimes = reads.map((r) => r.t);
  const strayFeeds = feeds.slice(1).filter((f) => !readTimes.some((t) => f >= t && f - t < 1));
  check(
    'watchdog fed once per completed cycle (only there), never fired; no panic',
    Math.abs(feeds.length - (reads.length + 1)) <= 1 &&
      strayFeeds.length === 0 &&
      watchdogFired.length === 0 &&
      breaks.length === 0,
    `${feeds.length} feeds for ${reads.length} cycles (${strayFeeds.length} not right after a read), ` +
      `watchdog fired ${watchdogFired.length}x, ${breaks.length} breakpoints/panics`
  );
  const netDetail = wlOnDriven
    ? `WL_ON (GP23) ${wlOnHigh ? 'high: CYW43 powered, its driver still waiting for the chip' : 'driven low'}`
    : 'WL_ON (GP23) never driven: no CYW43 bring-up';
  check(
    `network side: ${image.network}`,
    image.network === 'dead' ? wlOnHigh : !wlOnDriven,
    netDetail
  );

  // ================================================================ E: wedged SPI
  const wedgedAt = nowMs();
  spiWedged = true;
  runUntil(wedgedAt + WATCHDOG_MS + CYCLE_MS + 500);
  const fired = watchdogFired.find((t) => t > wedgedAt);
  const feedsAfter = feeds.filter((t) => t > wedgedAt + CYCLE_MS);
  check(
    'E wedged SPI: feeds stop and the hardware watchdog fires',
    fired !== undefined && fired - wedgedAt <= WATCHDOG_MS + CYCLE_MS + 5 && feedsAfter.length === 0,
    fired === undefined
      ? `watchdog did not fire; ${feedsAfter.length} feeds after the wedge`
      : `fired ${(fired - wedgedAt).toFixed(1)} ms after SPI0 wedged (last feed ` +
          `${(fired - feeds[feeds.length - 1]).toFixed(1)} ms before), ${feedsAfter.length} feeds after the wedge`
  );

  return {
    checks,
    stats: { blocks, simS: nowMs() / 1000, wallMs: Date.now() - wall0, instructions },
  };
}

// ------------------------------------------------------------------ main

let failed = 0;
for (const image of images) {
  console.log(`\n=== ${image.label} (${image.path}), network ${image.network}`);
  for (const scenario of ['main', 'fault']) {
    let result;
    try {
      result = run(image, scenario);
    } catch (e) {
      console.log(`FAIL could not run (${scenario}): ${e.stack ?? e}`);
      failed++;
      continue;
    }
    for (const c of result.checks) {
      console.log(`${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
      if (!c.ok) failed++;
    }
    const s = result.stats;
    console.log(
      `(${scenario}: ${s.blocks} UF2 blocks; ${s.simS.toFixed(1)} s simulated in ${s.wallMs} ms, ` +
        `${s.instructions} instructions)`
    );
  }
}
console.log(failed ? `\nemulation: ${failed} check(s) FAILED` : '\nemulation: all checks passed');
process.exit(failed ? 1 : 0);
