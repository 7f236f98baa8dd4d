/** What a failed store write means to its caller: a full disk, or another commit failure. */
import { statfsSync } from 'node:fs';
import { MotiveError, describeError } from '../shared/index.js';
import { settled } from './tables.js';

/**
 * Below this many free bytes on the data directory's file system a failed write is taken for a
 * full disk: LMDB reports a write the disk cut short as EIO, not ENOSPC.
 */
const NEARLY_FULL_BYTES = 16 << 20;

/** Free bytes for unprivileged writers on `dir`'s file system, or undefined when unknown. */
function freeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/**
 * Maps a failed LMDB or segment write to MOTIVE_STORE_FULL (no space, the cause named) or
 * MOTIVE_STORE_COMMIT, with the system error lmdb-js keeps beside its own in the message.
 */
export async function storeError(err: unknown, dataDir: string): Promise<MotiveError> {
  if (err instanceof MotiveError) return err;
  // lmdb-js puts the system error (ENOSPC, EIO, ...) in a promise beside the error.
  const commitError = (err as { commitError?: unknown }).commitError;
  settled(commitError);
  const message = (err as Error).message;
  let cause = '';
  if (commitError instanceof Promise)
    cause = describeError(
      await commitError.then(
        () => '',
        (e: unknown) => e,
      ),
    );
  const detail = cause === '' ? message : `${cause} (${message})`;
  if (/MDB_MAP_FULL|ENOSPC|EFBIG|No space|too large/i.test(detail)) {
    return new MotiveError('MOTIVE_STORE_FULL', `no space left for the store in ${dataDir}: ${detail}`, { cause: err });
  }
  const free = freeBytes(dataDir);
  if (free !== undefined && free < NEARLY_FULL_BYTES) {
    return new MotiveError('MOTIVE_STORE_FULL', `no space left for the store in ${dataDir} (ENOSPC: ${free} bytes free): ${detail}`, {
      cause: err,
    });
  }
  return new MotiveError('MOTIVE_STORE_COMMIT', detail, { cause: err });
}
