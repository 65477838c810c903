import { defineConfig } from 'tsup';

// One CommonJS file per entry: the workspace packages (TypeScript sources) are bundled in,
// npm dependencies stay external and come from the pruned production install (pnpm deploy).
export default defineConfig({
  entry: { main: 'src/main.ts' },
  format: ['cjs'],
  platform: 'node',
  target: 'node20',
  noExternal: [/^@trackway\//],
  external: [/^(?!@trackway\/)[^./]/],
  sourcemap: true,
  clean: true,
});
