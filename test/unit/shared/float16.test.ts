import { describe, expect, it } from 'vitest';
import { decodeFloat16 } from '../../../daemon/shared/index.js';
import { encodeFloat16Array } from '../../../trainer-hooks/ts/index.js';
import { halfToNumber } from '../../helpers/reference.js';

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
});
