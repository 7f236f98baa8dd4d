/**
 * Live-feed metrics (docs/observability.md): WebSocket clients, events sent by type, events
 * skipped for a full send buffer and clients dropped. Read at scrape time from the feed's counters.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { LiveFeedStats } from '../api/live-events.js';

export function registerLiveMetrics(registry: Registry, liveStats: () => LiveFeedStats, liveEventTypes: readonly string[]): void {
  const registers = [registry];
  new Gauge({
    name: 'motive_live_clients',
    help: 'WebSocket live-feed clients connected.',
    registers,
    collect() {
      this.set(liveStats().clients);
    },
  });
  new Counter({
    name: 'motive_live_events_total',
    help: 'Live-feed events sent to clients, by event type.',
    labelNames: ['type'],
    registers,
    collect() {
      this.reset();
      for (const type of liveEventTypes) this.inc({ type }, 0);
      for (const [type, n] of Object.entries(liveStats().sent)) this.inc({ type }, n);
    },
  });
  new Counter({
    name: 'motive_live_skipped_events_total',
    help: 'Live-feed events not sent to a client whose send buffer was full.',
    registers,
    collect() {
      this.reset();
      this.inc(liveStats().skipped);
    },
  });
  new Counter({
    name: 'motive_live_dropped_clients_total',
    help: 'Live-feed clients disconnected for staying too far behind.',
    registers,
    collect() {
      this.reset();
      this.inc(liveStats().dropped);
    },
  });
}
