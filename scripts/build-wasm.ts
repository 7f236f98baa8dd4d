// Compiles the daemon's WebAssembly kernels (.wat) into the TypeScript modules that embed them.
import { readFileSync, writeFileSync } from 'node:fs';
import { WASM_MODULES, wasmModuleSource } from './wasm-source.js';

const root = new URL('../', import.meta.url);
for (const module of WASM_MODULES) {
  const target = new URL(module.ts, root);
  writeFileSync(target, await wasmModuleSource(module, readFileSync(new URL(module.wat, root), 'utf8')));
  console.log(`wrote ${target.pathname}`);
}
