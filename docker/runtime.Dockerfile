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

FROM base AS compiling
# Build args are the RUN's environment, not the image's: a fixed hash seed
# keeps frozenset constants in the same order (same bytes at each build).
ARG PYTHONHASHSEED=0
# Exec form: the image has no shell. Sourceless bytecode: each module's .pyc
# beside where its .py was (compileall's legacy layout, which CPython imports
# without the source), and the .py removed: a run opens the .pyc and never
# the source, which was a seventh of the 32-bit image (bench/opened.py).
# A file that does not compile keeps its source. Tracebacks show no source
# lines; file names and line numbers stay.
RUN ["/usr/bin/python3", "-I", "-c", "import compileall, os, py_compile\nfor top in ('/usr/lib', '/usr/local/lib'):\n    compileall.compile_dir(top, quiet=2, workers=0, legacy=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n    for folder, _, names in os.walk(top):\n        for name in names:\n            if name.endswith('.py') and os.path.isfile(os.path.join(folder, name + 'c')):\n                os.remove(os.path.join(folder, name))\n"]

# One layer of what the compiling stage left: the sources removed there are
# not kept underneath, as they would be below a RUN that deletes them.
FROM scratch AS base-compiled
COPY --from=compiling / /

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
