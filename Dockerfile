# syntax=docker/dockerfile:1.7
#
# One multi-stage Dockerfile for every Gantry image; pick the image with --target:
#
#   docker build --target gateway       -t gantry/gateway:0.1.0 .
#   docker build --target scheduler     -t gantry/scheduler:0.1.0 .
#   docker build --target notifier      -t gantry/notifier:0.1.0 .
#   docker build --target gpu-worker    -t gantry/gpu-worker:0.1.0 .
#   docker build --target deletion-cost -t gantry/deletion-cost:0.1.0 .   # Kubernetes helper, see deploy/
#
# Every image runs Node 24 as the non-root user 1000 under tini (PID 1 reaps the job processes a worker starts and
# forwards SIGTERM, so the services' graceful shutdown runs). The gpu-worker image adds ffmpeg and is ready for the
# NVIDIA container runtime: GPUs are handed over by the standard device request (`docker run --gpus`, compose
# `deploy.resources.reservations.devices`, or the Kubernetes device plugin's `nvidia.com/gpu`), which also mounts
# the driver's libraries and nvidia-smi. See docs/operations.md ("Images").

# Pin by digest in your registry mirror for reproducible builds; the tag is the Node 24 LTS release the repo pins.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim
# Base of the worker image. Debian's ffmpeg loads NVENC/NVDEC from the driver at run time. Job types that need the
# CUDA runtime inside the container can build on a CUDA image instead, e.g.
#   --build-arg WORKER_BASE=nvidia/cuda:12.9.1-runtime-ubuntu24.04
ARG WORKER_BASE=debian:bookworm-slim

# ---- build: full install (dev dependencies included), compile every project ---------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Manifests first, so the dependency layer is rebuilt only when they change. Every workspace package.json must be
# here or npm cannot link the workspaces (test/deploy checks that this list matches libs/* and apps/*).
COPY package.json package-lock.json .npmrc ./
COPY libs/config/package.json libs/config/
COPY libs/contracts/package.json libs/contracts/
COPY libs/jetstream/package.json libs/jetstream/
COPY libs/job-store/package.json libs/job-store/
COPY libs/net/package.json libs/net/
COPY libs/storage/package.json libs/storage/
COPY libs/telemetry/package.json libs/telemetry/
COPY libs/testing/package.json libs/testing/
COPY libs/client/package.json libs/client/
COPY apps/gateway/package.json apps/gateway/
COPY apps/scheduler/package.json apps/scheduler/
COPY apps/gpu-worker/package.json apps/gpu-worker/
COPY apps/notifier/package.json apps/notifier/
COPY apps/cli/package.json apps/cli/
# `npm ci` installs exactly package-lock.json. Optional dependencies are left out: they are the pinned Node binary
# (node-linux-*, which the image does not need: it has Node 24) and platform builds of dev tools that tsc does not use.
# (On a registry mirror that lacks some optional platform packages `npm ci` refuses the lockfile; tools/gantry.mjs
# uses `npm install` for that reason. Against the public registry, as here, `npm ci` is the reproducible choice.)
RUN --mount=type=cache,target=/root/.npm npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.base.json tsconfig.build.json ./
COPY libs libs
COPY apps apps
RUN npx tsc -b tsconfig.build.json

# ---- prod-deps: production dependencies only (no dev tools, no optional Node binary) ------------------------------
FROM build AS prod-deps
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund

# ---- runtime: what every Node service image shares ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    HTTP_HOST=0.0.0.0 \
    NODE_OPTIONS=--enable-source-maps
COPY --from=prod-deps /src/package.json ./package.json
COPY --from=prod-deps /src/node_modules ./node_modules
# The libraries' compiled output; node_modules/@gantry/* are workspace links to these folders.
COPY --from=build /src/libs/config/package.json libs/config/package.json
COPY --from=build /src/libs/config/dist libs/config/dist
COPY --from=build /src/libs/contracts/package.json libs/contracts/package.json
COPY --from=build /src/libs/contracts/dist libs/contracts/dist
COPY --from=build /src/libs/jetstream/package.json libs/jetstream/package.json
COPY --from=build /src/libs/jetstream/dist libs/jetstream/dist
COPY --from=build /src/libs/job-store/package.json libs/job-store/package.json
COPY --from=build /src/libs/job-store/dist libs/job-store/dist
COPY --from=build /src/libs/net/package.json libs/net/package.json
COPY --from=build /src/libs/net/dist libs/net/dist
COPY --from=build /src/libs/storage/package.json libs/storage/package.json
COPY --from=build /src/libs/storage/dist libs/storage/dist
COPY --from=build /src/libs/telemetry/package.json libs/telemetry/package.json
COPY --from=build /src/libs/telemetry/dist libs/telemetry/dist
# The node user of the official image is uid/gid 1000; numeric so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--", "node"]

# ---- gateway ------------------------------------------------------------------------------------------------------
FROM runtime AS gateway
COPY --from=build /src/apps/gateway/package.json apps/gateway/package.json
COPY --from=build /src/apps/gateway/dist apps/gateway/dist
# The dashboard's static files (/ui) and the browser build of @gantry/client it loads.
COPY --from=build /src/apps/gateway/ui apps/gateway/ui
COPY --from=build /src/libs/client/package.json libs/client/package.json
COPY --from=build /src/libs/client/dist libs/client/dist
ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080
EXPOSE 8080
CMD ["apps/gateway/dist/main.js"]

# ---- scheduler ----------------------------------------------------------------------------------------------------
FROM runtime AS scheduler
COPY --from=build /src/apps/scheduler/package.json apps/scheduler/package.json
COPY --from=build /src/apps/scheduler/dist apps/scheduler/dist
ENV SCHEDULER_HTTP_PORT=8081
EXPOSE 8081
CMD ["apps/scheduler/dist/main.js"]

# ---- notifier -----------------------------------------------------------------------------------------------------
FROM runtime AS notifier
COPY --from=build /src/apps/notifier/package.json apps/notifier/package.json
COPY --from=build /src/apps/notifier/dist apps/notifier/dist
ENV NOTIFIER_HTTP_PORT=8083
EXPOSE 8083
CMD ["apps/notifier/dist/main.js"]

# ---- deletion-cost: the Kubernetes helper that marks busy GPU pods expensive to delete (deploy/deletion-cost) -------
FROM ${NODE_IMAGE} AS deletion-cost
WORKDIR /app
COPY deploy/deletion-cost/controller.mjs ./controller.mjs
USER 1000:1000
ENTRYPOINT ["node", "controller.mjs"]

# ---- gpu-worker: ffmpeg + Node 24 on a CUDA-host-ready base --------------------------------------------------------
# bubblewrap sandboxes every job process (docs/gpu.md, "Job sandbox"); setpriv, prlimit and choom come with util-linux.
FROM ${NODE_IMAGE} AS node
FROM ${WORKER_BASE} AS gpu-worker
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg tini ca-certificates bubblewrap \
  && rm -rf /var/lib/apt/lists/* \
  && (getent group 1000 >/dev/null || groupadd --gid 1000 gantry) \
  && (getent passwd 1000 >/dev/null || useradd --uid 1000 --gid 1000 --home-dir /app --no-create-home gantry) \
  && mkdir -p /scratch && chown 1000:1000 /scratch
# The Node binary is self-contained but for glibc and libstdc++, which every Debian/Ubuntu base has.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=runtime /app /app
COPY --from=build /src/apps/gpu-worker/package.json apps/gpu-worker/package.json
COPY --from=build /src/apps/gpu-worker/dist apps/gpu-worker/dist
# The NVIDIA container runtime mounts the driver libraries named by these capabilities (compute for CUDA, utility
# for nvidia-smi, video for NVENC/NVDEC). NVIDIA_VISIBLE_DEVICES is deliberately not set here: the device request
# (or the Kubernetes device plugin) chooses the GPUs; "all" in an image would hand every GPU of the host to any
# container started from it on a node whose default runtime is nvidia.
ENV NODE_ENV=production \
    HTTP_HOST=0.0.0.0 \
    NODE_OPTIONS=--enable-source-maps \
    WORKER_HTTP_PORT=8082 \
    WORKER_SCRATCH_DIR=/scratch \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
USER 1000:1000
EXPOSE 8082
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["apps/gpu-worker/dist/main.js"]
