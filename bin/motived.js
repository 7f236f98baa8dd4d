#!/usr/bin/env node
// motived: the Motive daemon. TypeScript sources run through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../daemon/main.ts');
await main();
