"""The host machine: its toolchain pins, binfmt_misc, the doctor's checks and fixes, apt locks, buildx nodes.

``pins`` (resources/toolchain.yaml), ``binfmt`` (QEMU registrations), ``checks``
(one function per toolchain check, each with its fix), ``doctor`` (the run over
them and the preflight a build asks for), ``aptlock`` (waiting for apt/dpkg
locks; stdlib only: the set-up script runs it before the venv exists),
``builders`` (buildx nodes), ``gpu`` (vendor base images).
"""
