# The backend image from binaries built on the host (the host is bookworm
# too: same glibc), for scripts/e2e-compose: the same runtime stage as
# examples/wait-for-db/Dockerfile's `backend` target, minus the Rust build
# stage (no rust image without a registry). The compose override points the
# backend's build here; the build context is a directory holding the two
# binaries.
FROM debian:bookworm-slim AS backend
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY wait-for-db /usr/local/bin/wait-for-db
COPY app /usr/local/bin/app
USER app
ENTRYPOINT ["/usr/local/bin/wait-for-db", "--timeout", "60", "--"]
CMD ["/usr/local/bin/app"]
