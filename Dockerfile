# certgate container image.
#
#   docker build -t certgate .
#   docker run -d -p 8443:8443 -p 8080:8080 -p 9443:9443 -v certgate:/data \
#     -e CERTGATE_EXTERNAL_URL=https://certgate.example.com:8443 \
#     -e CERTGATE_CA_PASSPHRASE=... certgate
#
# On first start the entrypoint (conf/docker-entrypoint.sh) writes a complete site into the
# /data volume (`certgate init`): configuration, templates, database and CA. Later starts
# serve that site as it is; edit /data/site/certgate.toml to change it. The process runs as
# the unprivileged user certgate (uid 10001); the installed code is owned by root and
# read-only to it.
#
# BASE: any Debian-like image with python3 (>= 3.11) and the venv module. Builds without a
# registry use a local image, e.g. a debootstrap tree imported with `podman import`
# (tests/interop/test_container.py does that).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# pip reads PIP_* from the environment: a build behind a TLS-inspecting proxy passes
# --build-arg PIP_CERT=FILE with the bundle mounted (it stays in this stage).
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a code change re-uses this layer.
COPY pyproject.toml /src/
RUN python3 -m venv /opt/certgate \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/certgate/bin/pip install -q -r /tmp/requirements.txt
COPY . /src/
RUN /opt/certgate/bin/pip install -q --no-deps /src \
    && /opt/certgate/bin/certgate --help >/dev/null

FROM ${BASE}
RUN groupadd --system --gid 10001 certgate \
    && useradd --system --no-create-home --home-dir /data --shell /usr/sbin/nologin \
        --uid 10001 --gid certgate certgate \
    && mkdir -p /data && chown certgate:certgate /data && chmod 0700 /data
COPY --from=build /opt/certgate /opt/certgate
COPY conf/docker-entrypoint.sh /usr/local/bin/certgate-entrypoint
ENV PATH=/opt/certgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    CERTGATE_CONFIG=/data/site/certgate.toml
USER certgate
WORKDIR /data
VOLUME ["/data"]
# Main listener (HTTPS: ACME, CEP/CES, SCEP), plain device listener (SCEP, CRL/AIA), EST (mutual TLS).
EXPOSE 8443 8080 9443
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["certgate-entrypoint", "healthcheck"]
ENTRYPOINT ["certgate-entrypoint"]
CMD ["serve"]
