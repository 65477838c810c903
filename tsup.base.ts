import { defineConfig } from 'tsup';

/**
 * A service's build: one CommonJS file per entry, with the workspace packages (TypeScript
 * sources) bundled in and npm dependencies left external, to come from the pruned production
 * install (`pnpm deploy --prod`, see the Dockerfile).
 */
export function serviceBuild(entry: Record<string, string> = { main: 'src/main.ts' }) {
  return defineConfig({
    entry,
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    noExternal: [/^@trackway\//],
    external: [/^(?!@trackway\/)[^./]/],
    sourcemap: true,
    clean: true,
  });
}
