# Leash broker image: API, worker or both, chosen by LEASH_ROLE.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY bin ./bin
COPY scripts ./scripts
COPY policy.example.yaml ./
USER node
EXPOSE 8080
ENV HOST=0.0.0.0 PORT=8080 LEASH_KEYS_DIR=/keys LEASH_POLICY=/etc/leash/policy.yaml
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
