/** A sample view's `motion` field (docs/api.md): the descriptors of the clip's newest profile. */
import type { Store } from '../store/index.js';
import { DESCRIPTOR_NAMES } from '../motion/index.js';

/** A sample view's `motion` field: the clip's descriptors and profile provenance, or null. */
export type SampleMotion = Record<string, number | boolean | string> | null;

/** The `motion` field of a sample view: the newest profile of the clip named by the sample id. */
export function sampleMotion(store: Store, sampleId: string): SampleMotion {
  const p = store.profile(sampleId);
  if (p === undefined) return null;
  const out: Record<string, number | boolean | string> = { hash: p.hash, profiledAt: new Date(p.profiledAtMs).toISOString() };
  for (const name of DESCRIPTOR_NAMES) {
    const v = p.fields[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}
