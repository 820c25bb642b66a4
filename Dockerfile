# syntax=docker/dockerfile:1
#
# The one image of flatline's services (storage, query, ingestion and the
# device simulator), as the cdk8s charts run it: `localhost:5001/flatline:dev`
# by default (cdk8s/src/settings.ts), built by the Tiltfile's docker_build.
# Each container picks its service with its command:
#
#   node --import tsx services/<service>/src/main.ts
#
# tsx compiles the TypeScript sources at start (there is no build output), so
# the image holds the sources and tsx, not JavaScript. Nothing is fetched at
# run time: the pods' root filesystem is read-only and tsx caches in /tmp.
#
#   docker build -t localhost:5001/flatline:dev .
#   docker run --rm localhost:5001/flatline:dev services/devices/src/main.ts --help

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: dependencies (better-sqlite3 compiles from source) ----------------
FROM ${NODE_IMAGE} AS build

# A failing command in a pipe fails the step (npm query below).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The npm the lock file and package.json's allowScripts are written for (the
# image's own npm 10 knows nothing of allowScripts and runs every install script).
ARG NPM_VERSION=11.19.1

# python3, make and g++ for node-gyp. Not pinned: they follow the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/* \
 && npm install --global "npm@${NPM_VERSION}" \
 && npm cache clean --force

WORKDIR /app

# better-sqlite3 compiles against the headers of the image's own Node (no
# download of headers or of a prebuilt binary), as it does on the dev machines.
ENV npm_config_build_from_source=better-sqlite3 \
    npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false

# The manifests first: this layer (the slow one: install and compile) is
# reused until a package.json or the lock file changes. One line per
# workspace of package.json; npm ci refuses a workspace it cannot find.
COPY package.json package-lock.json ./
COPY proto/package.json proto/
COPY services/platform/package.json services/platform/
COPY mesh/package.json mesh/
COPY cdk8s/package.json cdk8s/
COPY services/devices/package.json services/devices/
COPY services/storage/package.json services/storage/
COPY services/query/package.json services/query/
COPY services/ingestion/package.json services/ingestion/
COPY stack/package.json stack/
COPY bench/package.json bench/
COPY cli/package.json cli/

# tsx, which runs the services, is a devDependency of the root (so are eslint,
# mocha, TypeScript and buf, which the image does not need): keep tsx and what
# it depends on (npm query lists them from the installed tree, esbuild's
# platform package included), prune every other devDependency, then check
# that both the native addon and tsx load.
RUN npm ci \
 && npm query ':is(#tsx, #tsx *)' \
    | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).map((p) => p.location).join("\n")))' \
    > /tmp/tsx-files \
 && tar -cf /tmp/tsx.tar -T /tmp/tsx-files \
 && npm prune --omit=dev \
 && tar -xf /tmp/tsx.tar \
 && rm /tmp/tsx.tar /tmp/tsx-files \
 && npm cache clean --force \
 && node -e 'new (require("better-sqlite3"))(":memory:").close()' \
 && node --import tsx -e ''

# The sources the services run (.dockerignore keeps tests and local state out).
COPY tsconfig.json ./
COPY proto/gen proto/gen
COPY proto/index.ts proto/
COPY services services
COPY mesh/src mesh/src

# ---- runtime ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# The numeric user and group of the pods' securityContext (Settings.uid in
# cdk8s/src/settings.ts): the files stay root's, readable, never writable.
ARG UID=10001
RUN groupadd --gid "${UID}" flatline \
 && useradd --uid "${UID}" --gid "${UID}" --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin flatline

ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app

USER ${UID}:${UID}

# What every chart's container runs, less the service; the charts set the
# whole command (node --import tsx services/<service>/src/main.ts), and the
# Tiltfile adds --watch to it. Run alone, the image starts query.
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/query/src/main.ts"]
