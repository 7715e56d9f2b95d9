# syntax=docker/dockerfile:1
#
# assist-relay image: the `relay` node and the `loadtest` driver, nothing else.
#
#   docker build -t assist-relay .
#   docker run --rm -e RELAY_JWT_SECRET=change-me -p 8080:8080 -p 127.0.0.1:9090:9090 assist-relay
#   docker run --rm --entrypoint loadtest assist-relay --help
#
# The node's native-page template (relay/templates/native-page.html) is compiled into the binary
# (include_str! in relay/src/native.rs), so the runtime image needs no data files; custom templates
# can still be mounted and named with RELAY_NATIVE_TEMPLATES.
#
# deploy/validate.sh lints this file (hadolint), checks that everything it copies is in the build
# context that .dockerignore leaves, and with --build runs its build stage's commands outside Docker.

ARG RUST_VERSION=1

# --- build ----------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src

# Dependencies first: with only the manifests and the lock file in this layer, `cargo fetch` is
# cached until one of them changes, and source edits re-run only the build below. Cargo needs a
# target per package to read the manifests, hence the empty stubs (replaced by the real sources).
# Only the build platform's dependencies are fetched (not every target's, e.g. wasm-only crates).
COPY Cargo.toml Cargo.lock ./
COPY proto/Cargo.toml proto/
COPY relay/Cargo.toml relay/
COPY loadtest/Cargo.toml loadtest/
RUN mkdir -p proto/src relay/src loadtest/src \
    && touch proto/src/lib.rs relay/src/lib.rs loadtest/src/lib.rs \
    && echo 'fn main() {}' > relay/src/main.rs \
    && echo 'fn main() {}' > loadtest/src/main.rs \
    && cargo fetch --locked --target "$(rustc -vV | sed -n 's/^host: //p')"

COPY proto/ proto/
COPY relay/ relay/
COPY loadtest/ loadtest/
# --offline: everything was fetched above; the build itself never reaches the network.
RUN cargo build --release --locked --offline --bin relay --bin loadtest \
    && mkdir -p /out \
    && cp target/release/relay target/release/loadtest /out/

# --- runtime --------------------------------------------------------------------------------------
# Debian slim rather than distroless/cc: the binaries need only glibc and libgcc_s (no OpenSSL: no
# TLS is compiled in), and bash lets docker-compose.yml probe /readyz without curl. For
# gcr.io/distroless/cc-debian12:nonroot instead: keep the COPY, drop the RUN and WORKDIR (its user is
# uid 65532: change runAsUser in deploy/k8s) and the compose healthcheck.
FROM debian:bookworm-slim

# A fixed numeric uid/gid so that Kubernetes' runAsNonRoot can verify it without runAsUser.
# /var/lib/assist-relay, owned by it, is the working directory: relative paths such as a default
# archive directory resolve there, and a volume mounted at /var/lib/assist-relay/archive starts out
# owned by the relay user. With a read-only root file system, mount a volume where it must write.
RUN groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin relay \
    && mkdir -p /var/lib/assist-relay/archive \
    && chown -R relay:relay /var/lib/assist-relay
WORKDIR /var/lib/assist-relay

COPY --from=builder /out/relay /out/loadtest /usr/local/bin/

USER 10001:10001

# In a container the listeners must not be on loopback (the binary's defaults). The admin listener
# has no authentication except the /v1 API's key: publish it only on a private network.
ENV RELAY_LISTEN=0.0.0.0:8080 \
    RELAY_ADMIN_LISTEN=0.0.0.0:9090 \
    RELAY_LOG_FORMAT=json

# 8080: WebSocket (/ws). 9090: admin (/livez, /readyz, /metrics, /v1).
EXPOSE 8080 9090

# No HEALTHCHECK: Kubernetes ignores it and uses the readiness (/readyz) and liveness (/livez)
# probes on port 9090 (deploy/k8s/deployment.yaml); docker-compose.yml declares its own.

# SIGTERM starts the drain: /readyz turns 503, clients are closed with 4000 and resume elsewhere,
# and the process exits within --drain-timeout (10 s). The relay handles the signal itself, so it
# can run as PID 1 without an init; give the orchestrator a longer grace period than the drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["relay"]
CMD ["serve"]
