import { serviceBuild } from '../../tsup.base';

// main: the API; migrate: the one migrate entry point (`pnpm db:migrate`, the compose `migrate` step).
export default serviceBuild({ main: 'src/main.ts', migrate: 'src/migrate.ts' });
