import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Router } from 'express';

// What the console's pages load, all from this server (the console works on a network that
// reaches no CDN): uPlot from node_modules, and the console's own script and style sheet, which
// live beside this file in ./assets (tsup copies them next to the bundle: see tsup.config.ts).

const ASSETS_PATH = '/console/assets';

const ownAssets = () => {
  const dir = [path.join(__dirname, 'assets'), __dirname].find((d) => existsSync(path.join(d, 'console.js')));
  if (!dir) throw new Error(`console assets (console.js, console.css) not found beside ${__dirname}`);
  return dir;
};

const FILES = {
  'uPlot.min.js': { type: 'js', file: () => require.resolve('uplot/dist/uPlot.iife.min.js') },
  'uPlot.min.css': { type: 'css', file: () => require.resolve('uplot/dist/uPlot.min.css') },
  'console.js': { type: 'js', file: () => path.join(ownAssets(), 'console.js') },
  'console.css': { type: 'css', file: () => path.join(ownAssets(), 'console.css') },
} as const;

export type AssetName = keyof typeof FILES;

export interface ConsoleAssets {
  router: Router;
  /** Each asset's URL, versioned by its content: browsers may keep it for a year. */
  url: Record<AssetName, string>;
}

/** Read once at start-up (a few dozen KB; a missing file stops the start, not a page). */
export function consoleAssets(): ConsoleAssets {
  const router = Router();
  const url = {} as Record<AssetName, string>;
  for (const [name, { type, file }] of Object.entries(FILES) as [AssetName, (typeof FILES)[AssetName]][]) {
    const body = readFileSync(file());
    const version = createHash('sha256').update(body).digest('hex').slice(0, 12);
    url[name] = `${ASSETS_PATH}/${name}?v=${version}`;
    router.get(`${ASSETS_PATH}/${name}`, (_req, res) => {
      // The URL changes with the content, so the content under one URL never does.
      res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
      res.setHeader('ETag', `"${version}"`);
      res.type(type).send(body);
    });
  }
  return { router, url };
}
