"""The walking skeleton for real: rpi4 image built by buildx, smoke-tested under QEMU."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from edgepack.config import Project, load_target
from edgepack.errors import SmokeTestError
from edgepack.pipeline import smoke
from edgepack.pipeline.context import Build
from edgepack.pipeline.image import publish
from edgepack.pipeline.plan import plan
from edgepack.pipeline.report import build_report, write_report
from edgepack.pipeline.steps import cached_state, execute
from edgepack.runner import Runner
from edgepack_runtime.arrays import decode, encode

REPO = Path(__file__).resolve().parents[2]


def copy_project(dest: Path) -> Project:
    for part in ("targets", "docker", "assets", "models", "speech/weights"):
        shutil.copytree(REPO / part, dest / part)
    (dest / "runtime").mkdir()
    shutil.copy(REPO / "runtime" / "requirements.in", dest / "runtime")
    return Project(dest)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Build, list, list]:
    proj = copy_project(tmp_path_factory.mktemp("proj"))
    target = load_target(proj, "rpi4")
    b = Build(target=target, project=proj, runner=Runner(echo=False), model=target.model)
    first = execute(plan(b), b.cache)
    tar = publish(b, step(first, "image").outputs)
    write_report(b, build_report(b, first, total_seconds=1.0, image_tar=tar))
    second = execute(plan(b), b.cache)
    return b, first, second


@pytest.fixture(scope="module")
def vad(built: tuple[Build, list, list]) -> dict:
    """The Silero VAD job through the model stage (`--model models/silero-vad.yaml`), base and deps reused."""
    b, _, _ = built
    other = Build(
        target=b.target, project=b.project, runner=Runner(echo=False), model="models/silero-vad.yaml"
    )
    return {r.name: r for r in execute(plan(other), other.cache)}


def step(records: list, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in records if r.name == name)


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def test_cold_build_runs_every_step_and_rebuild_reuses_all(built) -> None:
    b, first, second = built
    names = ["base", "deps", "model", "export", "quantize", "validate", "app", "image", "smoke", "latency"]
    assert [r.name for r in first] == names
    assert not any(r.cached for r in first)
    assert all(r.cached for r in second)
    assert all(cached_state(plan(b), b.cache).values())


def test_image_is_arm64_with_labels_and_saved_tar(built) -> None:
    b, first, _ = built
    image = step(first, "image").outputs
    assert image["architecture"] == "arm64"
    inspect = json.loads(docker("image", "inspect", image["tag"]).stdout)[0]
    labels = inspect["Config"]["Labels"]
    model = step(first, "validate").outputs["meta"]
    # The rpi4 model is made by the build (models/cmdasr.yaml): the label is the baked file's digest.
    assert (
        labels["io.edgepack.model.sha256"] == model["sha256"] == step(first, "app").outputs["model"]["sha256"]
    )
    # static: calibrated activation scales, so the model streams exactly as it transcribes whole files
    assert model["quantize"] == "static" and model["spec"] == "cmdasr"
    assert labels["io.edgepack.model.source"] == "models/cmdasr.yaml"
    assert len(labels["io.edgepack.base.lock-sha256"]) == 64
    assert inspect["Config"]["User"] == "1000:1000"
    assert model["kind"] == "asr" and model["sample_rate"] == 16000
    assert {k: model["smoke"][k] for k in ("audio", "text")} == {
        "audio": "smoke.wav",
        "text": "set the temperature to six six",
    }
    assert model["smoke"]["fed"]["source"].startswith("audio: ")  # what the smoke test feeds, said
    tar = b.out_dir / "image.tar"
    assert tar.samefile(image["tar"]) and tar.stat().st_size > 10_000_000
    assert not list(b.out_dir.glob(".*.tmp"))


def test_image_has_no_shell_and_runs_as_non_root(built) -> None:
    _, first, _ = built
    tag = step(first, "image").outputs["tag"]
    shell = docker("run", "--rm", "--network", "none", "--platform", "linux/arm64", "--entrypoint", "/bin/sh",
                   tag, "-c", "true")  # fmt: skip
    assert shell.returncode != 0
    who = docker("run", "--rm", "--network", "none", "--platform", "linux/arm64",
                 "--env", "QEMU_CPU=cortex-a72", "--entrypoint", "/usr/bin/python3", tag, "-c",
                 "import os, platform; print(os.getuid(), platform.machine())")  # fmt: skip
    assert who.stdout.split() == ["1000", "aarch64"], who.stderr


def test_smoke_matched_reference_under_emulated_cortex_a72(built) -> None:
    b, first, _ = built
    result = step(first, "smoke").outputs
    assert result["ok"] and result["qemu_cpu"] == "cortex-a72"
    assert result["emulated"]["runtime"]["machine"] == "aarch64"
    # QEMU_CPU=cortex-a72 exposes only a Pi 4's features: no dot product, no SVE.
    features = result["emulated"]["runtime"]["cpu_features"].split()
    assert "asimd" in features and "asimddp" not in features and "sve" not in features
    log_probs, text = result["checks"]
    # int8 activations are quantized per run on each CPU's own path: a few 1e-3 between x86 and arm64.
    assert log_probs["name"] == "log_probs" and log_probs["ok"] and log_probs["max_abs"] < 2e-2
    assert text == {**text, "name": "text", "ok": True}
    reference = json.loads(Path(step(first, "app").outputs["reference"]).read_text())
    assert reference["text"] == reference["expected_text"] == "set the temperature to six six"
    # partials are the free CTC text as it grows; the answer is the grammar's best sentence
    assert reference["partials"][-1] == reference["free_text"] and len(reference["partials"]) > 2
    report = json.loads((b.out_dir / "report.json").read_text())
    assert report["smoke"]["ok"] and report["image"]["architecture"] == "arm64"


def test_the_quantized_model_is_timed_against_fp32_in_the_image_under_the_boards_cpu(built) -> None:
    b, first, _ = built
    timed = step(first, "latency").outputs
    assert timed["where"] == "QEMU -cpu cortex-a72"
    assert timed["mode"] == step(first, "quantize").outputs["mode"]
    assert timed["fp32_ms"] > 0 and timed["quantized_ms"] > 0 and timed["runs"] == 5
    assert timed["ratio"] == pytest.approx(timed["quantized_ms"] / timed["fp32_ms"], rel=1e-2)
    assert ("warning" in timed) == (timed["ratio"] > 1.0)
    report = json.loads((b.out_dir / "report.json").read_text())
    assert report["quantized_latency"] == timed


def test_vad_spec_still_builds_and_finds_the_speech_in_the_smoke_audio(vad) -> None:
    assert (
        vad["base"].cached and vad["deps"].cached and vad["validate"].outputs["meta"]["spec"] == "silero-vad"
    )
    (check,) = vad["smoke"].outputs["checks"]
    assert check["name"] == "speech_prob" and check["ok"] and check["max_abs"] < 1e-4
    assert vad["image"].outputs["labels"]["io.edgepack.model.source"] == "models/silero-vad.yaml"
    reference = json.loads(Path(vad["app"].outputs["reference"]).read_text())
    probs = decode(reference["outputs"]["speech_prob"])
    # 0.5 s of silence, ~1.8 s of speech, 0.5 s of silence; 32 ms per chunk.
    assert probs[:10].max() < 0.2 and probs[30:60].mean() > 0.6 and probs[-8:].max() < 0.3


def test_a_wrong_reference_or_transcript_fails_the_smoke(built) -> None:
    b, first, _ = built
    reference = json.loads(Path(step(first, "app").outputs["reference"]).read_text())
    emulated = smoke.run_in_image(step(first, "image").outputs["tag"], b.target, runner=Runner(echo=False))
    log_probs = decode(reference["outputs"]["log_probs"]).copy()
    log_probs[5, 0] += 1.0
    reference["outputs"]["log_probs"] = encode(log_probs)
    reference["expected_text"] = "set the temperature to six"
    checks = smoke.compare(reference, emulated, atol=b.target.smoke.atol, rtol=b.target.smoke.rtol)
    with pytest.raises(
        SmokeTestError,
        match=r"log_probs \[\d+, 28\] <f4: max abs 1(.|\n)*  text: image said "
        r"'set the temperature to six six', host said '.*', expected 'set the temperature to six'",
    ):
        smoke.require_match(checks, image="x")
    assert np.isclose(checks[0].max_abs, 1.0, atol=0.02)


def tiny_onnx(path: Path) -> None:
    """MatMul + Relu with a dynamic batch axis: a model edgepack knows nothing about."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def test_build_with_a_user_model_goes_through_the_model_stages(built) -> None:
    """`--model tiny.onnx`: quantized (dynamic int8 by default), validated, smoke-tested."""
    b, _, _ = built
    tiny_onnx(b.project.root / "tiny.onnx")
    other = Build(target=b.target, project=b.project, runner=Runner(echo=False), model="tiny.onnx")
    records = {r.name: r for r in execute(plan(other), other.cache)}
    assert {"export", "quantize", "validate"} <= set(records)
    assert records["base"].cached and records["deps"].cached
    assert not records["model"].cached and not records["image"].cached
    meta = records["validate"].outputs["meta"]
    assert meta["kind"] == "generic" and meta["quantize"] == "dynamic"
    assert (
        meta["smoke"]["fed"]["source"].startswith("synthetic")
        and records["app"].outputs["fed"] == meta["smoke"]["fed"]
    )
    (check,) = records["smoke"].outputs["checks"]
    assert check["name"] == "y" and check["shape"] == [2, 4] and check["ok"]
    labels = records["image"].outputs["labels"]
    assert labels["io.edgepack.model.source"] == "tiny.onnx"


def test_bundled_onnx_model_still_builds_by_name(built) -> None:
    """`--model silero-vad`: the wheel's ONNX file as it is, one model step, no export."""
    b, _, _ = built
    other = Build(target=b.target, project=b.project, runner=Runner(echo=False), model="silero-vad")
    records = {r.name: r for r in execute(plan(other), other.cache)}
    assert "export" not in records and records["base"].cached and records["smoke"].outputs["ok"]
    labels = records["image"].outputs["labels"]
    assert (
        labels["io.edgepack.model.sha256"]
        == "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"
    )
    assert labels["io.edgepack.model.package-sha256"] == (
        "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
    )
    assert labels["io.edgepack.model.source"].startswith("silero-vad==6.2.3:")


def test_native_wheels_work_in_the_image(built) -> None:
    """webrtcvad and pyaudio (targets/rpi4.yaml `wheels`), built for the board into the deps layer."""
    from edgepack.wheels.boardtest import run_tests
    from edgepack.wheels.recipes import BUNDLED, load_recipes

    b, first, _ = built
    recipes = load_recipes(BUNDLED, b.target.wheels)
    results = run_tests(step(first, "image").outputs["tag"], b.target, recipes, runner=Runner(echo=False))
    assert [r.output.split()[0] for r in results] == ["webrtcvad", "pyaudio"]
    assert results[0].output == "webrtcvad True"


def in_image(tag: str, *args: str) -> subprocess.CompletedProcess[str]:
    emulate = ["--platform", "linux/arm64", "--env", "QEMU_CPU=cortex-a72"]
    return docker("run", "--rm", "--network", "none", *emulate, tag, *args)


def test_asr_commands_run_in_the_emulated_image(built) -> None:
    """The runtime's speech commands on the board's CPU: streaming text, the file-driven capture path."""
    tag = step(built[1], "image").outputs["tag"]
    wav = "/opt/edgepack/model/smoke.wav"
    stream = in_image(tag, "transcribe", wav, "--stream", "--chunk-ms", "160", "--json")
    out = json.loads(stream.stdout)
    assert out["text"] == "set the temperature to six six" and out["partials"][-1] == out["free_text"]
    assert out["chunk_latency_ms"]["count"] > 5, stream.stderr
    live = in_image(tag, "listen", "--file", wav, "--block", "512", "--json")
    report = json.loads(live.stdout.splitlines()[-1])
    assert report["texts"] == ["set the temperature to six six"], live.stderr
    c = report["counters"]
    assert c["offered"] == c["consumed"] + c["dropped"] and c["chunk_errors"] == 0
    assert "SCHED_FIFO" in report["scheduling"]  # granted or refused: always reported


# An ALSA capture device without a sound card: ALSA's own plugins read a file's samples (S16_LE, 16 kHz,
# mono) as if recorded; `plug` converts to what PortAudio asks for. The null PCM under it is not paced:
# blocks arrive as fast as they are read, so the ring (a slow consumer) drops what it cannot hold.
ALSA_FILE_PCM = """
pcm.edgepack_wav {
    type plug
    slave { pcm "edgepack_wav_raw"; format S16_LE; rate 16000; channels 1 }
    hint.description "a WAV's samples through ALSA's file plugin"
}
pcm.edgepack_wav_raw {
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "/data/commands.raw"
    format "raw"
}
"""


def commands_wav(folder: Path, count: int) -> tuple[list[str], np.ndarray]:
    """``count`` held-out commands (festival: a voice family the model never heard), 1.2 s apart."""
    from edgepack_runtime.audio import read_wav

    rows = [
        json.loads(line) for line in (REPO / "assets/eval/cmdasr/manifest.jsonl").read_text().splitlines()
    ]
    gap = np.zeros(int(0.6 * 16000), dtype=np.float32)
    parts = []
    for row in rows[:count]:
        parts += [gap, read_wav(REPO / "assets/eval/cmdasr" / row["audio"]).samples, gap]
    samples = np.concatenate(parts)
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2")
    pcm.tofile(folder / "commands.raw")
    with wave.open(str(folder / "commands.wav"), "wb") as out:  # the same samples, for `listen --file`
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    (folder / "asound.conf").write_text(ALSA_FILE_PCM)
    for path in (folder, *folder.iterdir()):  # the image runs as uid 1000; pytest's folders are root's, 0700
        path.chmod(0o755 if path.is_dir() else 0o644)
    return [row["text"] for row in rows[:count]], pcm


def test_listen_captures_through_alsa_in_the_emulated_image(built, tmp_path: Path) -> None:
    """`listen --device` through PyAudio, PortAudio and ALSA (its config data is in the capture image),
    under QEMU cortex-a72: the commands of the file, in order, the same as the file-driven path; every
    block counted (offered = consumed + dropped); the unpaced device's surplus dropped and said."""
    tag = step(built[1], "image").outputs["tag"]
    texts, pcm = commands_wav(tmp_path, 4)
    mounts = ["-v", f"{tmp_path}:/data:ro", "-v", f"{tmp_path}/asound.conf:/etc/asound.conf:ro"]
    ring = f"{len(pcm) / 16000 + 1:.1f}"  # holds the file: what follows it (silence) is dropped
    emulate = ["--platform", "linux/arm64", "--env", "QEMU_CPU=cortex-a72"]
    run = docker("run", "--rm", "--network", "none", *emulate, *mounts, tag, "listen", "--device",
                 "edgepack_wav", "--ring-seconds", ring, "--seconds", "3", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["device"] == {"name": "edgepack_wav", "backend": "PortAudio ALSA (PyAudio)"}
    assert report["rate"] == 16000 and report["ring_seconds"] == float(ring)
    c = report["counters"]
    assert c["offered"] == c["consumed"] + c["dropped"] and c["chunk_errors"] == 0
    assert c["consumed"] >= len(pcm) and c["dropouts"] > 0  # the file got through; the surplus was dropped
    assert report["delivery_x_realtime"] > 1.5 and "faster than real time" in run.stderr
    assert "ALSA lib" not in run.stderr  # PortAudio's probe of every device is kept out of the log
    accepted = [c["command"] for c in report["commands"] if c["accepted"]]
    assert report["texts"] == accepted and len(accepted) >= 3, report["commands"]
    assert all(t in texts for t in accepted) and accepted == sorted(accepted, key=texts.index)
    # the file-driven path (real-time pace, no ALSA) on the same samples hears the same commands
    by_file = docker("run", "--rm", "--network", "none", *emulate, *mounts, tag, "listen", "--file",
                     "/data/commands.wav", "--json")  # fmt: skip
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(by_file.stdout.splitlines()[-1])["texts"] == report["texts"]


def test_a_small_ring_under_an_unpaced_alsa_device_drops_and_counts(built, tmp_path: Path) -> None:
    """The slow consumer: a 0.2 s ring cannot hold what the device delivers; every lost block is counted."""
    tag = step(built[1], "image").outputs["tag"]
    commands_wav(tmp_path, 2)
    mounts = ["-v", f"{tmp_path}:/data:ro", "-v", f"{tmp_path}/asound.conf:/etc/asound.conf:ro"]
    emulate = ["--platform", "linux/arm64", "--env", "QEMU_CPU=cortex-a72"]
    run = docker("run", "--rm", "--network", "none", *emulate, *mounts, tag, "listen", "--device",
                 "edgepack_wav", "--ring-seconds", "0.2", "--seconds", "2", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    c = json.loads(run.stdout.splitlines()[-1])["counters"]
    assert c["offered"] == c["consumed"] + c["dropped"] and c["dropouts"] > 0 and c["dropped"] > c["consumed"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["transcribe", "/opt/edgepack/nope.wav"], "No such file or directory"),
        (["listen", "--device", "nope"], "capture device 'nope' does not exist: this system has no sound"),
        (["transcribe", "/opt/edgepack/model/smoke.wav", "--model", "/opt/edgepack/model/smoke.wav"],
         "onnxruntime cannot load it"),
    ],
)  # fmt: skip
def test_asr_bad_input_in_the_image_is_one_line(built, args: list[str], needle: str) -> None:
    result = in_image(step(built[1], "image").outputs["tag"], *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert needle in result.stderr.strip().splitlines()[-1], result.stderr


def test_runtimes_are_compared_on_the_boards_cpu_and_the_choice_is_said(built) -> None:
    """model.runtimes on the bundled recogniser: litert-torch in its hash-locked venv, both runtimes run
    in the rpi4 image under QEMU cortex-a72 (LiteRT mounted beside it), ExecuTorch refused with why."""
    from edgepack.runtimes import compare

    b, _, _ = built
    doc = compare.run(b, ["onnxruntime", "litert", "executorch"])
    rows = {r["runtime"]: r for r in doc["rows"]}
    ort, lite, et = rows["onnxruntime"], rows["litert"], rows["executorch"]
    assert lite["converted"]["ok"] and lite["converted"]["fp32"].endswith("model.tflite")
    assert lite["parity"]["fp32"]["ok"] and lite["parity"]["fp32"]["max_abs"] < 1e-3  # same numbers as torch
    for row in (ort, lite):
        assert row["passes"] and row["chosen"] in ("int8", "fp32")
        assert row["emulated_ms"] > 0 and row["host_ms"] > 0 and row["peak_rss_mb"] > 0
        assert row["model_bytes"] > 0 and row["runtime_bytes"] > 1e6
    assert lite["available"]["package"] == "ai-edge-litert==2.3.0"
    assert not et["passes"] and "libtorch" in et["why_not"] and et["converted"] is None
    # a speech model streams through onnxruntime sessions: LiteRT is measured, never chosen
    assert lite["not_buildable"].startswith("measured only: edgepack's asr runtime streams")
    assert doc["choice"]["runtime"] == "onnxruntime" and doc["choice"]["why"]
    assert doc["json"] == str(b.out_dir / "runtimes" / "cmdasr.json")
    assert json.loads(Path(doc["json"]).read_text())["choice"] == doc["choice"]
    assert Path(doc["png"]).read_bytes()[:4] == b"\x89PNG"
