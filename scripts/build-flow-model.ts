/**
 * Regenerates the shipped optical-flow model, daemon/motion/models/lk-flow.onnx, from the graph
 * built in daemon/motion/lk-flow-model.ts (pyramidal Lucas–Kanade, standard ONNX ops).
 * `npm run build:flow-model`; test/unit/motion/flow-model.test.ts fails when the file is stale.
 */
import { writeFileSync } from 'node:fs';
import { lkFlowModel, SHIPPED_FLOW_MODEL } from '../daemon/motion/index.js';

const bytes = lkFlowModel();
writeFileSync(SHIPPED_FLOW_MODEL, bytes);
process.stdout.write(`wrote ${SHIPPED_FLOW_MODEL} (${bytes.byteLength} bytes)\n`);
