# syntax=docker/dockerfile:1
# One image per Trackway service, chosen with SERVICE: ingest, attribution, delivery or api.
# Build from the repository root:
#   docker build --build-arg SERVICE=ingest -t trackway-ingest .
# The api image also carries the one-shot migration: `node dist/migrate.js`.
FROM node:20-bookworm-slim AS build
ARG SERVICE
RUN case "$SERVICE" in ingest|attribution|delivery|api) ;; *) echo "SERVICE must be ingest, attribution, delivery or api (got \"$SERVICE\")" >&2; exit 1 ;; esac
RUN npm install -g pnpm@12.4.2
WORKDIR /repo
# Manifests first, so the dependency layer is cached until the lockfile changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc turbo.json tsconfig.base.json tsconfig.json tsup.base.ts prisma.config.ts ./
COPY packages ./packages
COPY services ./services
COPY prisma ./prisma
COPY scripts ./scripts
RUN pnpm install --frozen-lockfile
# `prisma generate` never runs the schema engine; any existing file satisfies the check.
RUN PRISMA_SCHEMA_ENGINE_BINARY=/usr/local/bin/node pnpm exec prisma generate
RUN pnpm turbo run build --filter=@trackway/${SERVICE}
# A pruned production install: only runtime dependencies, flat node_modules.
RUN pnpm --filter=@trackway/${SERVICE} deploy --prod --config.node-linker=hoisted /out

FROM node:20-bookworm-slim
ARG SERVICE
ENV NODE_ENV=production \
    SERVICE=${SERVICE} \
    MIGRATIONS_DIR=/app/prisma/migrations
WORKDIR /app
COPY --from=build --chown=node:node /out/node_modules ./node_modules
COPY --from=build --chown=node:node /out/package.json ./package.json
COPY --from=build --chown=node:node /repo/services/${SERVICE}/dist ./dist
COPY --from=build --chown=node:node /repo/prisma/migrations ./prisma/migrations
USER node
# No EXPOSE: one stage cannot expose a port per service. ingest listens on INGEST_PORT (3000),
# api on API_PORT (3001); the workers have no traffic port, only health and metrics on
# HEALTH_PORT (9464), so `docker compose up --scale attribution=N` just works.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "const e = process.env; const port = { ingest: e.INGEST_PORT || 3000, api: e.API_PORT || 3001 }[e.SERVICE] || e.HEALTH_PORT || 9464; fetch('http://127.0.0.1:' + port + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# SIGTERM reaches node directly (exec form): the service drains within SHUTDOWN_TIMEOUT_MS.
CMD ["node", "--enable-source-maps", "dist/main.js"]
