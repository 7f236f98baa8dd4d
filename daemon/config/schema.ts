import { Type, type Static } from '@sinclair/typebox';

/**
 * The one source of the daemon's configuration. `schemas/config.schema.json` is generated from
 * this (`npm run gen:config-schema`), and a test fails when it is stale.
 */
export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({
      default: './motive-data',
      minLength: 1,
      description: 'Directory of the embedded LMDB store; created when missing. Env MOTIVE_DATA_DIR.',
    }),
    logLevel: Type.Union(
      [Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug')],
      { default: 'info', description: 'Log level. Env MOTIVE_LOG_LEVEL.' },
    ),
    grpc: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'gRPC bind address. Env MOTIVE_GRPC_HOST.' }),
        port: Type.Integer({
          default: 50051,
          minimum: 0,
          maximum: 65535,
          description: 'gRPC port; 0 picks a free one. Env MOTIVE_GRPC_PORT.',
        }),
        maxMessageBytes: Type.Integer({
          default: 64 * 1024 * 1024,
          minimum: 1024,
          description: 'Largest accepted trainer message, checked from the frame header before buffering.',
        }),
        receiveWindowBytes: Type.Integer({
          default: 8 * 1024 * 1024,
          minimum: 65535,
          maximum: 2147483647,
          description:
            'HTTP/2 receive window per connection and per stream: how much a trainer may send ahead of the daemon reading it. The protocol default (64 KiB) makes large batches wait on window updates.',
        }),
        streamInflightBytes: Type.Integer({
          default: 32 * 1024 * 1024,
          minimum: 1024,
          description: 'Bytes of uncommitted batches one stream may hold in the daemon before it stops reading (flow control).',
        }),
        maxStalledMs: Type.Integer({
          default: 30000,
          minimum: 100,
          description:
            "A trainer stream the daemon cannot write to (its trainer not reading) this long is reset; meanwhile its weight updates are merged into one, each sample's latest weight.",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    http: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'HTTP bind address. Env MOTIVE_HTTP_HOST.' }),
        port: Type.Integer({
          default: 8080,
          minimum: 0,
          maximum: 65535,
          description: 'HTTP port; 0 picks a free one. Env MOTIVE_HTTP_PORT.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    auth: Type.Object(
      {
        trainerToken: Type.Union([Type.String({ minLength: 8 }), Type.Null()], {
          default: null,
          description: 'Shorthand for one token with role trainer on every run. Env MOTIVE_TRAINER_TOKEN. Never logged.',
        }),
        tokens: Type.Array(
          Type.Object(
            {
              name: Type.String({ minLength: 1, description: 'Who holds it (shown in logs instead of the token).' }),
              token: Type.String({ minLength: 8, description: 'The bearer secret. Never logged.' }),
              role: Type.Union([Type.Literal('trainer'), Type.Literal('viewer'), Type.Literal('admin')], {
                description:
                  'trainer: attach and stream; viewer: read REST, WebSocket and metrics; admin: everything, incl. deleting runs and backups.',
              }),
              runs: Type.Union([Type.Array(Type.String({ minLength: 1 })), Type.Null()], {
                default: null,
                description: 'Run ids this token is limited to; null = every run.',
              }),
            },
            { additionalProperties: false },
          ),
          {
            default: [],
            description:
              'When any token is configured (here or trainerToken), every gRPC stream and HTTP request must present one (gRPC: Hello.token; HTTP: Authorization: Bearer, or ?token= for browsers and WebSockets).',
          },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    tls: Type.Union(
      [
        Type.Object(
          {
            certFile: Type.String({ minLength: 1, description: 'PEM certificate chain.' }),
            keyFile: Type.String({ minLength: 1, description: 'PEM private key.' }),
          },
          { additionalProperties: false },
        ),
        Type.Null(),
      ],
      { default: null, description: 'Serve gRPC and HTTP over TLS with these files; null = plaintext (bind to loopback then).' },
    ),
    store: Type.Object(
      {
        mapSizeBytes: Type.Integer({
          default: 64 * 1024 ** 3,
          minimum: 1024 * 1024,
          description:
            'Initial size of the LMDB memory map (virtual address space, not RAM); lmdb-js grows it as the store fills, so the disk is the bound.',
        }),
        commitDelayMs: Type.Integer({
          default: 0,
          minimum: 0,
          description: 'Fault injection: extra delay before every commit (ms), to test flow control against a slow disk. Keep 0.',
        }),
        maxGroupBytes: Type.Integer({
          default: 64 * 1024 * 1024,
          minimum: 1024,
          description: 'Most batch bytes folded into one group commit.',
        }),
        maxDirtySamples: Type.Integer({
          default: 65536,
          minimum: 1,
          description:
            'Most samples whose newest state is only in the log and in memory (their G(z) cached, 4·k bytes each); ingest waits for the flusher beyond it.',
        }),
        flushIntervalMs: Type.Integer({
          default: 1000,
          minimum: 1,
          description:
            "A flush of dirty samples into their runs' record segments starts this long after the first one turns dirty (or at half of maxDirtySamples).",
        }),
        flushChunkSamples: Type.Integer({
          default: 1024,
          minimum: 1,
          description: 'Sample records per flush write (one append and sync).',
        }),
        segmentBytes: Type.Integer({
          default: 64 * 1024 * 1024,
          minimum: 16384,
          maximum: 1024 ** 3,
          description:
            "Size at which a run's record segment file is closed and the next started. Compaction keeps a run's segments within twice its live records, or two segments' worth, whichever is more; each segment holds an open file descriptor (docs/store.md).",
        }),
        syncCommits: Type.Boolean({
          default: false,
          description:
            "Write each group commit (and its fsync) synchronously on the main thread instead of through LMDB's write thread: lower Ack tail latency on a fast local disk (one event-loop hop instead of two), but the main thread waits out every fsync (docs/performance.md).",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    score: Type.Object(
      {
        normalize: Type.Union([Type.Literal('cosine'), Type.Literal('dot')], {
          default: 'cosine',
          description: 'cosine: train and query sketches are L2-normalised before the products; dot: raw.',
        }),
        votePercentile: Type.Number({
          default: 90,
          minimum: 0,
          maximum: 100,
          description: 'tau_j is this percentile (linear interpolation) of S_j over seen samples; votes count S_j > tau_j.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    weights: Type.Object(
      {
        policy: Type.Union([Type.Literal('observe'), Type.Literal('downweight'), Type.Literal('quarantine')], {
          default: 'downweight',
          description: 'observe: compute weights, never push; downweight: push; quarantine: push, and w = 0 below quarantineZ.',
        }),
        minSeen: Type.Integer({
          default: 1,
          minimum: 1,
          description:
            'Samples seen fewer times keep weight 1. The default, 1, gives every sample a weight after one pass over the data (an epoch sees each clip once).',
        }),
        beta: Type.Number({
          default: 0.5,
          exclusiveMinimum: 0,
          description: 'w = clamp(exp(beta * z), wMin, 1), z the robust z-score of score.',
        }),
        wMin: Type.Number({ default: 0.05, minimum: 0, maximum: 1, description: 'Lowest weight the down-weight policy gives.' }),
        quarantineZ: Type.Number({ default: -4, description: 'quarantine policy: w = 0 where z < quarantineZ.' }),
        minDelta: Type.Number({ default: 0.01, minimum: 0, description: 'A weight change smaller than this is not pushed.' }),
        intervalMs: Type.Integer({ default: 1000, minimum: 10, description: 'Weights of a run are recomputed at most this often (ms).' }),
        maxRecomputeShare: Type.Number({
          default: 0.05,
          exclusiveMinimum: 0,
          maximum: 1,
          description:
            "Most of the main thread a run's recomputes may take: after one that kept it busy d ms, the next starts no sooner than d / maxRecomputeShare ms after it began (intervalMs at least). A run of a million samples then recomputes every few seconds; batch updates keep the samples it trains on current meanwhile.",
        }),
        batchUpdates: Type.Boolean({
          default: true,
          description:
            "After each commit, push the weights of the committed batches' samples at once, from the last recompute's median and scale (the next recompute refreshes them).",
        }),
        signal: Type.Union([Type.Literal('fused'), Type.Literal('attribution')], {
          default: 'fused',
          description:
            "What the weights come from. fused: the score's robust z minus checkWeight times the sample's motion check (its per-clip features' largest robust z above checkFloorZ; a sample without features: the score's z alone). attribution: the score's z alone (docs/method.md, 'The fused signal').",
        }),
        checkWeight: Type.Number({
          default: 4,
          minimum: 0,
          description:
            "fused signal: how much one unit of a sample's motion check lowers its fused z (4: chosen on the motion benchmark's development families, docs/results.md).",
        }),
        checkFloorZ: Type.Number({
          default: 0,
          description: 'fused signal: a feature counts as suspicious only by how far its robust z exceeds this.',
        }),
        checkShares: Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Number({ minimum: 0 }), {
          default: { reversal_gap: 0.25 },
          description:
            "fused signal: features, by name, that are added to the check, each as share times its robust z above checkFloorZ, instead of entering the check's largest z ({}: every feature enters the largest z). The default adds the hook's model-based reversal_gap at a quarter of the largest z's weight, chosen on the motion benchmark's development families (docs/method.md, 'The fused signal'; docs/results.md).",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    influence: Type.Object(
      {
        threads: Type.Integer({
          default: 1,
          minimum: 0,
          maximum: 256,
          description:
            'onnxruntime intra-op threads for scoring and scans; 0 = one per core. One is the default: sharing cores with other work (a trainer, data loaders), a second thread made 1M-sample scans 3-5x slower on 2 cores, not faster (docs/performance.md).',
        }),
        scanChunkSamples: Type.Integer({
          default: 2048,
          minimum: 1,
          description:
            'Rows of the int8 embedding mirror multiplied per kernel call in /attribute scans (2048 keeps the float32 copy of a chunk in cache at k = 512).',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        maxDim: Type.Integer({ default: 65536, minimum: 1, description: 'Largest sketch length k accepted.' }),
        maxSampleIdBytes: Type.Integer({
          default: 512,
          minimum: 1,
          maximum: 65535,
          description: "Longest sample id (UTF-8 bytes); at most 65,535, the record segments' frame header field (docs/store.md).",
        }),
        maxQueries: Type.Integer({ default: 4096, minimum: 1, description: 'Most queries in one query set.' }),
        maxAttributeLimit: Type.Integer({ default: 10000, minimum: 1, description: 'Largest `limit` of REST listings.' }),
        maxRuns: Type.Integer({
          default: 1000,
          minimum: 1,
          description: 'Most runs the daemon holds; a Hello for a new run beyond it is refused.',
        }),
        maxSamplesPerRun: Type.Integer({
          default: 50_000_000,
          minimum: 1,
          description: 'Most distinct samples per run; a batch that would add more is rejected.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    sidecar: Type.Object(
      {
        maxBacklog: Type.Integer({
          default: 200_000,
          minimum: 1,
          description:
            'Most side-car jobs (trained clip-step pairs not yet attributed) per run, each about 200 bytes of memory; a report beyond it drops the oldest jobs, counted in motive_sidecar_jobs_dropped_total (docs/wire.md).',
        }),
        leaseMs: Type.Integer({
          default: 60_000,
          minimum: 100,
          description:
            'How long a worker holds leased jobs (when its Lease asks for no other time); unanswered by then, they are leased again.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    shutdownGraceMs: Type.Integer({ default: 10000, minimum: 0, description: 'SIGTERM: time to drain streams before closing.' }),
  },
  { additionalProperties: false, $id: 'https://motive.dev/schemas/config.schema.json', title: 'Motive daemon configuration' },
);

/** The compiled, validated, frozen configuration. */
export type MotiveConfig = Static<typeof ConfigSchema>;
