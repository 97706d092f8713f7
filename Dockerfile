# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian image as
# a non-root user. Configuration comes from SWITCHBOARD_* environment
# variables and DATABASE_URL (see README.md).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY .cargo .cargo
COPY entity/Cargo.toml entity/Cargo.toml
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src entity/src migration/src \
 && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && echo '' > entity/src/lib.rs && echo '' > migration/src/lib.rs \
 && cargo build --release --locked || true
COPY . .
RUN touch src/main.rs src/lib.rs entity/src/lib.rs migration/src/lib.rs \
 && cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/switchboard --create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /var/lib/switchboard
ENV SWITCHBOARD_BIND=0.0.0.0:8080 \
    SWITCHBOARD_ENVIRONMENT=production \
    SWITCHBOARD_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
