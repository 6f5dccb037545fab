# The board's runtime image. Built by `invoke build` with
#   docker buildx build --platform <target platform> --network none ...
# from a context edgepack assembles (build/<target>/context):
#   rootfs.tar     Debian packages of the target architecture, unpacked on the
#                  host: a minimal Python and the C/C++ runtime; no shell, apt,
#                  perl or dpkg (targets/locks/debian-*.json); for a target
#                  with deps: debian, numpy and onnxruntime too
#   deps.tar       the locked binary wheels for the board (numpy, onnxruntime)
#                  in /usr/local/lib/python3.X/dist-packages; only that empty
#                  folder for a target with deps: debian
#   runtime.tar    the on-device runtime package (/usr/local/...)
#   model.tar      the model and the smoke input (/opt/edgepack)
# No registry is reachable and nothing is pulled: the base is `scratch`. The
# engine's built-in Dockerfile frontend is used (no `# syntax=` line, which
# would pull a frontend image). Layers go from least to most often changed.
#
# Every layer is ADD of a tar, never COPY: the engine's BuildKit (0.8) gives
# the folders a COPY makes or fills the time of the build, while the tars
# hold SOURCE_DATE_EPOCH times, so the same inputs give the same layers (not
# base-compiled's RUN: the files it writes carry the time of the build).
#
# BASE picks who made the bytecode: "base" when the host's Python is the
# target's (edgepack compiled it on the host), "base-compiled" otherwise: the
# image's own Python compiles it, under QEMU, once per build (a read-only
# container would otherwise compile numpy's modules at every start).
ARG BASE=base

FROM scratch AS base
ADD rootfs.tar /
ADD deps.tar /
ADD runtime.tar /

FROM base AS base-compiled
# Build args are the RUN's environment, not the image's: a fixed hash seed
# keeps frozenset constants in the same order (same bytes at each build).
ARG PYTHONHASHSEED=0
# Exec form: the image has no shell.
RUN ["/usr/bin/python3", "-I", "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash", "/usr/lib", "/usr/local/lib"]

FROM ${BASE}
ARG THREADS=4
ADD model.tar /
ENV EDGEPACK_THREADS=${THREADS} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /home/edge
ENTRYPOINT ["/usr/bin/python3", "-I", "-m", "edgepack_runtime"]
CMD ["smoke"]
