import { describe, expect, it } from 'vitest';
import { beginFrame, bodyOffset, frameBytes, sealFrame } from '../../../daemon/store/segments.js';

/** CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit. */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('record segment frames', () => {
  it('lays out header, id and body 8-byte aligned, with zero padding and a CRC over bytes 8 on', () => {
    const id = 'abc';
    const frame = Buffer.alloc(frameBytes(3, 5), 0xff); // a reused buffer's old bytes
    expect(frame.length).toBe(16 + 8 + 8);
    beginFrame(frame, 1, id, 3, 5);
    const body = bodyOffset(3);
    expect(body).toBe(24);
    frame.set([1, 2, 3, 4, 5], body);
    sealFrame(frame);
    expect(frame.readUInt32LE(0)).toBe(32);
    expect([frame.readUInt8(8), frame.readUInt8(9), frame.readUInt16LE(10), frame.readUInt32LE(12)]).toEqual([1, 0, 3, 5]);
    expect(frame.toString('utf8', 16, 19)).toBe('abc');
    expect([...frame.subarray(19, 24)]).toEqual([0, 0, 0, 0, 0]);
    expect([...frame.subarray(29, 32)]).toEqual([0, 0, 0]);
    expect(frame.readUInt32LE(4)).toBe(crc32(frame.subarray(8)));
  });

  it('refuses an id longer than the length field holds', () => {
    const frame = Buffer.alloc(frameBytes(65536, 0));
    expect(() => beginFrame(frame, 1, 'x'.repeat(65536), 65536, 0)).toThrow(/at most 65535/);
  });
});
