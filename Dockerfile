# The ledger server. docker-compose.yml runs it next to PostgreSQL, Kafka and Azurite.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --create-home --home-dir /home/ledger ledger
USER ledger
WORKDIR /home/ledger
EXPOSE 8080
# Apply migrations, then serve. docker-compose.yml gives the same command.
CMD ["sh", "-c", "ledger db upgrade && ledger serve --host 0.0.0.0 --port 8080"]
