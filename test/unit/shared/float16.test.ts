import { describe, expect, it } from 'vitest';
import { decodeFloat16, decodeSketchesInto, normalizeRows } from '../../../daemon/shared/index.js';
import { decodeFloat16Rows, decodeFloat16RowsLoop } from '../../../daemon/shared/float16.js';
import { encodeFloat16Array } from '../../../trainer-hooks/ts/index.js';
import { halfToNumber, rng } from '../../helpers/reference.js';

describe('binary16', () => {
  it.each([0, 1])('decodes every bit pattern like the plain formula (bytes at offset %i)', (offset) => {
    // Offset 1 puts the halves off a 2-byte boundary, as a view into a received message can be.
    const bytes = new Uint8Array(65536 * 2 + offset).subarray(offset);
    for (let h = 0; h < 65536; h++) {
      bytes[2 * h] = h & 0xff;
      bytes[2 * h + 1] = h >> 8;
    }
    const out = new Float32Array(65536);
    expect(decodeFloat16(bytes, out, 65536)).toBe(false);
    for (let h = 0; h < 65536; h++) {
      const want = halfToNumber(h);
      if (Number.isNaN(want)) expect(out[h]).toBeNaN();
      else expect(out[h]).toBe(Math.fround(want));
    }
    const finite = bytes.subarray(0, 2 * 0x7c00);
    expect(decodeFloat16(finite, out, 0x7c00)).toBe(true);
  });

  it('the client encodes to the nearest binary16 (ties to even)', () => {
    const cases = [
      0,
      1,
      -1,
      0.1,
      -2.5e-3,
      65504,
      65519,
      65520,
      1e-8,
      6e-8,
      5.96e-8,
      3.0e-5,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      Infinity,
      -Infinity,
    ];
    const client = encodeFloat16Array(Float32Array.from(cases));
    const finite: Array<[number, number]> = [];
    for (let h = 0; h < 65536; h++) if (Number.isFinite(halfToNumber(h))) finite.push([h, halfToNumber(h)]);
    cases.forEach((x, i) => {
      const f = Math.fround(x);
      let want: number;
      if (Math.abs(f) >= 65520) want = f > 0 ? Infinity : -Infinity;
      else {
        // The nearest representable half; on a tie, the one with an even mantissa.
        let best: [number, number] = [0, 0];
        let bestErr = Infinity;
        for (const [h, v] of finite) {
          const err = Math.abs(v - f);
          if (err < bestErr || (err === bestErr && (h & 1) === 0)) [best, bestErr] = [[h, v], err];
        }
        want = best[1];
      }
      expect(halfToNumber(client.readUInt16LE(2 * i)) === want).toBe(true);
    });
  });

  it('decodes and normalises in one pass to exactly the floats of decoding, then normalizeRows', () => {
    const r = rng(11);
    for (const dtype of ['float16', 'float32'] as const) {
      for (const k of [1, 3, 4, 7, 512, 513]) {
        const rows = 4;
        const values = Float32Array.from({ length: rows * k }, () => r.normal() * 3);
        values.fill(0, k, 2 * k); // a zero row stays zero
        const raw = dtype === 'float16' ? encodeFloat16Array(values) : new Uint8Array(values.buffer);
        for (const shift of [0, 1]) {
          // shift 1: the bytes at an odd offset (the unaligned path)
          const bytes = new Uint8Array(raw.length + shift).subarray(shift);
          bytes.set(raw);
          const want = new Float32Array(rows * k);
          expect(decodeSketchesInto(bytes, dtype, want, rows * k)).toBe(true);
          normalizeRows(want, rows, k);
          const got = new Float32Array(rows * k);
          expect(decodeSketchesInto(bytes, dtype, got, rows * k, k)).toBe(true);
          expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `${dtype} k=${k} shift=${shift}`).toBe(true);
          if (dtype === 'float16') {
            // The JavaScript loop (batches beyond the SIMD kernel's size) gives the same floats.
            const loop = new Float32Array(rows * k);
            expect(decodeFloat16RowsLoop(bytes, loop, rows, k)).toBe(true);
            expect(Buffer.from(loop.buffer).equals(Buffer.from(want.buffer)), `loop k=${k} shift=${shift}`).toBe(true);
          }
        }
      }
    }
  });

  it.each([2, 4])('decodes every finite half exactly while normalising (rows [h, 1, 0…], k = %i), against float64', (k) => {
    // k = 2: both values in the row's tail (the kernel's scalar path); k = 4: one group of four
    // (its SIMD path). Either way the squares sum to (h² + 1) + 0 + 0 in float64.
    const finite: number[] = [];
    for (let h = 0; h < 65536; h++) if ((h & 0x7c00) !== 0x7c00) finite.push(h);
    const halves = new Uint16Array(finite.length * k);
    finite.forEach((h, i) => {
      halves[i * k] = h;
      halves[i * k + 1] = 0x3c00;
    });
    const out = new Float32Array(halves.length);
    expect(decodeFloat16Rows(new Uint8Array(halves.buffer), out, finite.length, k)).toBe(true);
    finite.forEach((h, i) => {
      const v = halfToNumber(h);
      const inv = 1 / Math.sqrt(v * v + 1);
      expect(Object.is(out[i * k], Math.fround(v * inv)), `half 0x${h.toString(16)}`).toBe(true);
      expect(out[i * k + 1]).toBe(Math.fround(inv));
    });
  });

  it('flags NaN and ±Inf anywhere while normalising, and nothing else', () => {
    const k = 7; // groups of four and a tail of three
    for (const special of [0x7c00, 0xfc00, 0x7e00]) {
      for (let at = 0; at < 2 * k; at++) {
        const halves = new Uint16Array(2 * k).fill(0x3c00); // 1.0
        halves[at] = special;
        expect(decodeSketchesInto(new Uint8Array(halves.buffer), 'float16', new Float32Array(2 * k), 2 * k, k)).toBe(false);
      }
    }
    // Exponents whose bits together, not alone, are all set: 2.0 (0x4000) beside 1.0 (0x3c00).
    const halves = Uint16Array.from({ length: 2 * k }, (_, i) => (i % 2 === 0 ? 0x4000 : 0x3c00));
    const out = new Float32Array(2 * k);
    expect(decodeSketchesInto(new Uint8Array(halves.buffer), 'float16', out, 2 * k, k)).toBe(true);
    const norm = Math.sqrt(4 * 4 + 3 * 1); // row 0: 2,1,2,1,2,1,2
    expect(Math.abs((out[0] as number) - 2 / norm)).toBeLessThan(1e-7);
  });
});
