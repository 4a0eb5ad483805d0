# certgate container: installs exactly as the README does (./dev), runs as a non-root user,
# keeps its state (SQLite database, encrypted CA keys) in the /data volume.
FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /home/certgate --uid 10001 certgate \
    && mkdir -p /data && chown certgate /data
WORKDIR /app
COPY --chown=certgate . /app
USER certgate
RUN ./dev install
ENV CERTGATE_DATA=/data \
    CERTGATE_CONFIG=/app/conf/certgate.toml
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
# Production: set CERTGATE_CA_PASSPHRASE (or mount a file and reference it in the config).
CMD ["./dev", "serve", "--host", "0.0.0.0", "--port", "8080"]
