"""edgepack's tasks as one invoke collection: the ``edgepack`` command, and reusable in your tasks.py.

    edgepack init [--model M.onnx]      a new project: edgepack.toml, a target extending a board, a model spec
    edgepack build --target rpi4        model + app -> smoke-tested board image
    edgepack build --target all         every target, in parallel (docker buildx bake)
    edgepack doctor [--fix]             check / install the host toolchain
    edgepack targets [--json]           list targets
    edgepack lock --target T | --all    refresh every lock a target uses (Debian, PyPI, sysroot, card)
    edgepack test                       unit and integration tests
    edgepack device.deploy|smoke|bench|metrics|regress   real boards over SSH (inventory: boards.yaml)
    edgepack model.export|quantize|validate|report|schema   the model stages of a spec, alone
    edgepack model.runtimes --target T [--spec S]          ONNX Runtime vs LiteRT vs ExecuTorch, measured
    edgepack wheels.build|preflight     native wheels for the board
    edgepack asr.demo-rate|demo-latency|demo-blocks   the speech demonstrations (docs/speech.md)
    edgepack speech.finetune --data DIR   fine-tune the recogniser on your recordings (docs/speech.md)
    edgepack ci.matrix|workflow|push    GitHub Actions, generated from targets/ (docs/ci.md)
    edgepack builders.add|ls            native buildx nodes (arm64 over SSH) instead of QEMU
    edgepack flash.image|boot|write     flashable SD-card image, booted under QEMU; written to a card safely

In a project's own tasks.py: ``from edgepack.tasks import ns``.
"""

from __future__ import annotations

from types import ModuleType

from invoke.collection import Collection
from invoke.tasks import Task

from edgepack.commands import asr, build, builders, ci, device, doctor, flash, model, project, speech, wheels
from edgepack.commands.boundary import Body


def _family(
    name: str, module: ModuleType, *tasks: Task[Body], default: Task[Body] | None = None
) -> Collection:
    family = Collection(name)
    for task in tasks:
        family.add_task(task, default=task is default)
    return family


ns = Collection(
    build.build,
    build.lock,
    build.targets,
    project.init,
    doctor.doctor_,
    doctor.test,
    _family(
        "model",
        model,
        model.export,
        model.quantize,
        model.validate,
        model.report,
        model.runtimes,
        model.schema,
    ),
    _family("device", device, device.deploy_, device.smoke_, device.bench_, device.metrics_, device.regress),
    _family("wheels", wheels, wheels.build_, wheels.preflight, default=wheels.build_),
    _family("asr", asr, asr.demo_rate, asr.demo_latency, asr.demo_blocks),
    _family("speech", speech, speech.finetune),
    _family("ci", ci, ci.matrix, ci.workflow, ci.push),
    _family("builders", builders, builders.add, builders.ls),
    _family("flash", flash, flash.image, flash.boot, flash.write),
)
