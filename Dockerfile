# One image for every binary: choose it by command, e.g.
#   docker run outbox-hub dist/cmd/drainer/main.js
#   docker run outbox-hub dist/cmd/cli/main.js status --ops http://ops:8081   (or `outbox-hub` in a shell)
# Build: docker build -t outbox-hub .
FROM node:20.19-bookworm-slim AS build
# Extra CA certificates for npm behind a TLS-intercepting proxy (build stage only; empty: none).
ARG NODE_EXTRA_CA_CERTS
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Only the binaries and their packages: no tests, test harness or benchmarks enter the image.
COPY tsconfig.json tsconfig.build.json tsconfig.image.json ./
COPY cmd cmd
COPY internal internal
# mongodb, @kubernetes/client-node and the OpenTelemetry SDK packages (span export) are optional
# peers of the npm package (an SDK-only user needs none of them) and devDependencies of the
# repository, so pruning to production dependencies drops them: the binaries need them, so they
# go back in as production dependencies of the image, at the versions the repository pins.
RUN npx tsc -p tsconfig.image.json \
 && chmod +x dist/cmd/cli/main.js \
 && npm run build:sdk-browser \
 && npm prune --omit=dev \
 && npm install --omit=dev --save-prod --save-exact --no-audit --no-fund \
      $(node -p 'const p = require("./package.json"); ["mongodb", "@kubernetes/client-node", "@opentelemetry/sdk-trace", "@opentelemetry/exporter-trace-otlp-http", "@opentelemetry/resources", "@opentelemetry/context-async-hooks"].map((n) => `${n}@${p.devDependencies[n]}`).join(" ")')

FROM node:20.19-bookworm-slim
# tini is PID 1: it forwards SIGTERM to node and reaps zombies. The command line is on the PATH
# for `kubectl exec <pod> -- outbox-hub status` (it reads OUTBOX_HUB_OPS_URL and friends).
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/* \
 && ln -s /app/dist/cmd/cli/main.js /usr/local/bin/outbox-hub
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist/cmd dist/cmd
COPY --from=build /src/dist/internal dist/internal
COPY --from=build /src/dist/sdk dist/sdk
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["dist/cmd/gateway/main.js"]
