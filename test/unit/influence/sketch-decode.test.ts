import { describe, expect, it } from 'vitest';
import { SketchBuffers, decodeFiniteSketches } from '../../../daemon/influence/index.js';
import { encodeFloat16Array } from '../../../trainer-hooks/ts/index.js';

describe('decoded sketch buffers', () => {
  const sketchBuffers = new SketchBuffers();
  it('reuses a returned buffer, and decodes into it exactly as into a new one', () => {
    const count = 4 * 64;
    const a = Float32Array.from({ length: count }, (_, i) => Math.sin(i) * 3);
    const b = Float32Array.from({ length: count }, (_, i) => Math.cos(i) / 7);
    const first = decodeFiniteSketches(encodeFloat16Array(a), 'float16', count, sketchBuffers) as Float32Array;
    const copy = Float32Array.from(first);
    sketchBuffers.give(first);
    const second = decodeFiniteSketches(encodeFloat16Array(b), 'float16', count, sketchBuffers) as Float32Array;
    expect(second).toBe(first);
    // Every value rewritten: binary16 of b, none of a left over.
    b.forEach((v, i) => expect(Math.abs((second[i] as number) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -24));
    expect(copy).not.toEqual(second);
  });

  it('never hands out a caller-owned array or the same buffer twice', () => {
    const count = 3 * 64;
    const mine = new Float32Array(count).fill(5);
    sketchBuffers.give(mine);
    const bytes = encodeFloat16Array(new Float32Array(count).fill(1));
    const got = decodeFiniteSketches(bytes, 'float16', count, sketchBuffers) as Float32Array;
    expect(got).not.toBe(mine);
    expect(mine.every((v) => v === 5)).toBe(true);
    sketchBuffers.give(got);
    sketchBuffers.give(got);
    const x = decodeFiniteSketches(bytes, 'float16', count, sketchBuffers);
    const y = decodeFiniteSketches(bytes, 'float16', count, sketchBuffers);
    expect(x).not.toBe(y);
  });

  it('copies sketch bytes into reused buffers, sharing one byte budget with the decoded sketches', () => {
    const pool = new SketchBuffers();
    const message = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) & 255));
    const bytes = message.subarray(100, 900);
    const first = pool.copyBytes(bytes);
    expect(first.buffer).not.toBe(message.buffer);
    expect(first.equals(bytes)).toBe(true);
    pool.giveBytes(first);
    pool.giveBytes(first);
    const other = Buffer.alloc(800, 9);
    const second = pool.copyBytes(other);
    expect(second).toBe(first);
    expect(second.equals(other)).toBe(true);
    // Given back twice, handed out once: the next copy is a new buffer.
    expect(pool.copyBytes(other)).not.toBe(first);
    // A caller's own buffer never enters the pool.
    pool.giveBytes(message);
    expect(pool.copyBytes(Buffer.alloc(1000))).not.toBe(message);
    // 16 MiB in all: 16 sketch buffers of 1 MiB fill it, and a byte copy is then not kept.
    const floats = Array.from({ length: 16 }, () => pool.take(1 << 18));
    const big = pool.copyBytes(Buffer.alloc(1 << 10));
    for (const f of floats) pool.give(f);
    pool.giveBytes(big);
    expect(pool.copyBytes(Buffer.alloc(1 << 10))).not.toBe(big);
    expect(pool.take(1 << 18)).toBe(floats[15]);
  });

  it('rejects NaN and Inf (float32 and float16) and takes the buffer back', () => {
    const pool = new SketchBuffers();
    const okBytes = new Uint8Array(new Float32Array([1, -2, 3, 0.5]).buffer);
    const first = decodeFiniteSketches(okBytes, 'float32', 4, pool) as Float32Array;
    pool.give(first);
    const f32 = new Float32Array([1, 2, Number.NaN, 4]);
    expect(decodeFiniteSketches(new Uint8Array(f32.buffer), 'float32', 4, pool)).toBeUndefined();
    const inf = new Uint16Array([0x3c00, 0x7c00]);
    expect(decodeFiniteSketches(new Uint8Array(inf.buffer), 'float16', 2, pool)).toBeUndefined();
    // The rejected decode held `first` and gave it back.
    const ok = decodeFiniteSketches(okBytes, 'float32', 4, pool);
    expect(ok).toBe(first);
    expect([...(ok as Float32Array)]).toEqual([1, -2, 3, 0.5]);
  });
});
