# The board's runtime image. Built by `invoke build` with
#   docker buildx build --platform <target platform> --network none ...
# from a context edgepack assembles (build/<target>/context):
#   rootfs.tar     Debian packages of the target architecture, unpacked on the
#                  host: a minimal Python and the C/C++ runtime; no shell, apt,
#                  perl or dpkg (targets/locks/debian-*.json)
#   site-packages/ the locked binary wheels for the board (numpy, onnxruntime)
#   app/           the on-device runtime package, the model and the smoke input
# No registry is reachable and nothing is pulled: the base is `scratch`. The
# engine's built-in Dockerfile frontend is used (no `# syntax=` line, which
# would pull a frontend image). Layers go from least to most often changed.
FROM scratch
ARG PYTHON=3.11
ARG THREADS=4
ADD rootfs.tar /
COPY site-packages/ /usr/local/lib/python${PYTHON}/dist-packages/
COPY app/ /
ENV EDGEPACK_THREADS=${THREADS} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /home/edge
ENTRYPOINT ["/usr/bin/python3", "-I", "-m", "edgepack_runtime"]
CMD ["smoke"]
