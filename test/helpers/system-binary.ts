/** Tests that need a Debian-packaged binary: skip with the package named, or fail under CI=true. */
import { existsSync } from 'node:fs';

/**
 * Whether `path` exists. When it does not, returns false after a message naming the Debian
 * package; under `CI=true` it throws instead, so the suite fails rather than skips.
 */
export function haveBinary(path: string, debianPackage: string): boolean {
  if (existsSync(path)) return true;
  const why = `${path} not found: install the Debian package "${debianPackage}" (apt-get install -y ${debianPackage})`;
  if (process.env['CI'] === 'true') throw new Error(`${why}; under CI=true a skipped test is a failure`);
  console.warn(`skipping: ${why}`);
  return false;
}
