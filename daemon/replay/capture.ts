/**
 * The capture format a Python trainer writes while it streams (no pyarrow needed), and its
 * conversion into the Arrow IPC recording that `motive replay` and `motive demo` read.
 *
 * Capture: the 8 bytes `MOTCAP1\n`, then per trainer message, little-endian:
 * `u32 length, u8 kind (1 hello, 2 batch, 3 queries, 4 heartbeat), u32 rank, f64 t_ms`, then
 * `length` bytes of the serialized `motive.v1.TrainerMessage`.
 *
 * Arrow recording (`schemas/recorded-run.md`): one row per message, in stream order, columns
 * `t_ms: Float64` (ms since the run started), `rank: Uint32`, `kind: Utf8`
 * (`hello | batch | queries | heartbeat`), `message: Binary` (the serialized TrainerMessage).
 */
import { Binary, Float64, Table, Uint32, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';

/** First bytes of a capture file. */
export const CAPTURE_MAGIC = 'MOTCAP1\n';

const HEADER_BYTES = 17;
const KINDS = ['', 'hello', 'batch', 'queries', 'heartbeat'] as const;

/** One captured trainer message. */
export interface CapturedMessage {
  readonly tMs: number;
  readonly rank: number;
  readonly kind: string;
  readonly message: Uint8Array;
}

/** Whether `bytes` start like a capture file. */
export function isCapture(bytes: Uint8Array): boolean {
  return (
    bytes.byteLength >= CAPTURE_MAGIC.length && Buffer.from(bytes.subarray(0, CAPTURE_MAGIC.length)).toString('latin1') === CAPTURE_MAGIC
  );
}

/** Parses a capture file; throws naming the offset of a truncated or unknown record. */
export function parseCapture(bytes: Uint8Array): CapturedMessage[] {
  if (!isCapture(bytes)) throw new Error('not a capture file (missing the MOTCAP1 magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: CapturedMessage[] = [];
  let off = CAPTURE_MAGIC.length;
  while (off < bytes.byteLength) {
    if (off + HEADER_BYTES > bytes.byteLength) throw new Error(`truncated record header at byte ${off}`);
    const length = view.getUint32(off, true);
    const code = view.getUint8(off + 4);
    const rank = view.getUint32(off + 5, true);
    const tMs = view.getFloat64(off + 9, true);
    const start = off + HEADER_BYTES;
    if (start + length > bytes.byteLength) throw new Error(`truncated record at byte ${off} (${length} bytes declared)`);
    const kind = KINDS[code];
    if (kind === undefined || kind === '') throw new Error(`unknown record kind ${code} at byte ${off}`);
    out.push({ tMs, rank, kind, message: bytes.subarray(start, start + length) });
    off = start + length;
  }
  return out;
}

/** The Arrow IPC file (`file` format) of captured messages. */
export function captureToArrow(messages: readonly CapturedMessage[]): Uint8Array {
  const table = new Table({
    t_ms: vectorFromArray(
      messages.map((m) => m.tMs),
      new Float64(),
    ),
    rank: vectorFromArray(
      messages.map((m) => m.rank),
      new Uint32(),
    ),
    kind: vectorFromArray(
      messages.map((m) => m.kind),
      new Utf8(),
    ),
    message: vectorFromArray(
      messages.map((m) => m.message),
      new Binary(),
    ),
  });
  return tableToIPC(table, 'file');
}
