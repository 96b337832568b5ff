# One image for every CareSignal service; the command picks the service.
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
RUN useradd --system --uid 10001 caresignal && mkdir -p /var/lib/caresignal && chown caresignal /var/lib/caresignal
USER caresignal
ENV PATH="/app/.venv/bin:$PATH"
ENTRYPOINT ["caresignal"]
