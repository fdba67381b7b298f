// An emulated Raspberry Pi Pico running the stock MicroPython firmware on rp2040js.
//
//   node tools/pico/pico.mjs --firmware DIR --image flash.img --pty pico.pty [--net]
//        [--seed N] [--log error|warn|info|debug]
// (--seed: the random fractions and moments of cuts; --log: rp2040js's own messages about
// registers it does not model, to stderr.) tools/pico/picoboard.py drives it from Python.
//
// The board as a real one:
// - the REPL over USB CDC, on a pseudo-terminal (socat) that mpremote opens;
// - the littlefs region of the flash (0xA0000, 352 blocks of 4 KiB) kept in --image: every
//   erase and program the firmware makes goes to the file at once, so the file is always
//   the flash as the board left it, and a plain littlefs image for the host tools;
// - hard reset (also machine.reset(), through the watchdog), power cuts now, at a random
//   instruction, or inside a flash erase/program (part of it applied); after either the
//   board boots again on the flash as it was left;
// - with --net, a network over UART0 (data) and UART1 (control), bridged to TCP on
//   loopback (boards/pico/socket.py is the board side).
//
// Commands, one per line on stdin:
//   reset                       hard reset (RUN pin): boot again, flash as it is
//   cut                         power cut now, then boot again
//   off / on                    power cut and stay off / power on
//   arm erase|program|any N F   cut during the N-th next flash operation of that kind,
//                               after applying fraction F (0..1; "r": random) of it
//   arm time LO HI              cut at a random instruction LO to HI ms from now on the
//                               board's clock
//   disarm                      cancel an armed cut
//   status                      print the counters
//   quit                        power off and exit
// Events, one JSON object per line on stdout: ready, boot, usb, cut, status, net, error.
//
// rp2040js quirks worked around here:
// - its UART raises the transmit interrupt again and again: it is never raised (the
//   firmware's UART write does not need it);
// - its USB controller answers every OUT-endpoint arm of the CDC with an empty packet
//   at once, ~100k times per emulated second: the read is held until the host has data;
// - its flash has no chip behind it: the boot ROM's erase and program functions are
//   carried out here;
// - a sleeping core jumps to its next alarm at once: emulated time is paced to stay at
//   or just behind wall time, so board-side sleeps and timeouts last as long as on a board.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { ConsoleLogger, LogLevel, RP2040, USBCDC } from 'rp2040js';

const FLASH_BASE = 0x10000000;
const FS_OFFSET = 0xa0000; // MICROPY_HW_FLASH_STORAGE_BASE of RPI_PICO
const FS_BYTES = 352 * 4096;
const CYCLE_NS = 8; // 125 MHz
const MAX_LAG_NS = 20e6; // emulated time may fall this far behind wall time, no more
const SLICE_MS = 8; // run this long between event-loop turns
const UART_TX_BIT = 1 << 5;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;
const ERRNO = { ECONNREFUSED: 111, ETIMEDOUT: 110, EHOSTUNREACH: 113, ENETUNREACH: 101 };

function parseArgs(argv) {
  const a = { firmware: '', image: '', pty: '', net: false, uf2: 'micropython-v1.28.0-RPI_PICO.uf2',
    bootrom: 'rp2040-bootrom-b1.bin', seed: Date.now(), log: 'none' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'net') a.net = true;
    else if (k in a) a[k] = argv[++i];
    else throw new Error(`unknown option ${argv[i]}`);
  }
  if (!a.firmware || !a.image || !a.pty) throw new Error('need --firmware DIR --image FILE --pty PATH');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// --- firmware and flash -----------------------------------------------------------------

function readBootrom(file) {
  const b = fs.readFileSync(file);
  const words = new Uint32Array(b.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = b.readUInt32LE(i * 4);
  return { words, bytes: b };
}

function readUF2(file) {
  // [offset in flash, payload] for each 512-byte UF2 block
  const b = fs.readFileSync(file);
  const out = [];
  for (let o = 0; o + 512 <= b.length; o += 512) {
    if (b.readUInt32LE(o) !== 0x0a324655 || b.readUInt32LE(o + 4) !== 0x9e5d5157) continue;
    const addr = b.readUInt32LE(o + 12);
    const size = b.readUInt32LE(o + 16);
    out.push([addr - FLASH_BASE, b.subarray(o + 32, o + 32 + size)]);
  }
  if (!out.length) throw new Error(`${file}: no UF2 blocks`);
  return out;
}

function romFunc(rom, c1, c2) {
  // the boot ROM's function table: halfword pointer at 0x14, (code, address) pairs
  const code = c1.charCodeAt(0) | (c2.charCodeAt(0) << 8);
  for (let p = rom.readUInt16LE(0x14); ; p += 4) {
    const c = rom.readUInt16LE(p);
    if (c === 0) throw new Error(`boot ROM has no function ${c1}${c2}`);
    if (c === code) return rom.readUInt16LE(p + 2) & ~1;
  }
}

// The emulator logs every access to a peripheral it does not model; --log error|warn|debug
const quiet = () => {};
const logger = args.log === 'none' ? { debug: quiet, info: quiet, warn: quiet, error: quiet }
  : new ConsoleLogger(LogLevel[args.log[0].toUpperCase() + args.log.slice(1)]);

const rom = readBootrom(path.join(args.firmware, args.bootrom));
const firmware = readUF2(path.join(args.firmware, args.uf2));
const ERASE = romFunc(rom.bytes, 'R', 'E');
const PROGRAM = romFunc(rom.bytes, 'R', 'P');

// The image file: the filesystem region, created erased.
if (!fs.existsSync(args.image) || fs.statSync(args.image).size !== FS_BYTES) {
  if (fs.existsSync(args.image) && fs.statSync(args.image).size !== 0) {
    throw new Error(`${args.image}: not a ${FS_BYTES}-byte flash image`);
  }
  fs.writeFileSync(args.image, Buffer.alloc(FS_BYTES, 0xff));
}
const imageFd = fs.openSync(args.image, 'r+');
const fsFlash = Buffer.alloc(FS_BYTES);
fs.readSync(imageFd, fsFlash, 0, FS_BYTES, 0);

// --- random numbers (seeded, so a run can be repeated) -----------------------------------
let seed = Number(args.seed) >>> 0 || 1;
function random() {
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}

// --- state of one power-on ---------------------------------------------------------------
let mcu = null;
let clock = null;
let cdc = null;
let running = false;
let timer = null;
let base = 0; // wall ns minus emulated ns, the pacing reference
let boots = 0;
const counts = { erases: 0, programs: 0, cuts: 0, resets: 0 };
let armed = null; // {kind, n, fraction}
let cutAt = Infinity; // emulated ns of an armed cut in time
let usbIn = []; // host -> board bytes (Buffers) not yet taken by the board
let usbPending = -1; // OUT endpoint armed by the board while usbIn was empty
let usbMax = 64;

const wallNs = () => Number(process.hrtime.bigint());

function boot() {
  mcu = new RP2040(); // its own SimulationClock: emulated time starts at 0 on each power-on
  clock = mcu.clock;
  mcu.logger = logger;
  mcu.loadBootrom(rom.words);
  for (const [off, data] of firmware) mcu.flash.set(data, off);
  mcu.flash.set(fsFlash, FS_OFFSET);
  for (const u of mcu.uart) {
    u.checkInterrupts = function () {
      this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask & ~UART_TX_BIT));
    };
  }
  mcu.peripherals[0x40058].onWatchdogTrigger = () => restart('watchdog');
  setupUSB();
  netAttach();
  mcu.core.PC = FLASH_BASE;
  boots += 1;
  usbIn = [];
  usbPending = -1;
  base = wallNs() - clock.nanos;
  running = true;
  emit({ event: 'boot', n: boots });
  schedule(0);
}

function powerOff() {
  running = false;
  cutAt = Infinity; // a cut in time belongs to the power-on it was armed in
  if (timer) clearTimeout(timer);
  timer = null;
  netDetach();
  mcu = null;
}

function restart(why) {
  powerOff();
  if (why === 'reset' || why === 'watchdog') counts.resets += 1;
  setImmediate(boot);
}

// --- USB CDC: the REPL ---------------------------------------------------------------------
function setupUSB() {
  cdc = new USBCDC(mcu.usbCtrl);
  const usb = mcu.usbCtrl;
  const theirs = usb.onEndpointRead;
  usb.onEndpointRead = (ep, size) => {
    if (ep !== cdc.outEndpoint) return theirs(ep, size);
    usbPending = ep;
    usbMax = size;
    usbFeed();
  };
  cdc.onDeviceConnected = () => emit({ event: 'usb', n: boots });
  cdc.onSerialData = (data) => { socat.stdin.write(Buffer.from(data)); };
}

function usbFeed() {
  // hands the held OUT read the host's bytes, when there are any (a real host NAKs)
  if (usbPending < 0 || !usbIn.length || !mcu) return;
  const chunk = usbIn[0].subarray(0, usbMax);
  if (chunk.length === usbIn[0].length) usbIn.shift();
  else usbIn[0] = usbIn[0].subarray(chunk.length);
  const ep = usbPending;
  usbPending = -1;
  mcu.usbCtrl.endpointReadDone(ep, new Uint8Array(chunk));
}

const socat = spawn('socat', ['STDIO', `PTY,link=${args.pty},raw,echo=0`], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
socat.stdout.on('data', (b) => {
  if (!running) return; // nobody listens on a board without power
  usbIn.push(b);
  usbFeed();
  kick();
});
socat.on('exit', (code) => { emit({ event: 'error', what: `socat exited ${code}` }); process.exit(1); });
socat.stdin.on('error', () => {});

// --- flash: the boot ROM's erase and program --------------------------------------------------
function flashOp(kind) {
  const r = mcu.core.registers;
  const off = r[0] >>> 0;
  const n = r[1] >>> 0; // erase: count; program: data pointer
  const count = kind === 'erase' ? n : r[2] >>> 0;
  let applied = count;
  let cut = false;
  if (armed && (armed.kind === 'any' || armed.kind === kind) && --armed.n <= 0) {
    const f = armed.fraction === 'r' ? random() : Number(armed.fraction);
    applied = Math.floor(count * Math.min(1, Math.max(0, f)));
    cut = true;
    armed = null;
  }
  if (kind === 'erase') {
    counts.erases += 1;
    mcu.flash.fill(0xff, off, off + applied);
  } else {
    counts.programs += 1;
    for (let i = 0; i < applied; i++) mcu.flash[off + i] &= mcu.readUint8(n + i);
  }
  persist(off, applied);
  if (cut) {
    counts.cuts += 1;
    emit({ event: 'cut', during: kind, offset: off, bytes: count, applied });
    restart('cut');
    return false;
  }
  mcu.core.PC = mcu.core.LR & ~1; // return from the ROM function
  return true;
}

function persist(off, len) {
  const lo = Math.max(off, FS_OFFSET);
  const hi = Math.min(off + len, FS_OFFSET + FS_BYTES);
  if (hi <= lo) return;
  fsFlash.set(mcu.flash.subarray(lo, hi), lo - FS_OFFSET);
  fs.writeSync(imageFd, fsFlash, lo - FS_OFFSET, hi - lo, lo - FS_OFFSET);
}

// --- network over UART0 (data) and UART1 (control) ----------------------------------------------
// Board -> host on UART1: "C<host>:<port>\n" connect, "X" close.
// Host -> board on UART1: "O" connected, "E" + errno byte, "H" peer closed (after its data).
let sock = null;
let sockIn = []; // bytes from the broker not yet fed to UART0
let sockEnded = false;
let toSock = [];
let ctlLine = null;
let ctlOut = [];
let connId = 0;

function netAttach() {
  if (!args.net) return;
  const [u0, u1] = mcu.uart;
  u0.onByte = (b) => { if (sock) toSock.push(b); };
  u1.onByte = (b) => ctlByte(b);
}

function netDetach() {
  closeSock();
  ctlLine = null;
  ctlOut = [];
}

function closeSock() {
  connId += 1;
  if (sock) sock.destroy();
  sock = null;
  sockIn = [];
  toSock = [];
  sockEnded = false;
}

function ctlByte(b) {
  if (ctlLine !== null) {
    if (b === 10) { connectTo(ctlLine); ctlLine = null; } else if (ctlLine.length < 300) ctlLine += String.fromCharCode(b);
  } else if (b === 0x43) { // C
    ctlLine = '';
  } else if (b === 0x58) { // X: the board closed; nothing more of this connection reaches it
    closeSock();
    ctlOut = [];
  }
}

function connectTo(line) {
  closeSock();
  ctlOut = [];
  const i = line.lastIndexOf(':');
  const host = line.slice(0, i);
  const port = Number(line.slice(i + 1));
  const id = connId;
  if (!LOOPBACK.test(host) || !(port > 0 && port < 65536)) {
    emit({ event: 'net', refused: line });
    ctlOut.push(0x45, 101); // ENETUNREACH: only loopback is reachable from here
    return;
  }
  const s = net.connect({ host, port });
  s.setNoDelay(true);
  sock = s;
  let up = false;
  s.on('connect', () => { up = true; if (id === connId) { ctlOut.push(0x4f); kick(); } });
  s.on('data', (d) => {
    if (id !== connId) return;
    sockIn.push(d);
    if (sockIn.length > 64) s.pause();
    kick();
  });
  s.on('end', () => { if (id === connId) { sockEnded = true; kick(); } });
  s.on('error', (e) => {
    if (id !== connId) return;
    if (!up) { ctlOut.push(0x45, ERRNO[e.code] || 111); sock = null; } else sockEnded = true;
    kick();
  });
  s.on('close', () => { if (id === connId && up) { sockEnded = true; kick(); } });
}

function netPump() {
  if (!args.net || !mcu) return;
  const [u0, u1] = mcu.uart;
  if (toSock.length && sock) { sock.write(Buffer.from(toSock)); toSock = []; }
  while (sockIn.length && !u0.rxFIFO.full) {
    const d = sockIn[0];
    let i = 0;
    while (i < d.length && !u0.rxFIFO.full) u0.feedByte(d[i++]);
    if (i === d.length) sockIn.shift(); else sockIn[0] = d.subarray(i);
  }
  if (sock && sock.isPaused() && sockIn.length < 16) sock.resume();
  if (sockEnded && !sockIn.length && sock) { // all its data is in the board's FIFO: hang up
    ctlOut.push(0x48);
    sock.destroy();
    sock = null;
  }
  while (ctlOut.length && !u1.rxFIFO.full) u1.feedByte(ctlOut.shift());
}

// --- the run loop, paced to wall time -------------------------------------------------------
function schedule(ms) {
  if (timer) clearTimeout(timer);
  timer = setTimeout(run, ms);
}

function kick() {
  if (running) schedule(0);
}

function run() {
  timer = null;
  if (!running) return;
  const core = mcu.core;
  const stopAt = performance.now() + SLICE_MS;
  for (;;) {
    netPump();
    const now = wallNs();
    let target = now - base;
    if (clock.nanos < target - MAX_LAG_NS) {
      base = now - clock.nanos - MAX_LAG_NS;
      target = clock.nanos + MAX_LAG_NS;
    }
    if (core.waiting) {
      const next = clock.nextAlarm ? clock.nextAlarm.nanos : Infinity;
      if (cutAt <= target && cutAt < next) {
        clock.tick(cutAt - clock.nanos);
        return timedCut();
      }
      if (next <= target) {
        clock.tick(next - clock.nanos);
        continue;
      }
      if (target > clock.nanos) clock.tick(target - clock.nanos);
      if (!core.waiting) continue;
      const ms = next === Infinity ? 20 : Math.min(20, Math.max(1, (next - target) / 1e6));
      return schedule(ms);
    }
    if (clock.nanos > target) return schedule(1); // ahead of wall time: let it catch up
    for (let i = 0; i < 4000 && !core.waiting; i++) {
      if (clock.nanos >= cutAt) return timedCut();
      const pc = core.registers[15];
      if ((pc === ERASE || pc === PROGRAM) && !flashOp(pc === ERASE ? 'erase' : 'program')) return;
      clock.tick(core.executeInstruction() * CYCLE_NS);
      if (!running) return;
    }
    if (performance.now() > stopAt) return void setImmediate(run);
  }
}

function timedCut() {
  cutAt = Infinity;
  counts.cuts += 1;
  emit({ event: 'cut', during: 'time', at_ms: clock.nanos / 1e6 });
  restart('cut');
}

// --- commands --------------------------------------------------------------------------------
function status() {
  return { event: 'status', boots, running, ...counts, armed, cut_at_ms: cutAt / 1e6, emulated_s: clock ? clock.nanos / 1e9 : 0 };
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  switch (cmd) {
    case 'reset': if (running) restart('reset'); else boot(); break;
    case 'cut': counts.cuts += 1; emit({ event: 'cut', during: 'run' }); restart('cut'); break;
    case 'off': counts.cuts += 1; powerOff(); emit({ event: 'off' }); break;
    case 'on': if (!running) boot(); break;
    case 'arm':
      if (rest[0] === 'time') {
        const lo = Number(rest[1] || 0);
        const hi = Number(rest[2] || lo);
        cutAt = (clock ? clock.nanos : 0) + (lo + (hi - lo) * random()) * 1e6;
      } else {
        armed = { kind: rest[0] || 'any', n: Number(rest[1] || 1), fraction: rest[2] || 'r' };
      }
      break;
    case 'disarm': armed = null; cutAt = Infinity; break;
    case 'status': emit(status()); break;
    case 'quit': quit(0); break;
    case '': break;
    default: emit({ event: 'error', what: `unknown command ${cmd}` });
  }
});
rl.on('close', () => quit(0));

function quit(code) {
  powerOff();
  fs.closeSync(imageFd);
  socat.removeAllListeners('exit');
  socat.kill();
  process.exit(code);
}
process.on('SIGTERM', () => quit(0));

emit({ event: 'ready', pty: args.pty, image: args.image, erase: ERASE, program: PROGRAM });
boot();
