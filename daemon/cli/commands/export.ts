import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { arrowToCsv, arrowToParquet, EXPORT_FORMATS, type ExportFormat } from '../../export/index.js';
import { UsageError, authHeaders, baseUrl, type Command } from '../common.js';

/**
 * Streams `GET /v1/runs/:run/export.arrow`: the Arrow IPC bytes as they arrive. The HTTP body is
 * read only as fast as the caller consumes it.
 */
export async function fetchArrowExport(url: string, runId: string, env: NodeJS.ProcessEnv): Promise<AsyncIterable<Uint8Array>> {
  const target = `${url}/v1/runs/${encodeURIComponent(runId)}/export.arrow`;
  let res: Response;
  try {
    res = await fetch(target, { headers: authHeaders(env) });
  } catch (err) {
    const cause = (err as Error).cause;
    const why = cause instanceof Error ? cause.message : (err as Error).message;
    throw new Error(`cannot reach the daemon at ${new URL(target).origin} (${why}); is it running? start it with: npm start`);
  }
  if (!res.ok || res.body === null) {
    const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    throw new Error(`${body.code ?? res.status}: ${body.message ?? res.statusText}`);
  }
  return res.body;
}

export const exportCommand: Command = {
  usage: `export --run R [--format arrow|parquet|csv] [--out FILE] [--url URL]
                                     every sample of the run (evidence, votes, weight, per-query sums, motion) as a table`,
  run: async (args, io, env) => {
    const { values } = parseArgs({
      args,
      options: { run: { type: 'string' }, format: { type: 'string', default: 'arrow' }, out: { type: 'string' }, url: { type: 'string' } },
    });
    if (values.run === undefined) throw new UsageError('--run is required');
    const format = values.format as ExportFormat;
    if (!EXPORT_FORMATS.includes(format)) throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`);
    const out = values.out ?? `${values.run}.${format}`;
    const source = await fetchArrowExport(baseUrl(values.url, env), values.run, env);
    if (format === 'csv') {
      const file = createWriteStream(out);
      const rows = await arrowToCsv(source, file);
      file.end();
      await once(file, 'close');
      io.out(`wrote ${rows} row(s) to ${out}\n`);
      return 0;
    }
    if (format === 'arrow') {
      const file = createWriteStream(out);
      let bytes = 0;
      for await (const chunk of source) {
        bytes += chunk.byteLength;
        if (!file.write(chunk)) await once(file, 'drain');
      }
      file.end();
      await once(file, 'close');
      io.out(`wrote ${bytes} bytes (Arrow IPC stream) to ${out}\n`);
      return 0;
    }
    // Parquet's footer needs the whole table: the stream is gathered first.
    const chunks: Uint8Array[] = [];
    for await (const chunk of source) chunks.push(chunk);
    const parquet = arrowToParquet(Buffer.concat(chunks));
    await writeFile(out, parquet);
    io.out(`wrote ${parquet.byteLength} bytes (Parquet) to ${out}\n`);
    return 0;
  },
};
