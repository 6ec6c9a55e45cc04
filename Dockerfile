# sessiond container image: built with the same command as the README
# (`cargo build --release --locked`), run as a non-root user on a slim runtime.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY migrations migrations
COPY openapi openapi
RUN cargo build --release --locked --bin sessiond

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sessiond --shell /usr/sbin/nologin sessiond \
    && mkdir -p /var/lib/sessiond \
    && chown sessiond /var/lib/sessiond
COPY --from=build /src/target/release/sessiond /usr/local/bin/sessiond
COPY config/default.toml /etc/sessiond/default.toml
USER 10001
WORKDIR /var/lib/sessiond
ENV SESSIOND_ENVIRONMENT=production \
    SESSIOND_HOST=0.0.0.0 \
    SESSIOND_PORT=3000 \
    SESSIOND_DATA_DIR=/var/lib/sessiond
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/sessiond", "--config", "/etc/sessiond/default.toml", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sessiond", "--config", "/etc/sessiond/default.toml"]
CMD ["serve"]
