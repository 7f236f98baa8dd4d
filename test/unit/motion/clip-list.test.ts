/** Clip lists: a directory of videos, a JSONL manifest and a CSV manifest (quoted cells, relative paths). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analysisSize, listClips, splitCsvLine } from '../../../daemon/motion/index.js';
import { tempDir } from '../../helpers/daemon.js';

describe('clip lists', () => {
  const dir = tempDir('motive-clip-list-');
  afterAll(() => dir.remove());

  it('lists the videos below a directory, ids relative without extension', async () => {
    mkdirSync(join(dir.path, 'v', 'cats'), { recursive: true });
    for (const f of ['cats/b.mp4', 'a.webm', 'notes.txt', 'cats/c.MOV']) writeFileSync(join(dir.path, 'v', f), '');
    const clips = await listClips(join(dir.path, 'v'));
    expect(clips.map((c) => c.id)).toEqual(['a', 'cats/b', 'cats/c']);
    expect(clips[1]!.path).toBe(join(dir.path, 'v', 'cats', 'b.mp4'));
  });

  it('reads JSONL and CSV manifests, paths relative to the manifest', async () => {
    writeFileSync(join(dir.path, 'm.jsonl'), '{"id": "x", "path": "clips/x.mp4"}\n\n{"id": "y", "path": "/abs/y.mp4"}\n');
    expect(await listClips(join(dir.path, 'm.jsonl'))).toEqual([
      { id: 'x', path: join(dir.path, 'clips/x.mp4') },
      { id: 'y', path: '/abs/y.mp4' },
    ]);
    writeFileSync(join(dir.path, 'm.csv'), 'path,id\n"clips/a, b.mp4","a,b"\n/abs/z.mp4,z\n');
    expect(await listClips(join(dir.path, 'm.csv'))).toEqual([
      { id: 'a,b', path: join(dir.path, 'clips/a, b.mp4') },
      { id: 'z', path: '/abs/z.mp4' },
    ]);
    expect(splitCsvLine('a,"b ""q"", c",')).toEqual(['a', 'b "q", c', '']);
    writeFileSync(join(dir.path, 'bad.jsonl'), '{"id": 3}\n');
    await expect(listClips(join(dir.path, 'bad.jsonl'))).rejects.toThrow(/bad.jsonl:1: a line needs string "id" and "path"/);
  });

  it('keeps the aspect ratio at the analysis size, multiples of 8, never upscaling', () => {
    expect(analysisSize(1920, 1080, 128)).toEqual({ width: 224, height: 128 });
    expect(analysisSize(64, 64, 128)).toEqual({ width: 64, height: 64 });
    expect(analysisSize(480, 852, 128)).toEqual({ width: 128, height: 224 });
  });
});
