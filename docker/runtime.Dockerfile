# The board's runtime image. Built by `invoke build` with
#   docker buildx build --platform <target platform> --network none ...
# from a context edgepack assembles (build/<target>/context):
#   rootfs.tar     Debian packages of the target architecture, unpacked on the
#                  host: a minimal Python and the C/C++ runtime; no shell, apt,
#                  perl or dpkg (targets/locks/debian-*.json); for a target
#                  with deps: debian, numpy and onnxruntime too
#   site-packages/ the locked binary wheels for the board (numpy, onnxruntime);
#                  empty for a target with deps: debian
#   app/usr/       the on-device runtime package
#   app/opt/       the model and the smoke input
# No registry is reachable and nothing is pulled: the base is `scratch`. The
# engine's built-in Dockerfile frontend is used (no `# syntax=` line, which
# would pull a frontend image). Layers go from least to most often changed.
#
# BASE picks who made the bytecode: "base" when the host's Python is the
# target's (edgepack compiled it on the host), "base-compiled" otherwise: the
# image's own Python compiles it, under QEMU, once per build (a read-only
# container would otherwise compile numpy's modules at every start).
ARG BASE=base

FROM scratch AS base
ARG PYTHON=3.11
ADD rootfs.tar /
COPY site-packages/ /usr/local/lib/python${PYTHON}/dist-packages/
COPY app/usr/ /usr/

FROM base AS base-compiled
# Build args are the RUN's environment, not the image's: a fixed hash seed
# keeps frozenset constants in the same order (same bytes at each build).
ARG PYTHONHASHSEED=0
# Exec form: the image has no shell.
RUN ["/usr/bin/python3", "-I", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash", "/usr/lib", "/usr/local/lib"]

FROM ${BASE}
ARG THREADS=4
COPY app/opt/ /opt/
ENV EDGEPACK_THREADS=${THREADS} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /home/edge
ENTRYPOINT ["/usr/bin/python3", "-I", "-m", "edgepack_runtime"]
CMD ["smoke"]
