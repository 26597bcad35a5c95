# The dossier-bus image: every service is one `bus` command (docker-compose.yml,
# docs/deploy.md), e.g.  docker run --rm dossier-bus connector validate /etc/bus/connector.toml

# Build the wheel apart, so that the sources and pip's build files stay out of the image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY bus bus
COPY connectors connectors
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# Relative paths (a connector config's state_dir, sqlite:/// stores) land in /srv/bus, and
# var/ is where a volume keeps what must outlive the container: mount one there.
RUN useradd --system --uid 10001 --user-group --home-dir /srv/bus --shell /usr/sbin/nologin bus \
    && install -d -o bus -g bus -m 0750 /srv/bus /srv/bus/var
WORKDIR /srv/bus
USER bus

# In a container the probes (/metrics, /healthz, /readyz) must answer from outside it;
# whoever runs the container decides which ports are published.
ENV BUS_METRICS_HOST=0.0.0.0
# sync run, connector run, portal-sim, console
EXPOSE 9101 9102 8700 8780

ENTRYPOINT ["bus"]
CMD ["--help"]
