import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../src/devices/irq.js';
import { Uart8250 } from '../../src/devices/uart-8250.js';

// Offsets and bits spelled out here as a driver's header would, independent of the device file.
const RBR = 0, THR = 0, DLL = 0, DLM = 1, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

function setup() {
  const irq = new RecordingIrqLine();
  const sent: number[] = [];
  const uart = new Uart8250({ irq, tx: (b) => void sent.push(b) });
  const inb = (off: number): number => uart.read(off, 1);
  const outb = (off: number, v: number): void => uart.write(off, 1, v);
  return { uart, irq, sent, inb, outb };
}

test('divisor latch through DLAB, scratch register, transmit', () => {
  const { inb, outb, sent, uart } = setup();
  outb(LCR, 0x80); // DLAB
  outb(DLL, 0x01);
  outb(DLM, 0x00); // 115200 baud
  assert.equal(inb(DLL), 0x01);
  assert.equal(inb(DLM), 0x00);
  outb(LCR, 0x03); // 8N1, DLAB off
  assert.equal(inb(LCR), 0x03);
  assert.equal(inb(IER), 0x00); // the divisor did not leak into IER
  outb(SCR, 0x5a);
  assert.equal(inb(SCR), 0x5a);
  for (const b of [0x68, 0x69, 0x0a]) outb(THR, b);
  assert.deepEqual(sent, [0x68, 0x69, 0x0a]);
  assert.equal(inb(LSR), 0x60); // THRE | TEMT, nothing received
  // 7-bit words: the top bit is not sent.
  outb(LCR, 0x02);
  outb(THR, 0xff);
  assert.equal(sent.at(-1), 0x7f);
  assert.equal(uart.getState().divisor, 1);
});

test('IER reads back only its four bits; IIR identifies a 16550A with FIFOs on', () => {
  const { inb, outb } = setup();
  outb(IER, 0xff);
  assert.equal(inb(IER), 0x0f);
  outb(IER, 0);
  assert.equal(inb(IIR), 0x01);
  outb(FCR, 0x01);
  assert.equal(inb(IIR), 0xc1);
  outb(FCR, 0x00);
  assert.equal(inb(IIR), 0x01);
});

test('FIFO receive: LSR.DR follows the FIFO, bytes come back in order, host flow control', () => {
  const { uart, inb, outb } = setup();
  outb(FCR, 0x07); // enable, clear both
  assert.equal(uart.rxSpace(), 16);
  assert.equal(inb(LSR) & 0x01, 0);
  const input = Array.from({ length: 20 }, (_, i) => 0x30 + i);
  assert.equal(uart.receive(input), 16); // FIFO full; the host keeps 4
  assert.equal(uart.rxSpace(), 0);
  assert.equal(uart.receive([0x99]), 0);
  assert.equal(inb(LSR), 0x61); // DR, no overrun: flow control refused instead of losing
  const got: number[] = [];
  while (inb(LSR) & 0x01) got.push(inb(RBR));
  assert.deepEqual(got, input.slice(0, 16));
  assert.equal(inb(LSR), 0x60);
  assert.equal(uart.rxSpace(), 16);
});

test('16450 mode (FIFO off) holds one byte', () => {
  const { uart, inb } = setup();
  assert.equal(uart.rxSpace(), 1);
  assert.equal(uart.receive(Uint8Array.of(1, 2)), 1);
  assert.equal(inb(RBR), 1);
  assert.equal(inb(LSR) & 1, 0);
});

test('lossy receive beyond a full FIFO sets OE, which reading LSR clears', () => {
  const { uart, inb, outb, irq } = setup();
  outb(FCR, 0x01);
  outb(MCR, 0x08); // OUT2
  outb(IER, 0x04); // line status interrupt only
  assert.equal(uart.receive(new Uint8Array(17).fill(0x41), { lossy: true }), 17);
  assert.equal(irq.level, true);
  assert.equal(inb(IIR), 0xc6); // receiver line status
  assert.equal(inb(LSR), 0x63); // DR | OE | THRE | TEMT
  assert.equal(inb(LSR), 0x61); // OE cleared by the read
  assert.equal(irq.level, false);
  assert.equal(inb(IIR), 0xc1);
  // The sixteen bytes before the overrun are intact.
  let n = 0;
  while (inb(LSR) & 1) { assert.equal(inb(RBR), 0x41); n++; }
  assert.equal(n, 16);
});

test('IIR priorities: line status > received data / timeout > THRE > modem status', () => {
  const { uart, inb, outb, irq } = setup();
  outb(FCR, 0x41); // FIFO on, trigger level 4
  outb(MCR, 0x0b); // DTR | RTS | OUT2
  outb(IER, 0x0f);
  // Nothing received; THRE was raised by enabling ETBEI.
  assert.equal(irq.level, true);
  // MCR writes outside loopback do not change the modem inputs: no modem-status source yet.
  assert.equal(inb(MSR), 0xb0); // DCD | DSR | CTS, no deltas
  uart.receive([1, 2]);
  assert.equal(inb(IIR), 0xcc); // below the trigger level: character timeout
  uart.receive([3, 4]);
  assert.equal(inb(IIR), 0xc4); // at the trigger level: received data available
  uart.receive(new Uint8Array(13), { lossy: true }); // 12 fit, one overruns
  assert.equal(inb(IIR), 0xc6); // line status wins
  assert.equal(inb(LSR) & 0x02, 0x02);
  assert.equal(inb(IIR), 0xc4);
  outb(FCR, 0x43); // clear the receive FIFO
  assert.equal(inb(IIR), 0xc2); // THRE is next
  assert.equal(inb(IIR), 0xc1); // ...and reading IIR cleared it
  assert.equal(irq.level, false);
  // Modem status: loopback changes the inputs and records deltas.
  outb(MCR, 0x18); // LOOP | OUT2: CTS, DSR drop; DCD stays (OUT2 -> DCD)
  outb(MCR, 0x08);
  assert.equal(inb(IIR), 0xc0); // modem status
  assert.equal(inb(MSR) & 0x0f, 0x03); // DCTS | DDSR
  assert.equal(inb(IIR), 0xc1);
});

test('THRE interrupt: raised on enabling ETBEI, cleared by IIR read, raised again by a transmit', () => {
  const { inb, outb, irq, sent } = setup();
  outb(MCR, 0x08); // OUT2
  assert.equal(irq.level, false);
  outb(IER, 0x02);
  assert.equal(irq.level, true);
  assert.equal(inb(IIR), 0x02);
  assert.equal(irq.level, false);
  assert.equal(inb(IIR), 0x01);
  // Linux's startup test: IER=0 then IER=THRI again must re-assert THRE.
  outb(IER, 0);
  outb(IER, 0x02);
  assert.equal(irq.level, true);
  assert.equal(inb(IIR), 0x02);
  // A byte written to THR leaves at once; THR is empty again and THRE pending.
  outb(THR, 0x41);
  assert.deepEqual(sent, [0x41]);
  assert.equal(irq.level, true);
  outb(IER, 0);
  assert.equal(irq.level, false);
  assert.equal(inb(IIR), 0x01);
});

test('OUT2 gates the IRQ line as on a PC', () => {
  const { uart, inb, outb, irq } = setup();
  outb(IER, 0x01);
  uart.receive([0x55]);
  assert.equal(inb(IIR), 0x04); // pending inside the UART...
  assert.equal(irq.level, false); // ...but OUT2 is clear
  outb(MCR, 0x08);
  assert.equal(irq.level, true);
  outb(MCR, 0x00);
  assert.equal(irq.level, false);
  outb(MCR, 0x08);
  assert.equal(inb(RBR), 0x55);
  assert.equal(irq.level, false);
  assert.equal(irq.rises, 2);
});

test('loopback: Linux probe sees DCD|CTS, transmitted bytes are received, not sent, with overrun', () => {
  const { uart, inb, outb, sent, irq } = setup();
  outb(MCR, 0x1a); // LOOP | OUT2 | RTS, as Linux's autoconfig writes it
  assert.equal(inb(MSR) & 0xf0, 0x90); // DCD | CTS
  outb(MCR, 0x1f);
  assert.equal(inb(MSR) & 0xf0, 0xf0);
  outb(MCR, 0x1b); // OUT1 off: RI trailing edge
  assert.equal(inb(MSR) & 0x0f, 0x04); // TERI
  outb(FCR, 0x01);
  outb(IER, 0x01);
  assert.equal(uart.receive([1]), 0); // the line input is disconnected in loopback
  for (let i = 0; i < 17; i++) outb(THR, 0x61 + i);
  assert.deepEqual(sent, []);
  assert.equal(inb(IIR), 0xc4); // data available (16 >= trigger 1)...
  assert.equal(irq.level, false); // ...but the OUT pins are off in loopback
  assert.equal(inb(LSR), 0x63); // DR | OE: the 17th byte was lost
  assert.equal(inb(RBR), 0x61);
  outb(MCR, 0x0b); // leave loopback
  assert.equal(irq.level, true);
  assert.equal(inb(RBR), 0x62);
});

test('onRxSpace fires when the guest empties the FIFO', () => {
  const { uart, inb, outb } = setup();
  outb(FCR, 0x01);
  const pending = Array.from({ length: 40 }, (_, i) => i);
  let calls = 0;
  uart.onRxSpace = () => {
    calls++;
    pending.splice(0, uart.receive(pending));
  };
  pending.splice(0, uart.receive(pending));
  const got: number[] = [];
  while (inb(LSR) & 1) got.push(inb(RBR));
  assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => i));
  assert.equal(calls, 3);
  assert.equal(pending.length, 0);
});

test('wide accesses are split into byte accesses', () => {
  const { uart, outb } = setup();
  outb(LCR, 0x80);
  uart.write(0, 2, 0x0180); // DLL=0x80, DLM=0x01
  assert.equal(uart.read(0, 2), 0x0180);
  assert.equal(uart.getState().divisor, 0x180);
  assert.equal(uart.read(6, 4) >>> 16, 0xffff); // past offset 7
});

test('getState/restore round-trips FIFO contents and re-drives the IRQ line', () => {
  const a = setup();
  a.outb(FCR, 0x81);
  a.outb(MCR, 0x0b);
  a.outb(IER, 0x05);
  a.outb(SCR, 0x12);
  a.uart.receive([7, 8, 9]);
  const state = a.uart.getState();
  assert.deepEqual(state.rx, [7, 8, 9]);
  const b = setup();
  b.uart.restore(structuredClone(state));
  assert.equal(b.irq.level, true);
  assert.equal(b.inb(IIR), 0xcc); // 3 < trigger 8: timeout
  assert.equal(b.inb(SCR), 0x12);
  assert.deepEqual([b.inb(RBR), b.inb(RBR), b.inb(RBR)], [7, 8, 9]);
  assert.equal(b.irq.level, false);
  assert.deepEqual(b.uart.getState(), { ...state, rx: [] });
});

test("the probe and startup sequence of Linux's 8250 driver finds a 16550A with working THRE", () => {
  const { inb, outb, irq } = setup();
  // IER probe: write 0, read 0; write 0x0f, read 0x0f.
  outb(IER, 0);
  assert.equal(inb(IER) & 0x0f, 0);
  outb(IER, 0x0f);
  assert.equal(inb(IER) & 0x0f, 0x0f);
  outb(IER, 0);
  // Loopback probe.
  const saveMcr = inb(MCR);
  outb(MCR, 0x1a);
  assert.equal(inb(MSR) & 0xf0, 0x90);
  outb(MCR, saveMcr);
  // EFR lives under LCR 0xbf on later parts; on a 16550A that write lands in FCR.
  outb(LCR, 0xbf);
  outb(FCR, 0);
  outb(LCR, 0);
  outb(FCR, 0x01);
  assert.equal(inb(IIR) >> 6, 3); // 16550A
  outb(LCR, 0xbf);
  assert.notEqual(inb(IIR), 0); // "EFR" reads non-zero: not a 16650
  outb(LCR, 0);
  // 64-byte FIFO probe (16750): FCR bit 5 must not show in IIR.
  outb(FCR, 0x21);
  assert.equal(inb(IIR) & 0x20, 0);
  // Startup: clear FIFOs, drain, set 8N1, OUT2 on, then the THRE re-assertion test.
  outb(FCR, 0x07);
  inb(LSR); inb(RBR); inb(IIR); inb(MSR);
  outb(LCR, 0x03);
  outb(MCR, 0x0b);
  outb(IER, 0x02);
  const iir1 = inb(IIR);
  outb(IER, 0);
  outb(IER, 0x02);
  const iir2 = inb(IIR);
  outb(IER, 0);
  assert.equal(iir1 & 0x01, 0);
  assert.equal(iir2 & 0x01, 0); // no UART_BUG_THRE
  assert.equal(inb(LSR) & 0x60, 0x60);
  assert.equal(irq.level, false);
});

test('transmit backpressure: bytes the host refuses wait in the FIFO with THRE clear, and leave in order when it has room', () => {
  const irq = new RecordingIrqLine();
  const sent: number[] = [];
  let room = 0;
  const uart = new Uart8250({ irq, tx: (b) => (room > 0 ? (room--, sent.push(b), true) : false) });
  const inb = (off: number): number => uart.read(off, 1);
  const outb = (off: number, v: number): void => uart.write(off, 1, v);
  outb(FCR, 0x01); // FIFOs on: 16 bytes of transmit FIFO
  outb(MCR, 0x08); // OUT2
  outb(IER, 0x02); // THRE interrupt
  assert.equal(inb(IIR), 0xc2);
  assert.equal(irq.level, false);
  for (let b = 0; b < 20; b++) outb(THR, b); // 16 wait, 4 are written over a full FIFO: lost
  assert.deepEqual(sent, []);
  assert.equal(uart.txPending, 16);
  assert.equal(inb(LSR) & 0x60, 0, 'THRE and TEMT clear while bytes wait');
  assert.equal(inb(IIR), 0xc1, 'no THRE interrupt');
  room = 10;
  assert.equal(inb(LSR) & 0x60, 0, 'a poll moves 10 bytes; 6 still wait');
  assert.deepEqual(sent, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  room = 100;
  uart.txReady(); // the host made room
  assert.deepEqual(sent, Array.from({ length: 16 }, (_, i) => i));
  assert.equal(inb(LSR) & 0x60, 0x60);
  assert.equal(irq.level, true, 'THRE interrupt once the FIFO is empty');
  assert.equal(inb(IIR), 0xc2);
  assert.equal(irq.level, false);
  outb(THR, 0x41); // the line has room: straight through, as before
  assert.equal(sent.at(-1), 0x41);
  assert.equal(inb(LSR) & 0x60, 0x60);
  assert.equal(inb(IIR), 0xc2);
  // A write that first moves the waiting byte on (emptying the FIFO) and is then refused itself:
  // no THRE interrupt may stay pending while the new byte waits.
  room = 0;
  outb(THR, 1);
  room = 1;
  outb(THR, 2);
  assert.equal(sent.at(-1), 1);
  assert.equal(uart.txPending, 1);
  assert.equal(irq.level, false);
  assert.equal(inb(IIR), 0xc1);
});

test('transmit backpressure: 16450 mode holds one byte; FCR clears the transmit FIFO; state round-trips', () => {
  const irq = new RecordingIrqLine();
  const sent: number[] = [];
  let open = false;
  const uart = new Uart8250({ irq, tx: (b) => (open ? (sent.push(b), true) : false) });
  uart.write(THR, 1, 1);
  uart.write(THR, 1, 2); // THR already full: lost
  assert.equal(uart.txPending, 1);
  uart.write(FCR, 1, 0x01); // switching FIFO mode empties both FIFOs
  assert.equal(uart.txPending, 0);
  assert.equal(uart.read(LSR, 1) & 0x60, 0x60);
  uart.write(THR, 1, 3);
  uart.write(THR, 1, 4);
  const state = uart.getState();
  assert.deepEqual(state.tx, [3, 4]);
  uart.write(FCR, 1, 0x05); // FCR_CLEAR_TX
  assert.equal(uart.txPending, 0);
  const b = new Uart8250({ irq: new RecordingIrqLine(), tx: (x) => void sent.push(x) });
  b.restore(structuredClone(state));
  assert.equal(b.txPending, 2);
  b.txReady();
  assert.deepEqual(sent, [3, 4]);
  open = true;
  assert.deepEqual(b.getState().tx, []);
});
