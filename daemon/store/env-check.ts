/**
 * Checks the main LMDB environment's file before lmdb maps it: a truncated `data.mdb` would be
 * mapped past its end and kill the process with SIGBUS on the first read, and an empty one
 * would be taken for a new store. See docs/store.md, "Damaged storage".
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MotiveError } from '../shared/index.js';

/** LMDB's meta page magic, and the data version the bundled lmdb writes (lmdb-js 3). */
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;
/**
 * Offsets in a meta page (LMDB data version 2): a 24-byte page header, then magic, version,
 * address, map size, two 48-byte db records (the first's md_pad holds the page size), the last
 * page number used and the transaction id.
 */
const META_MAGIC = 24;
const META_VERSION = 28;
const META_PAGE_SIZE = 48;
const META_LAST_PAGE = 144;
const META_TXN = 152;
const META_BYTES = 160;

interface Meta {
  readonly pageSize: number;
  readonly lastPage: number;
  readonly txn: number;
}

function readMeta(fd: number, at: number, path: string): Meta | string {
  const buf = Buffer.alloc(META_BYTES);
  if (readSync(fd, buf, 0, META_BYTES, at) < META_BYTES) return `meta page at ${at} cut short`;
  const magic = buf.readUInt32LE(META_MAGIC);
  if (magic !== MDB_MAGIC) return `meta page at ${at} has magic 0x${magic.toString(16)}, not LMDB's 0x${MDB_MAGIC.toString(16)}`;
  const version = buf.readUInt32LE(META_VERSION);
  if (version !== MDB_DATA_VERSION) return `meta page at ${at} is LMDB data version ${version}, this daemon reads ${MDB_DATA_VERSION}`;
  const pageSize = buf.readUInt32LE(META_PAGE_SIZE);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0)
    return `${path}: page size ${pageSize} in the meta page at ${at}`;
  return { pageSize, lastPage: Number(buf.readBigUInt64LE(META_LAST_PAGE)), txn: Number(buf.readBigUInt64LE(META_TXN)) };
}

/**
 * Throws MOTIVE_STORE_CORRUPT naming the file when `dataDir/data.mdb` exists but is empty, is no
 * LMDB environment of this version, or is shorter than its newest meta page says it is.
 */
export function checkEnvironment(dataDir: string): void {
  const path = join(dataDir, 'data.mdb');
  const size = statSync(path, { throwIfNoEntry: false })?.size;
  if (size === undefined) return;
  const refuse = (why: string): never => {
    throw new MotiveError(
      'MOTIVE_STORE_CORRUPT',
      `${path}: ${why}; the store is refused (restore it from a backup: motive restore; docs/store.md, "Damaged storage")`,
    );
  };
  if (size === 0) refuse('0 bytes (an empty file is not a new store: remove the directory to start one)');
  const fd = openSync(path, 'r');
  try {
    const first = readMeta(fd, 0, path);
    if (typeof first === 'string') return refuse(first);
    const second = size >= 2 * first.pageSize ? readMeta(fd, first.pageSize, path) : `${size} bytes, less than its two meta pages`;
    if (typeof second === 'string') return refuse(second);
    const newest = second.txn > first.txn ? second : first;
    const needed = (newest.lastPage + 1) * newest.pageSize;
    if (size < needed)
      refuse(`${size} bytes, but its newest transaction (${newest.txn}) uses pages up to ${newest.lastPage}: ${needed} bytes (cut short)`);
  } finally {
    closeSync(fd);
  }
}
