/**
 * Conversions of the Arrow export for `motive export`: CSV (written batch by batch, per-query sums
 * spread over `query_sum:<query id>` columns) and Parquet (parquet-wasm, the Rust arrow/parquet
 * implementation compiled to WebAssembly).
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { Table as WasmTable, writeParquet, WriterPropertiesBuilder, Compression } from 'parquet-wasm';

/** Formats `motive export` writes. */
export const EXPORT_FORMATS = ['arrow', 'parquet', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const s = v as string;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Writes an Arrow IPC stream (any async source of bytes) as CSV to `out`, awaiting `drain` when
 * `out` is full. Numbers are written with full precision (shortest round-trip form).
 */
export async function arrowToCsv(source: AsyncIterable<Uint8Array>, out: Writable): Promise<number> {
  const reader = await RecordBatchReader.from(source);
  await reader.open();
  const queryIds = JSON.parse(reader.schema.metadata.get('motive.query_ids') ?? '[]') as string[];
  const fields = reader.schema.fields.map((f) => f.name);
  const header = fields.flatMap((name) => (name === 'query_sums' ? queryIds.map((q) => `query_sum:${q}`) : [name]));
  const write = async (s: string): Promise<void> => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write(header.map(csvCell).join(',') + '\n');
  let rows = 0;
  for await (const batch of reader as AsyncIterable<RecordBatch>) {
    const columns = fields.map((_, i) => batch.getChildAt(i));
    const lines: string[] = [];
    for (let r = 0; r < batch.numRows; r++) {
      const cells: string[] = [];
      fields.forEach((name, i) => {
        const v: unknown = columns[i]?.get(r);
        if (name === 'query_sums') {
          const list = v as { toArray(): Float64Array } | null;
          const values = list === null ? new Float64Array(queryIds.length) : list.toArray();
          for (const x of values) cells.push(csvCell(x));
        } else cells.push(csvCell(v));
      });
      lines.push(cells.join(','));
    }
    rows += batch.numRows;
    if (lines.length > 0) await write(lines.join('\n') + '\n');
  }
  return rows;
}

/** Converts a whole Arrow IPC stream to a Parquet file's bytes (Snappy-compressed). */
export function arrowToParquet(ipcStream: Uint8Array): Uint8Array {
  const table = WasmTable.fromIPCStream(ipcStream);
  const props = new WriterPropertiesBuilder().setCompression(Compression.SNAPPY).build();
  return writeParquet(table, props);
}
