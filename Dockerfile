# syntax=docker/dockerfile:1
# reporter-vault: build with the pinned Rust toolchain, run on distroless as the nonroot user.
#
#   docker build -t reporter-vault:0.1.0 .
#   docker run --rm -p 8700:8700 reporter-vault:0.1.0 serve --demo
#
# The runtime image has no shell, no package manager and no root user. Pin both base images
# by digest in the release pipeline (FROM image:tag@sha256:…).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The whole workspace: the binary embeds migrations/ and the OpenAPI document at compile
# time, and Cargo reads every member's manifest (tests/ holds declared test targets).
COPY . .
# Cargo.lock is enforced (--locked); the dist profile is release + thin LTO.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --profile dist --locked -p vault-service --bin reporter-vault \
    && install -D -m 0555 target/dist/reporter-vault /out/app/reporter-vault \
    && install -d -m 0700 /out/var/lib/reporter-vault

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/app/reporter-vault /app/reporter-vault
# The shipped reward policies, owned by root and read-only to the service user.
COPY policies/*.toml /app/policies/
# The data directory for a plain `docker run`; Kubernetes mounts a volume here.
COPY --from=build --chown=65532:65532 /out/var/lib/reporter-vault /var/lib/reporter-vault
ENV RV_LISTEN=0.0.0.0:8700 \
    RV_DATA_DIR=/var/lib/reporter-vault \
    RV_POLICIES=/app/policies \
    RV_LOG_FORMAT=json
WORKDIR /app
USER 65532:65532
EXPOSE 8700
ENTRYPOINT ["/app/reporter-vault"]
CMD ["serve"]
