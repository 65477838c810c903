import { serviceBuild } from '../../tsup.base';

// main: the API; migrate: the one-shot migration step of docker-compose.
export default serviceBuild({ main: 'src/main.ts', migrate: 'src/migrate.ts' });
