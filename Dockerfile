# Task Engine: a production image (non-root, with FFmpeg from Debian, tini as PID 1).
#   docker build -t task-engine .
#   docker run -p 3000:3000 -v te-data:/data task-engine            # embedded database in /data
#   docker run -e DATABASE_URL=postgres://… -p 3000:3000 task-engine  # server mode
# See docs/deployment.md (compose.yaml runs PostgreSQL, two engines and a worker).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY . .
# `npm ci` runs the `prepare` script: the engine into dist/ and the console into dist/ui/.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends ffmpeg tini ca-certificates \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /data && chown node:node /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Workflow handlers are TypeScript loaded at run time (through tsx) and import engine sources.
COPY --from=build /app/workflows ./workflows
COPY --from=build /app/src ./src
COPY --from=build /app/tsconfig.json ./
USER node
ENV NODE_ENV=production \
    TASK_ENGINE_HOST=0.0.0.0 \
    TASK_ENGINE_PORT=3000 \
    TASK_ENGINE_DATA_DIR=/data
VOLUME /data
EXPOSE 3000
# tini reaps every orphaned child (FFmpeg runs as children of the engine) and passes SIGTERM on;
# the engine handles SIGTERM itself: attempts finish within TASK_ENGINE_SHUTDOWN_GRACE_SECONDS,
# a second SIGTERM hands them back at once. Give `docker stop -t` more than the grace.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/cli/main.js"]
CMD ["serve"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TASK_ENGINE_PORT||3000)+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
