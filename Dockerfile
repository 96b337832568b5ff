# One image for every CareSignal service; the command picks the service.

# The risk board's front-end assets (GOV.UK Frontend), at the versions package-lock.json
# pins; only the runtime packages (no axe-core, a test tool).
FROM node:20-slim AS board-assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY schemas ./schemas
COPY services ./services
COPY deploy ./deploy
RUN uv sync --frozen --no-dev
# The alerts service serves the board's assets from the project root's node_modules.
COPY --from=board-assets /build/node_modules ./node_modules
# The services run as uid 10001. Every directory docker-compose.yml mounts a named volume
# on is made here and owned by that user: an empty named volume takes the owner of the
# directory it is mounted over, so the services can write their state there (RocksDB
# tables in scoring/, the API key files in keys/).
RUN useradd --system --uid 10001 --user-group --no-create-home caresignal \
 && mkdir -p /var/lib/caresignal/scoring /var/lib/caresignal/keys \
 && chown -R caresignal:caresignal /var/lib/caresignal
USER caresignal
ENV PATH="/app/.venv/bin:$PATH"
ENTRYPOINT ["caresignal"]
