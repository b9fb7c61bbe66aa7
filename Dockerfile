# syntax=docker/dockerfile:1
#
# Latchkey connector image: multi-stage, non-root (uid/gid 10001), read-only root
# filesystem friendly (nothing is written at run time except the state directory,
# LATCHKEY_STATE_DIR=/var/lib/latchkey, a volume). See docs/deploy.md.
#
#   docker build -t latchkey:dev .
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges \
#     -e LATCHKEY_CONTROL_PLANE_URL=wss://… -e LATCHKEY_CONNECTOR_ID=… \
#     -e LATCHKEY_CONNECTOR_TOKEN=… -e LATCHKEY_TRUSTED_KEYS=… latchkey:dev

# The current active LTS (Node.js 26 since 2026-10), pinned by digest: the multi-arch index
# of node:26.7.0-bookworm-slim. To update (docs/deploy.md "Image"): pick the new tag,
# `docker buildx imagetools inspect node:<version>-bookworm-slim` and copy the index digest
# here; CI runs the unit tests on the same Node major (.ci/run) before the change lands.
ARG NODE_IMAGE=node:26.7.0-bookworm-slim@sha256:cd565714d4da3e84bfd341e31448f81d47c6362198f152345297c9c1154e6341

# --- build: compile TypeScript to dist/ --------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only ------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.0.0-dev
LABEL org.opencontainers.image.title="latchkey" \
      org.opencontainers.image.description="On-prem just-in-time access connector" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# A fixed, unprivileged identity (matches securityContext.runAsUser in the Helm chart and
# "user" in the ECS task definition). No home directory, no shell login.
RUN groupadd --system --gid 10001 latchkey \
  && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
     --shell /usr/sbin/nologin latchkey

# The state directory (state journal: outbox, command ids, known integrations), owned by
# the agent, mode 0700. A volume, so it stays writable with a read-only root filesystem;
# mount a persistent one to keep state across container replacements.
RUN mkdir -p /var/lib/latchkey \
  && chown 10001:10001 /var/lib/latchkey \
  && chmod 0700 /var/lib/latchkey
VOLUME ["/var/lib/latchkey"]

WORKDIR /app
# --max-semi-space-size=4 (MiB): a smaller young generation, so that a burst of commands
# leaves less uncollected garbage behind (RSS after the core bench's burst ~135 instead of
# ~155 MiB, CPU per command within noise; bench/core.bench.ts runs the agent with these).
ENV NODE_ENV=production \
    NODE_OPTIONS="--enable-source-maps --max-semi-space-size=4" \
    LATCHKEY_HTTP_HOST=0.0.0.0 \
    LATCHKEY_HTTP_PORT=8080 \
    LATCHKEY_STATE_DIR=/var/lib/latchkey

# Owned by root and read-only for the agent: the image content cannot be changed at run time.
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./

USER 10001:10001
EXPOSE 8080

# /healthz answers 200 while the process is alive. Node's built-in fetch: no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.LATCHKEY_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM (docker stop, ECS, Kubernetes) starts the graceful shutdown of `run`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/main.js", "run"]
