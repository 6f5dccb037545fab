"""Smoke inference: the image's outputs under QEMU against the host's reference.

The host runs the very same runtime code (edgepack_runtime.smoke) with its own
onnxruntime; the emulated board must agree within the target's tolerances.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgepack.config import Target
from edgepack.errors import CommandError, InputError, SmokeTestError, tool_reason
from edgepack.pipeline.context import Build, stamp_of
from edgepack.pipeline.docker import run_argv
from edgepack.pipeline.steps import Outputs, Step
from edgepack.runner import Runner
from edgepack_runtime.arrays import decode

SPEC_IN_IMAGE = "/opt/edgepack/smoke/spec.json"
ASR_CHUNK_MS = 320  # the smoke test streams an ASR model's utterance in chunks of this much audio
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(double)": np.float64,
}


def prepare(meta: dict[str, Any], target: Target, *, audio: Path, smoke_dir: Path) -> Path:
    """Write the smoke spec and its input next to it; return the spec's path."""
    smoke_dir.mkdir(parents=True, exist_ok=True)
    model = f"../model/{meta.get('file', 'model.onnx')}"  # model.tflite in a LiteRT image
    spec: dict[str, Any] = {"kind": meta["kind"], "model": model, "runs": target.smoke.runs}
    if meta.get("outputs"):  # a LiteRT file's outputs are unnamed (output_0, ...): the spec's names
        spec["outputs"] = meta["outputs"]
    spec["threads"] = target.threads
    # The runtime takes the first of these its onnxruntime offers (the CPU provider last) and reports it.
    spec["providers"] = [*(target.gpu.providers if target.gpu else ()), "CPUExecutionProvider"]
    if meta["kind"] == "vad":
        shutil.copyfile(audio, smoke_dir / "input.wav")
        spec.update(input="input.wav", sample_rate=meta["sample_rate"])
    elif meta["kind"] == "asr":  # a held-out utterance that comes with the model, and its transcript
        spec.update(
            input=f"../model/{meta['smoke']['audio']}", text=meta["smoke"]["text"], chunk_ms=ASR_CHUNK_MS
        )
    elif meta.get("smoke", {}).get("inputs"):  # the model stage's: the first sample set, or synthetic
        spec["input"] = f"../model/{meta['smoke']['inputs']}"
    else:
        feeds = generic_inputs(meta["signature"]["inputs"])
        np.savez(smoke_dir / "inputs.npz", **feeds)  # type: ignore[arg-type]  # numpy's stub: **kwds as a bool
        spec["input"] = "inputs.npz"
    (smoke_dir / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return smoke_dir / "spec.json"


def generic_inputs(inputs: list[dict[str, Any]], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for a model we know nothing about: symbolic dims become 1."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        dtype = _DTYPES.get(spec["type"])
        if dtype is None:
            raise SmokeTestError(
                f"smoke input '{spec['name']}' has type {spec['type']}, which edgepack cannot generate."
            )
        if np.issubdtype(dtype, np.floating):
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec["name"]] = np.zeros(shape, dtype=dtype)
    return feeds


def fed(meta: dict[str, Any], audio: Path, *, shown_as: str) -> dict[str, Any]:
    """What the smoke test feeds the model: its source (samples / synthetic / audio) and each input."""
    if meta["kind"] == "vad":
        return {"source": f"audio: {shown_as} (the target's smoke.audio)"}
    found = meta.get("smoke", {}).get("fed")
    if found:
        return dict(found)
    inputs = generic_inputs(meta["signature"]["inputs"])
    return {"source": "synthetic: symbolic dims 1", "inputs": describe(inputs)}


def describe(feeds: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    from edgepack.modelpipe.inputs import describe as describe_feeds

    return describe_feeds(feeds)


def planned_input(b: Build) -> dict[str, Any]:
    """``--dry``: what the smoke test will feed, known before anything runs (samples are read, not run)."""
    from edgepack.modelpipe.spec import is_spec_path
    from edgepack.pipeline.model import bundled_models

    audio = b.target.smoke.audio
    if not is_spec_path(b.model) and b.model in bundled_models():
        return {"source": f"audio: {audio} (the target's smoke.audio)"}
    from edgepack.modelpipe import inputs, samples
    from edgepack.modelpipe.steps import load, spec_root

    spec = load(b)
    if spec.task == "vad":
        return {"source": f"audio: {audio} (the target's smoke.audio)"}
    if spec.task == "asr":
        return {"source": f"audio: {spec.evaluate.manifest} (first utterance)"}
    if spec.samples:
        found = samples.load(spec.samples, spec, root=spec_root(b))
        return {
            "source": f"samples: {found[0].label} (first of {len(found)})",
            "inputs": inputs.describe(found[0].feeds),
        }
    return {
        "source": f"synthetic: seed {spec.seed}, the spec's dims and values (give samples for real inputs)",
        "inputs": inputs.describe(inputs.example(spec).feeds),
    }


def host_reference(spec_path: Path) -> dict[str, Any]:
    """The runtime's own smoke run on the host; onnxruntime refusing the input: one line, no traceback."""
    from edgepack_runtime.smoke import run_smoke

    try:
        return run_smoke(spec_path)
    except (RuntimeError, ValueError) as exc:  # onnxruntime's Fail / InvalidArgument are RuntimeErrors
        raise InputError(
            "app step failed because onnxruntime refused the smoke input on the host: "
            f"{tool_reason(str(exc)) or type(exc).__name__}",
            hint="Give samples the model accepts (--samples, or the spec's samples:); "
            "build/<target>/model/report.json shows what was fed.",
        ) from None


def require_informative(reference: dict[str, Any], fed: dict[str, Any]) -> None:
    """A constant or all-zero host reference proves nothing: any int8 kernel would "match" it.

    A 1x1-pixel image gave a text detector's 1x1x32x32 block of zeros, and the smoke test
    "passed ... max abs diff 0.00e+00". Refused, naming the output, with what to do.
    """
    for name, obj in reference.get("outputs", {}).items():
        value = decode(obj)
        if value.size > 1 and np.issubdtype(value.dtype, np.number) and float(np.ptp(value)) == 0.0:
            what = "all zero" if not value.any() else f"constant ({value.flat[0]!r})"
            synthetic = fed.get("source", "").startswith("synthetic")
            raise InputError(
                f"smoke test refused: the host reference of output '{name}' {list(value.shape)} is {what} on "
                f"the smoke input ({fed.get('source', 'unknown')}), so it cannot tell a right board from a "
                "wrong one.",
                hint="Give samples that exercise the model (--samples FILE.npz|package.module:fn, or the "
                "spec's samples:)."
                if synthetic
                else "Put first a sample that makes the model respond (the first sample is the smoke input).",
            )


class SmokeRunner(Protocol):
    """Where a smoke test runs: the image under QEMU here, a board over SSH, a card booted under QEMU.

    Each gives the runtime's smoke result (its JSON); ``verify`` compares it with the host reference
    the same way for all three.
    """

    @property
    def where(self) -> str:
        """What ran it, for messages: an image tag, a board, a card's console log."""
        ...

    def run_smoke(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ContainerSmoke:
    """The image in a locked-down container here, under QEMU with the board's CPU (or natively)."""

    image: str
    target: Target
    runner: Runner

    @property
    def where(self) -> str:
        return self.image

    def run_smoke(self) -> dict[str, Any]:
        return run_in_image(self.image, self.target, runner=self.runner)


def verify(
    reference: dict[str, Any], runner: SmokeRunner, *, atol: float, rtol: float
) -> tuple[dict[str, Any], list[OutputCheck]]:
    """Run the smoke test where ``runner`` says; compare with the host reference (SmokeTestError if off)."""
    result = runner.run_smoke()
    checks = compare(reference, result, atol=atol, rtol=rtol)
    require_match(checks, image=runner.where)
    return result, checks


def run_in_image(image: str, target: Target, *, runner: Runner) -> dict[str, Any]:
    argv = run_argv(
        image=image,
        platform=target.platform,
        qemu_cpu=target.qemu_cpu if target.emulated else None,
        command=["smoke", "--spec", SPEC_IN_IMAGE],
        memory_mb=target.memory_mb,
    )
    try:
        result = runner.run(
            argv, what=f"smoke inference of {image}, {target.runs_on}", timeout=target.smoke.timeout_s
        )
    except CommandError as exc:
        if "Illegal instruction" in exc.output or "signal 4" in exc.output:
            exc.hint = (
                f"The image uses an instruction the {target.cpu_model} lacks: the board would crash too."
            )
        elif exc.returncode == 137 and target.memory_mb is not None:  # SIGKILL: the cgroup's OOM killer
            exc.hint = f"Killed at the target's memory_mb ({target.memory_mb} MB): the board lacks the RAM."
        raise
    if runner.dry_run:
        return {}
    result_json: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return result_json


@dataclass(frozen=True)
class OutputCheck:
    name: str
    shape: list[int]
    dtype: str
    max_abs: float
    max_rel: float
    ok: bool
    why: str


def compare(
    reference: dict[str, Any], emulated: dict[str, Any], *, atol: float, rtol: float
) -> list[OutputCheck]:
    checks = []
    for name, ref_obj in reference["outputs"].items():
        ref = decode(ref_obj)
        got_obj = emulated["outputs"].get(name)
        if got_obj is None:
            checks.append(OutputCheck(name, list(ref.shape), ref.dtype.str, np.inf, np.inf, False, "missing"))
            continue
        got = decode(got_obj)
        if got.shape != ref.shape or got.dtype != ref.dtype:
            why = f"shape/dtype {got.shape} {got.dtype} != reference {ref.shape} {ref.dtype}"
            checks.append(OutputCheck(name, list(got.shape), got.dtype.str, np.inf, np.inf, False, why))
            continue
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        max_abs = float(diff.max(initial=0.0))
        max_rel = float((diff / np.maximum(np.abs(ref.astype(np.float64)), 1e-12)).max(initial=0.0))
        ok = bool(np.allclose(got, ref, atol=atol, rtol=rtol, equal_nan=False))
        checks.append(
            OutputCheck(
                name,
                list(ref.shape),
                ref.dtype.str,
                max_abs,
                max_rel,
                ok,
                "" if ok else f"outside atol={atol:g} rtol={rtol:g}",
            )
        )
    if "expected_text" in reference:
        checks.append(text_check(reference, emulated))
    return checks


def text_check(reference: dict[str, Any], emulated: dict[str, Any]) -> OutputCheck:
    """An ASR smoke test also checks the words: the image's and the host's text are the expected one."""
    expected, host, got = reference["expected_text"], reference.get("text"), emulated.get("text")
    ok = got == host == expected
    why = "" if ok else f"image said {got!r}, host said {host!r}, expected {expected!r}"
    return OutputCheck("text", [], "str", 0.0, 0.0, ok, why)


def require_match(checks: list[OutputCheck], *, image: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        lines = [
            f"  {c.name}: {c.why}"
            if c.dtype == "str"
            else f"  {c.name} {c.shape} {c.dtype}: max abs {c.max_abs:.3g}, max rel {c.max_rel:.3g} ({c.why})"
            for c in bad
        ]
        raise SmokeTestError(
            f"smoke test of {image} failed because its outputs differ from the host reference:\n"
            + "\n".join(lines),
            hint="Check the onnxruntime build and the CPU model, or widen smoke.atol/rtol in the target.",
        )


def checks_as_dicts(checks: list[OutputCheck]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def smoke_step(b: Build, *, image: Step, app: Step) -> Step:
    t = b.target
    inputs = {
        "image": image.key,
        "reference": app.key,
        "runs_on": t.runs_on,
        "memory_mb": str(t.memory_mb),
        "tolerance": f"atol={t.smoke.atol} rtol={t.smoke.rtol}",
    }

    def action() -> Outputs:
        tag = f"{t.image}:{image.key[:12]}"
        reference = json.loads(Path(stamp_of(b, app)["reference"]).read_text())
        emulated, checks = verify(
            reference, ContainerSmoke(tag, t, b.runner), atol=t.smoke.atol, rtol=t.smoke.rtol
        )
        return {
            "ok": True,
            "checks": checks_as_dicts(checks),
            "emulated": result_summary(emulated),
            "host": result_summary(reference),
            "qemu_cpu": t.qemu_cpu,
            "runs_on": t.runs_on,
            "providers": emulated.get("providers", []),
            "memory_mb": t.memory_mb,
        }

    return Step(
        "smoke", f"smoke inference, {t.runs_on}", inputs, action, needs=(image.name, app.name), phase="smoke"
    )


def result_summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("runtime", "providers", "load_ms", "latency_ms", "audio_seconds", "rtf", "peak_rss_mb")
    return {k: result[k] for k in keys if k in result}
