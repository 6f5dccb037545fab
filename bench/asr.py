"""Benchmark of the bundled command recogniser (models/cmdasr.yaml): one table per condition.

    .venv/bin/python bench/asr.py [--target rpi4] [--qemu-files 3] [--limit N]

Everything runs the runtime's own code (edgepack_runtime: streaming features,
ONNX in 320 ms chunks, grammar decoding with the calibrated reject) on the
model stage's fp32 export and int8 model (the ones the build bakes in):

* ``heldout_family``: festival, a synthesizer family never in training
  (speech/.cache/test-festival.npz, speech.synth), clean, at 20 and 10 dB SNR
  (white, pink or babble per utterance), and as 8 kHz input (resampled by the
  runtime); espeak-ng held-out voices and flite voices for comparison.
  ``wer``: the grammar decoder's best sentence; ``command_error``: the
  command is not both accepted and exactly right; ``free_text_wer``: greedy CTC.
* ``int8_vs_fp32`` and ``stream_vs_whole``: the same texts?
* ``false_accepts``: GPL-3 read by festival (clean; babble 15 dB and pink
  10 dB), cut by the endpointer, per 10 minutes; the threshold was chosen on
  another text read by training families (speech.calibrate).
* ``endpointing``: four held-out commands with 1.2 s of silence between
  them, at 30/20/10 dB SNR: the share of commands that come out as exactly
  one segment of their own covering them.
* ``leave_one_family_out``: models trained without a family, scored on every family
  (``--lofo DIR``; the previous, espeak-only release stands in for "without flite").
* ``qemu_int8``: RTF of ``transcribe --json`` in the target's image under
  QEMU (cortex-a72), with this runtime mounted over the image's.
Results: bench/results/asr.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.dont_write_bytecode = True  # the runtime package's folder is hashed by the build
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speech import augment, longform, synth  # noqa: E402

from edgepack import asrdemo  # noqa: E402
from edgepack.config import Project, load_target  # noqa: E402
from edgepack_runtime.asr import Recognizer, transcribe_stream  # noqa: E402
from edgepack_runtime.asrcli import corpus_wer  # noqa: E402
from edgepack_runtime.endpoint import segments  # noqa: E402
from edgepack_runtime.resample import resample  # noqa: E402

CHUNK_MS = 320
CACHE = ROOT / "speech" / ".cache"
Item = tuple[np.ndarray, str, str]  # int16 samples at 16 kHz, text, voice


def test_set(family: str, limit: int) -> list[Item]:
    with np.load(CACHE / f"test-{family}.npz") as d:
        audio = np.split(d["audio"], np.cumsum(d["audio_lengths"])[:-1])
        items = list(zip(audio, map(str, d["texts"]), map(str, d["voices"]), strict=True))
    return items[:limit] if limit else items


def with_noise(items: list[Item], snr_db: float, seed: int) -> list[Item]:
    """Each utterance with white, pink or babble noise (in turn) at ``snr_db`` against its speech."""
    rng = np.random.default_rng(seed)
    babble = synth.babble_bank(synth.DATA_SEED, index=1)
    out = []
    for i, (x, text, voice) in enumerate(items):
        s = x.astype(np.float64) / 32768.0
        speech_rms = augment.rms(s[np.abs(s) > 0.01 * np.abs(s).max()])
        n = augment.noise(("white", "pink", "babble")[i % 3], len(s), rng, babble)
        y = s + n * (speech_rms / 10 ** (snr_db / 20) / augment.rms(n))
        y *= min(1.0, 0.99 / np.abs(y).max())
        out.append((np.round(y * 32767).astype(np.int16), text, voice))
    return out


def run(rec: Recognizer, x: np.ndarray, rate: int = 16000) -> tuple[str, Any, tuple[str, str]]:
    """(free text, command, (whole-file free text, whole-file command)) of one utterance,
    streamed as the board does."""
    samples = resample(x.astype(np.float32) / 32768.0, src_rate=rate, dst_rate=rec.rate)
    result = transcribe_stream(rec, samples, chunk_ms=CHUNK_MS)
    whole = rec.transcribe(samples)
    return result.text, rec.command(result.log_probs), (whole.text, rec.command(whole.log_probs).text)


def score(rec: Recognizer, items: list[Item], *, rate: int = 16000) -> dict[str, Any]:
    if rate != 16000:
        items = [
            (np.round(resample(x.astype(np.float32), src_rate=16000, dst_rate=rate)).astype(np.int16), t, v)
            for x, t, v in items
        ]
    refs = [t for _, t, _ in items]
    outs = [run(rec, x, rate) for x, _, _ in items]
    best = [c.text for _, c, _ in outs]
    ok = [c.accepted and c.text == r for (_, c, _), r in zip(outs, refs, strict=True)]
    per_voice = {}
    for voice in sorted({v for *_, v in items}):
        idx = [i for i, (*_, v) in enumerate(items) if v == voice]
        per_voice[voice] = round(corpus_wer([refs[i] for i in idx], [best[i] for i in idx]), 4)
    return {
        "utterances": len(items),
        "wer": round(corpus_wer(refs, best), 4),
        "command_error": round(1 - sum(ok) / len(ok), 4),
        "accepted": round(sum(c.accepted for _, c, _ in outs) / len(outs), 4),
        "accepted_but_wrong": sum(
            c.accepted and c.text != r for (_, c, _), r in zip(outs, refs, strict=True)
        ),
        "free_text_wer": round(corpus_wer(refs, [f for f, _, _ in outs]), 4),
        "stream_equals_whole_free_text": round(sum(f == w[0] for f, _, w in outs) / len(outs), 4),
        "stream_equals_whole_command": round(sum(c.text == w[1] for _, c, w in outs) / len(outs), 4),
        "per_voice_wer": per_voice,
        "examples": [
            {"ref": r, "command": c.text, "accepted": c.accepted, "free_text": f}
            for (f, c, _), r in list(zip(outs, refs, strict=True))[:3]
        ],
    }


def false_accepts(rec: Recognizer, *, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"text": f"/usr/share/common-licenses/{longform.EVAL_TEXT}", "family": "festival"}
    for i, (noise, snr) in enumerate((("none", 30.0), ("babble", 15.0), ("pink", 10.0))):
        x = longform.cached(
            CACHE,
            longform.EVAL_TEXT,
            ("festival",),
            seconds=seconds,
            seed=synth.DATA_SEED,
            index=20 + i,
            noise=noise,
            snr_db=snr,
        )  # type: ignore[arg-type]
        accepted = []
        segs = segments(x)
        for seg in segs:
            samples = x[seg.start : seg.end].astype(np.float32) / 32768.0
            if len(samples) < 800:
                continue
            command = rec.command(transcribe_stream(rec, samples, chunk_ms=CHUNK_MS).log_probs)
            if command is not None and command.accepted:
                accepted.append(
                    {
                        "at_s": round(seg.start / 16000, 1),
                        "command": command.text,
                        "confidence": round(command.confidence, 3),
                    }
                )
        minutes = len(x) / 16000 / 60
        out[f"{noise}" if noise == "none" else f"{noise}_{snr:g}db"] = {
            "minutes": round(minutes, 2),
            "segments": len(segs),
            "false_accepts": len(accepted),
            "per_10_min": round(len(accepted) / minutes * 10, 3),
            "accepted": accepted[:10],
        }
    return out


def endpointing(items: list[Item], *, trials: int, seed: int) -> dict[str, Any]:
    """Per SNR and noise kind: the share of commands that come out as one segment of their own."""
    rng = np.random.default_rng(seed)
    babble = synth.babble_bank(synth.DATA_SEED, index=1)
    out: dict[str, Any] = {}
    for snr in (30, 20, 10):
        row: dict[str, Any] = {}
        for kind in ("white", "pink", "babble", "hum"):
            separated = total = 0
            for _ in range(trials):
                x, bounds = four_commands(items, rng)
                n = augment.noise(kind, len(x), rng, babble)  # type: ignore[arg-type]
                x = x + n * (0.05 / 10 ** (snr / 20) / augment.rms(n))
                segs = segments(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
                for s, e in bounds:
                    mine = [g for g in segs if g.start < e and g.end > s]
                    alone = (
                        len(mine) == 1
                        and sum(mine[0].start < e2 and mine[0].end > s2 for s2, e2 in bounds) == 1
                    )
                    separated += alone and mine[0].start <= s + 800 and mine[0].end >= e - 800
                    total += 1
            row[kind] = round(separated / total, 4)
        row["all"] = round(float(np.mean(list(row.values()))), 4)
        row["commands"] = 4 * 4 * trials
        out[f"{snr}db"] = row
    return out


def four_commands(items: list[Item], rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Four commands at -26 dBFS with 1.2 s of silence between; where their speech is."""
    parts, bounds, pos = [np.zeros(8000)], [], 8000
    for i in rng.choice(len(items), 4, replace=False):
        a = items[i][0].astype(np.float64) / 32768.0
        loud = np.flatnonzero(np.abs(a) > 0.01 * np.abs(a).max())
        a = a / augment.rms(a[loud[0] : loud[-1]]) * 0.05
        bounds.append((pos + int(loud[0]), pos + int(loud[-1])))
        parts += [a, np.zeros(int(1.2 * 16000))]
        pos += len(a) + int(1.2 * 16000)
    return np.concatenate(parts), bounds


def qemu(image: str, cpu: str, model: Path, files: list[str]) -> dict[str, Any]:
    eval_dir = ROOT / asrdemo.MANIFEST.parent
    runtime = ROOT / "runtime" / "src" / "edgepack_runtime"
    site = "/usr/local/lib/python3.11/dist-packages/edgepack_runtime"
    out: dict[str, Any] = {"image": image, "qemu_cpu": cpu, "files": files, "runtime": "this tree's, mounted"}
    for mode, extra in (("stream", ["--stream", "--chunk-ms", str(CHUNK_MS)]), ("batch", [])):
        rtf, lat = [], []
        for name in files:
            argv = [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "--platform",
                "linux/arm64",
                "-e",
                f"QEMU_CPU={cpu}",
                "-v",
                f"{eval_dir}:/eval:ro",
                "-v",
                f"{runtime}:{site}:ro",
                "-v",
                f"{model}:/m/model.onnx:ro",
                image,
                "transcribe",
                f"/eval/{name}",
                "--json",
                "--model",
                "/m/model.onnx",
                "--threads",
                "1",
                *extra,
            ]
            r = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)
            result = json.loads(r.stdout.strip().splitlines()[-1])
            rtf.append(result["rtf"])
            lat += [result["chunk_latency_ms"]["p50"]] if mode == "stream" else []
            out.setdefault("texts", []).append(result["text"])
        out[f"rtf_{mode}_p50"] = round(statistics.median(rtf), 4)
        if lat:
            out["chunk_latency_ms_p50_median"] = round(statistics.median(lat), 3)
    return out


def host_speed(model: Path, items: list[Item]) -> dict[str, Any]:
    rec = Recognizer.load(model, threads=1)
    rtf, grammar_ms = [], []
    for x, _, _ in items:
        samples = x.astype(np.float32) / 32768.0
        result = transcribe_stream(rec, samples, chunk_ms=CHUNK_MS)
        t0 = time.perf_counter()
        rec.command(result.log_probs)
        grammar_ms.append((time.perf_counter() - t0) * 1e3)
        rtf.append((result.compute_seconds + grammar_ms[-1] / 1e3) / result.audio_seconds)
    return {
        "rtf_stream_plus_grammar_p50": round(statistics.median(rtf), 4),
        "grammar_decode_ms_p50": round(statistics.median(grammar_ms), 3),
        "bytes": model.stat().st_size,
    }


def finetune_demo(weights: Path) -> dict[str, Any]:
    """The base and a fine-tuned model (speech.finetune) on every festival test voice, per voice.

    torch, whole utterances, then the runtime's grammar decoder: the same
    decoding as the board, without exporting the fine-tuned model here.
    """
    import torch
    from speech.export import load_model

    from edgepack_runtime.ctc import greedy_decode
    from edgepack_runtime.features import FrontEndConfig, Normalizer, log_mel
    from edgepack_runtime.grammar import GrammarDecoder, GrammarSpec

    out: dict[str, Any] = {"finetune": json.loads(weights.with_suffix(".json").read_text()).get("finetune")}
    festival = test_set("festival", 0)
    for label, path in (("before", ROOT / "speech/weights/cmdasr.pt"), ("after", weights)):
        model, meta = load_model(path)
        fe = meta["front_end"]
        norm = Normalizer(np.array(fe["mean"], np.float32), np.array(fe["std"], np.float32))
        decoder = GrammarDecoder(GrammarSpec.from_dict(meta["grammar"]), meta["charset"], blank=meta["blank"])
        hyps, free = [], []
        with torch.no_grad():
            for x, _, _ in festival:
                lp, _ = model(torch.from_numpy(norm(log_mel(x, FrontEndConfig())))[None])
                hyps.append(decoder.decode(lp[0].numpy()).text)
                free.append(greedy_decode(lp[0].numpy(), meta["charset"], blank=meta["blank"]))
        for voice in sorted({v for *_, v in festival}):
            idx = [i for i, (*_, v) in enumerate(festival) if v == voice]
            refs = [festival[i][1] for i in idx]
            out.setdefault(voice, {})[f"wer_{label}"] = round(corpus_wer(refs, [hyps[i] for i in idx]), 4)
            out[voice][f"free_text_wer_{label}"] = round(corpus_wer(refs, [free[i] for i in idx]), 4)
    return out


def built_image(project: Project, target: str) -> str:
    """The image of the target's last successful build, else the newest local one of its name."""
    report = project.build_dir / target / "report.json"
    if report.exists():
        tag = json.loads(report.read_text()).get("image", {}).get("tag")
        if tag:
            return str(tag)
    argv = ["docker", "images", f"edgepack/{target}", "--format", "{{.Repository}}:{{.Tag}}"]
    listed = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.split()
    # Builds tag their image with a content hash; other tags are tests' own images.
    built = [name for name in listed if re.fullmatch(r"[0-9a-f]{12}", name.rpartition(":")[2])]
    return built[0] if built else ""


def family_scores(weights: Path) -> dict[str, Any]:
    """A model's WER on every family's test split (torch, whole utterances; grammar and free text).

    For leave-one-family-out: ``--lofo DIR`` scores DIR/cmdasr.pt into DIR/scores.json, which the
    main run collects from speech/.cache/lofo-*/. The grammar is the bundled one (speech.vocab).
    """
    import torch
    from speech import vocab
    from speech.export import load_model

    from edgepack_runtime.ctc import greedy_decode
    from edgepack_runtime.features import FrontEndConfig, Normalizer, log_mel
    from edgepack_runtime.grammar import GrammarDecoder, GrammarSpec

    model, meta = load_model(weights)
    fe = meta["front_end"]
    norm = Normalizer(np.array(fe["mean"], np.float32), np.array(fe["std"], np.float32))
    decoder = GrammarDecoder(
        GrammarSpec.from_dict(vocab.grammar_spec()), meta["charset"], blank=meta["blank"]
    )
    out: dict[str, Any] = {"train_families": meta.get("data", {}).get("train_families", ["espeak"])}
    for family in ("espeak", "flite", "festival"):
        items = test_set(family, 0)
        free, best = [], []
        with torch.no_grad():
            for x, _, _ in items:
                lp = model(torch.from_numpy(norm(log_mel(x, FrontEndConfig())))[None])[0][0].numpy()
                free.append(greedy_decode(lp, meta["charset"], blank=meta["blank"]))
                best.append(decoder.decode(lp).text)
        refs = [t for _, t, _ in items]
        out[family] = {
            "wer": round(corpus_wer(refs, best), 4),
            "free_text_wer": round(corpus_wer(refs, free), 4),
        }
    return out


def update_qemu(args: argparse.Namespace) -> None:
    project = Project(ROOT)
    models = asrdemo.models(project, target=args.target)
    image = args.image or built_image(project, args.target)
    rows = [json.loads(line) for line in (ROOT / asrdemo.MANIFEST).read_text().splitlines() if line.strip()]
    files = [r["audio"] for r in rows[: args.qemu_files]]
    out = ROOT / "bench" / "results" / "asr.json"
    result = json.loads(out.read_text())
    result["qemu_int8"] = qemu(image, load_target(project, args.target).qemu_cpu, models["int8"], files)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["qemu_int8"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="rpi4")
    parser.add_argument("--qemu-files", type=int, default=3)
    parser.add_argument("--lofo", type=Path, default=None, help="score DIR/cmdasr.pt on every family")
    parser.add_argument("--qemu-only", action="store_true", help="rerun only the QEMU table of asr.json")
    parser.add_argument("--image", default="", help="image for the QEMU run (default: the target's build)")
    parser.add_argument("--limit", type=int, default=0, help="utterances per test set (0: all)")
    parser.add_argument("--fa-seconds", type=float, default=600.0, help="non-command audio per condition")
    parser.add_argument(
        "--finetuned", type=Path, default=None, help="score a speech.finetune result's .pt only"
    )
    args = parser.parse_args()
    if args.qemu_only:
        update_qemu(args)
        return
    if args.lofo is not None:
        scores = family_scores(args.lofo / "cmdasr.pt")
        (args.lofo / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
        out = ROOT / "bench" / "results" / "asr.json"
        result = json.loads(out.read_text())
        result.pop("leave_one_family_out_free_text", None)
        result.setdefault("leave_one_family_out", {})[args.lofo.name] = scores
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(scores, indent=2))
        return
    if args.finetuned is not None:
        demo = finetune_demo(args.finetuned)
        out = ROOT / "bench" / "results" / "asr_finetune.json"
        out.write_text(json.dumps(demo, indent=2) + "\n")
        print(json.dumps(demo, indent=2))
        return
    project = Project(ROOT)
    target = load_target(project, args.target)
    models = asrdemo.models(project, target=args.target)
    fp32, int8 = (Recognizer.load(models[k], threads=1) for k in ("fp32", "int8"))
    festival = test_set("festival", args.limit)
    meta = json.loads((ROOT / "speech/weights/cmdasr.json").read_text())
    result: dict[str, Any] = {
        "model": asrdemo.SPEC,
        "architecture": meta["architecture"],
        "train_families": meta["data"]["train_families"],
        "calibration": meta["grammar"].get("calibration"),
        "host": {"machine": platform.machine(), "threads": 1},
        "chunk_ms": CHUNK_MS,
        "heldout_family": {
            "festival_clean_int8": score(int8, festival),
            "festival_clean_fp32": score(fp32, festival),
            "festival_20db_int8": score(int8, with_noise(festival, 20, 1)),
            "festival_10db_int8": score(int8, with_noise(festival, 10, 2)),
            "festival_8khz_int8": score(int8, festival, rate=8000),
        },
        "other_families": {
            f"{f}_clean_int8": score(int8, test_set(f, args.limit)) for f in ("espeak", "flite")
        },
        "false_accepts": false_accepts(int8, seconds=args.fa_seconds),
        "endpointing": endpointing(festival, trials=10, seed=3),
        "host_int8": host_speed(models["int8"], festival[:50]),
    }
    h = result["heldout_family"]
    result["int8_vs_fp32_wer_points"] = round(
        100 * (h["festival_clean_int8"]["wer"] - h["festival_clean_fp32"]["wer"]), 2
    )
    result["khz8_vs_16_wer_points"] = round(
        100 * (h["festival_8khz_int8"]["wer"] - h["festival_clean_int8"]["wer"]), 2
    )
    result["leave_one_family_out"] = {
        path.parent.name: json.loads(path.read_text()) for path in sorted(CACHE.glob("lofo-*/scores.json"))
    }
    image = args.image or built_image(project, args.target)
    if args.qemu_files and image:
        rows = [
            json.loads(line) for line in (ROOT / asrdemo.MANIFEST).read_text().splitlines() if line.strip()
        ]
        files = [r["audio"] for r in rows[: args.qemu_files]]
        result["qemu_int8"] = qemu(image, target.qemu_cpu, models["int8"], files)
    out = ROOT / "bench" / "results" / "asr.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
