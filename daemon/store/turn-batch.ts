import type { RootDatabase } from 'lmdb';

/**
 * lmdb-js starts each transaction of its event-turn batching with a commit promise of its own
 * that no caller holds; when the transaction fails (a full disk) it rejects unhandled. Called
 * right after a write of ours failed, while that promise is still lmdb-js's current one, so the
 * failure is reported once, by the write's own promise.
 */
export function settleTurnBatch(root: RootDatabase): void {
  const committed = (root as unknown as { committed: PromiseLike<unknown> }).committed;
  void Promise.resolve(committed.then(undefined, () => undefined)).catch(() => undefined);
}
