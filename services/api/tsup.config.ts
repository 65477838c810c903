import { serviceBuild } from '../../tsup.base';

// main: the API; migrate: the one migrate entry point (`pnpm db:migrate`, the compose `migrate` step).
// The console's own script and style sheet are copied beside the bundle (console/assets.ts finds them there).
export default { ...serviceBuild({ main: 'src/main.ts', migrate: 'src/migrate.ts' }), publicDir: 'src/console/assets' };
