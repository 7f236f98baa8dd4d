/**
 * The TypeScript client's stream protocol (trainer-hooks/ts/protocol.ts) without a daemon: the
 * rules of docs/wire.md ("Ordering") written out in each case.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_UNCONFIRMED_QUERIES } from '../../../trainer-hooks/ts/client.js';
import { StreamProtocol } from '../../../trainer-hooks/ts/protocol.js';

type Msg = string; // the protocol never looks inside a message

function batch(p: StreamProtocol<Msg>): number {
  return p.batch((seq) => `b${seq}`).seq;
}

describe('trainer stream protocol', () => {
  it('numbers batches 1, 2, 3 and keeps each until an Ack at or past it', () => {
    const p = new StreamProtocol<Msg>(8);
    p.welcome(0);
    expect([batch(p), batch(p), batch(p)]).toEqual([1, 2, 3]);
    expect(p.pending).toBe(3);
    expect(p.ack(2)).toBe(2); // Acks come in commit order: 1 and 2 are committed
    expect(p.pending).toBe(1);
    expect(p.ack(2)).toBe(0);
    expect(p.welcome(0)).toEqual(['b3']);
  });

  it('after a reconnect resends the unconfirmed query sets, then the unacknowledged batches, in order', () => {
    const p = new StreamProtocol<Msg>(8);
    p.welcome(0);
    p.queries('q1'); // confirmed by batch 1
    batch(p);
    p.queries('q2'); // confirmed by batch 2
    batch(p);
    p.queries('q3'); // no batch after it yet
    p.ack(1);
    expect(p.unconfirmedQueries).toBe(2);
    // The new stream's Welcome shows batch 2 committed (its Ack was lost with the old stream).
    expect(p.welcome(2)).toEqual(['q3']);
    expect(batch(p)).toBe(3);
    p.ack(3);
    expect(p.unconfirmedQueries).toBe(0);
    expect(p.welcome(3)).toEqual([]);
  });

  it('continues numbering above the run’s last committed seq (a restarted trainer)', () => {
    const p = new StreamProtocol<Msg>(8);
    expect(p.welcome(41)).toEqual([]);
    expect(batch(p)).toBe(42);
  });

  it('numbers the batches and query sets sent before the first Welcome above the run’s committed seq', () => {
    const p = new StreamProtocol<Msg>(8);
    batch(p); // provisional 1
    p.queries('q1'); // confirmed by the batch after it
    batch(p); // provisional 2
    // A resumed run: the daemon has committed 50 batches of this rank. Without renumbering these
    // two would be taken for batches 1 and 2, already committed, and dropped.
    expect(p.welcome(50)).toEqual(['q1', 'b51', 'b52']);
    expect(p.pending).toBe(2);
    expect(p.ack(51)).toBe(1);
    expect(p.unconfirmedQueries).toBe(1); // q1 waits for batch 52
    expect(p.ack(52)).toBe(1);
    expect(p.unconfirmedQueries).toBe(0);
    expect(batch(p)).toBe(53);
  });

  it('forgets a rejected batch alone', () => {
    const p = new StreamProtocol<Msg>(8);
    p.welcome(0);
    [1, 2, 3].forEach(() => batch(p));
    expect(p.reject(2)).toBe(true);
    expect(p.reject(2)).toBe(false);
    expect(p.welcome(0)).toEqual(['b1', 'b3']);
  });

  it('keeps at most the bound of unconfirmed query sets, the oldest forgotten first', () => {
    const p = new StreamProtocol<Msg>(3);
    for (let v = 1; v <= 5; v++) p.queries(`q${v}`);
    expect(p.unconfirmedQueries).toBe(3);
    expect(p.welcome(0)).toEqual(['q3', 'q4', 'q5']);
  });
});

/** One step of schemas/stream-protocol.scenarios.json (its `about` says what each key means). */
interface Step {
  readonly welcome?: number;
  readonly resend?: readonly string[];
  readonly batch?: number;
  readonly queries?: string;
  readonly ack?: number;
  readonly acked?: number;
  readonly reject?: number;
  readonly found?: boolean;
  readonly pending?: number;
  readonly unconfirmed?: number;
}

interface Scenario {
  readonly name: string;
  readonly maxUnconfirmedQueries?: number;
  readonly steps: readonly Step[];
}

const SCENARIOS = (
  JSON.parse(readFileSync(join(import.meta.dirname, '../../../schemas/stream-protocol.scenarios.json'), 'utf8')) as {
    scenarios: Scenario[];
  }
).scenarios;

/** Replays one step on `p`; the Python client's test (test_protocol.py) replays the same file. */
function replay(p: StreamProtocol<Msg>, step: Step, at: string): void {
  if (step.welcome !== undefined) expect(p.welcome(step.welcome), at).toEqual(step.resend);
  else if (step.batch !== undefined) expect(batch(p), at).toBe(step.batch);
  else if (step.queries !== undefined) p.queries(step.queries);
  else if (step.ack !== undefined) expect(p.ack(step.ack), at).toBe(step.acked);
  else if (step.reject !== undefined) expect(p.reject(step.reject), at).toBe(step.found);
  else if (step.pending !== undefined) expect(p.pending, at).toBe(step.pending);
  else if (step.unconfirmed !== undefined) expect(p.unconfirmedQueries, at).toBe(step.unconfirmed);
  else throw new Error(`${at}: unknown step ${JSON.stringify(step)}`);
}

describe('trainer stream protocol: the scenarios both clients replay', () => {
  it('reads the scenarios', () => {
    expect(SCENARIOS.length).toBeGreaterThanOrEqual(8);
  });

  for (const sc of SCENARIOS) {
    it(sc.name, () => {
      const p = new StreamProtocol<Msg>(sc.maxUnconfirmedQueries ?? MAX_UNCONFIRMED_QUERIES);
      sc.steps.forEach((step, i) => replay(p, step, `${sc.name}, step ${i + 1}`));
    });
  }
});
