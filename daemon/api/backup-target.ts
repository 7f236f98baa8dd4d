/**
 * Where a backup may not go: into the daemon's data directory or anything below it (the live
 * LMDB environment, `records/` and each run's own segment directory). Copying a store into itself
 * would make the copy read what it is writing. Paths are compared after resolving symbolic links,
 * up to the deepest part of the target that exists.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';

/** `path` resolved through every symbolic link of its existing ancestors. */
function realTarget(path: string): string {
  const tail: string[] = [];
  let at = resolve(path);
  for (;;) {
    try {
      return join(realpathSync(at), ...tail.reverse());
    } catch {
      const up = dirname(at);
      if (up === at) return resolve(path);
      tail.push(basename(at));
      at = up;
    }
  }
}

/** Why `dir` may not receive a backup of the store in `dataDir`, or undefined when it may. */
export function backupTargetProblem(dir: string, dataDir: string): string | undefined {
  const target = realTarget(dir);
  const data = realTarget(dataDir);
  if (target === data || target.startsWith(data + sep))
    return `${dir} lies inside the data directory ${dataDir}; choose a directory outside it`;
  return undefined;
}
