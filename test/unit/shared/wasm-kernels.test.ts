import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WASM_MODULES, wasmModuleSource } from '../../../scripts/wasm-source.js';

describe('WebAssembly kernels', () => {
  for (const module of WASM_MODULES)
    it(`${module.ts} is compiled from ${module.wat} (run npm run gen:wasm)`, async () => {
      const root = new URL('../../../', import.meta.url);
      const wat = readFileSync(new URL(module.wat, root), 'utf8');
      expect(readFileSync(new URL(module.ts, root), 'utf8')).toBe(await wasmModuleSource(module, wat));
    });
});
