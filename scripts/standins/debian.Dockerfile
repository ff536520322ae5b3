# Stand-in for the public debian:bookworm-slim image (no registry here): the
# debootstrap root filesystem itself (bookworm, minbase).
ARG BASE
FROM ${BASE}
CMD ["bash"]
