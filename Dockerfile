# syntax=docker/dockerfile:1
# keyrelay: the gateway in a container. Build: docker build -t keyrelay .
# Run:   docker run -p 8080:8080 -e OPENAI_API_KEYS=... -e KEYRELAY_ADMIN_TOKEN=... keyrelay
# No Docker engine at hand? docker/check-build.sh replays these steps on the host.

# Build stage: every dependency, the TypeScript compiler, the build.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; the build is its own
# step below, so this layer is reused as long as the lockfile does not change.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The web console's sources: Vite builds them into dist/console/ beside the compiled gateway.
COPY console ./console
RUN npm run build

# Runtime stage: production dependencies and the built program only.
FROM node:22-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build, which needs the dev dependencies left out here.
# The npm cache is a build cache mount, so it stays out of the image.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config ./config
# The operation table every /v1 request is matched against, with its notice (MIT).
COPY spec/openai/routes.tsv ./spec/openai/routes.tsv
COPY spec/openai/NOTICE ./spec/openai/NOTICE
# The files stay root's: the gateway only reads them.
USER node
EXPOSE 8080
# The slim image has no curl: node asks /healthz itself, over HTTPS when the gateway serves TLS
# (its certificate is not checked: this is the container asking itself on loopback).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 CMD ["node", "-e", "require(process.env.KEYRELAY_TLS_CERT ? 'https' : 'http').get({ host: '127.0.0.1', port: process.env.PORT || 8080, path: '/healthz', rejectUnauthorized: false }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
ENTRYPOINT ["node", "bin/keyrelay.js"]
CMD ["serve"]
