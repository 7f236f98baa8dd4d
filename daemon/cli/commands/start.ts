import type { Command } from '../common.js';

export const startCommand: Command = {
  usage: 'start                              run the daemon (config: MOTIVE_CONFIG, MOTIVE_* env); same as npm start',
  run: async () => {
    const { main } = await import('../../main.js');
    await main();
    return 0;
  },
};
