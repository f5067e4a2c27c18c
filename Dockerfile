# Leash broker image: API, worker or both, chosen by LEASH_ROLE. Runs the compiled JavaScript;
# the TypeScript compiler stays in the build stage.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund --ignore-scripts && npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY policy.example.yaml ./
USER node
EXPOSE 8080
ENV HOST=0.0.0.0 PORT=8080 LEASH_KEYS_DIR=/keys LEASH_POLICY=/etc/leash/policy.yaml
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# The broker is PID 1's own process: SIGHUP reloads it, SIGTERM drains it.
CMD ["node", "dist/main.js"]
