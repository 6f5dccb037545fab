"""``python -m edgepack_runtime smoke|info|bench-model|transcribe|listen|...``: the image's entrypoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgepack_runtime import asrcli
from edgepack_runtime.argtypes import seconds, whole
from edgepack_runtime.audio import AudioError
from edgepack_runtime.paths import default_model, default_spec
from edgepack_runtime.smoke import SpecError

DEFAULT_SPEC = Path("/opt/edgepack/smoke/spec.json")


THREADS, RUNS = whole(1, 256), whole(1, 100_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgepack-runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="run the baked-in smoke inference; JSON on stdout")
    smoke.add_argument(
        "--spec", type=Path, default=None, help="default: the image's, or --target's last build"
    )
    smoke.add_argument(
        "--target", default=None, help="on the host: the last build of this target (build/NAME/)"
    )
    smoke.add_argument("--runs", type=RUNS, default=None)
    smoke.add_argument("--threads", type=THREADS, default=None)
    sub.add_parser("info", help="print runtime versions and the CPU's features")
    bench_model = sub.add_parser("bench-model", help="median latency of an ONNX model on inputs from an .npz")
    bench_model.add_argument(
        "--model", type=Path, required=True, action="append", help="repeat to time several, interleaved"
    )
    bench_model.add_argument("--inputs", type=Path, required=True)
    bench_model.add_argument("--runs", type=RUNS, default=20)
    bench_model.add_argument("--threads", type=THREADS, default=1)
    _add_metrics_commands(sub)
    asrcli.add_commands(sub)
    args = parser.parse_args(argv)
    if getattr(args, "spec", "absent") is None:
        args.spec = default_spec(getattr(args, "target", None))
    if getattr(args, "model", "absent") is None:
        args.model = default_model(getattr(args, "target", None))
    if args.command in asrcli.COMMANDS:
        return asrcli.run(args)
    if args.command == "bench-model":
        from edgepack_runtime.benchmodel import bench_models

        try:
            results = bench_models(args.model, args.inputs, runs=args.runs, threads=args.threads)
        except (OSError, ValueError, KeyError) as exc:  # a missing or unreadable file, a bad .npz
            print(f"edgepack-runtime: bench-model failed: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # onnxruntime raises untyped errors
            print(f"edgepack-runtime: bench-model failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        for result in results:
            print(json.dumps(result))  # a line per model, in the order given
        return 0
    if args.command in ("bench", "serve"):
        return _run_metrics_command(args)
    if args.command == "info":
        from edgepack_runtime.session import platform_info

        print(json.dumps(platform_info(), indent=2))
        return 0
    from edgepack_runtime.smoke import run_smoke

    try:
        result = run_smoke(args.spec, runs=args.runs, threads=args.threads)
    except (AudioError, SpecError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"edgepack-runtime: smoke failed: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # onnxruntime raises untyped errors; the host shows this line
        print(f"edgepack-runtime: smoke failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _add_metrics_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="the smoke inference N times: p50/p95/p99, peak RSS, CPU; JSON")
    bench.add_argument(
        "--spec", type=Path, default=None, help="default: the image's, or --target's last build"
    )
    bench.add_argument(
        "--target", default=None, help="on the host: the last build of this target (build/NAME/)"
    )
    bench.add_argument("--json", action="store_true", help="the whole result as JSON (default: a summary)")
    bench.add_argument("--runs", type=RUNS, default=5)
    bench.add_argument("--warmup", type=whole(0, 10_000), default=1)
    bench.add_argument("--threads", type=THREADS, default=None)
    serve = sub.add_parser("serve", help="run the model continuously; Prometheus metrics and JSON lines")
    serve.add_argument(
        "--spec", type=Path, default=None, help="default: the image's, or --target's last build"
    )
    serve.add_argument(
        "--target", default=None, help="on the host: the last build of this target (build/NAME/)"
    )
    serve.add_argument(
        "--port", type=whole(0, 65535), default=9464, help="127.0.0.1 port of /metrics (0: none)"
    )
    serve.add_argument("--jsonl", type=Path, default=None, help="append a JSON record per interval here")
    serve.add_argument(
        "--interval", type=seconds(0.1, 86_400), default=60.0, help="seconds between JSON records"
    )
    serve.add_argument(
        "--duration", type=seconds(0, 10**9), default=0.0, help="stop after this many seconds (0: never)"
    )


def bench_summary(result: dict[str, Any]) -> str:
    """The benchmark for a person: latency percentiles, memory, CPU (``--json`` prints everything)."""
    lat = result.get("latency_ms", {})
    lines = [
        f"model    {result.get('model', {}).get('file', '?')} ({result.get('model', {}).get('kind', '?')})"
    ]
    if lat:
        unit = lat.get("unit", "call")
        lines.append(f"latency  per {unit}: p50 {lat.get('p50', 0):.2f} ms, p95 {lat.get('p95', 0):.2f} ms, "
                     f"p99 {lat.get('p99', 0):.2f} ms over {lat.get('count', '?')}")  # fmt: skip
    for key, label in (("peak_rss_mb", "memory   peak RSS {:.1f} MB"), ("cpu_percent", "cpu      {:.0f} %")):
        if key in result:
            lines.append(label.format(result[key]))
    lines.append("(--json: the whole result)")
    return "\n".join(lines)


def _run_metrics_command(args: argparse.Namespace) -> int:
    from edgepack_runtime import metrics

    try:
        if args.command == "bench":
            result = metrics.bench(args.spec, runs=args.runs, warmup=args.warmup, threads=args.threads)
            if args.json:
                json.dump(result, sys.stdout)
                sys.stdout.write("\n")
            else:
                print(bench_summary(result))
        else:
            final = metrics.serve(args.spec, port=args.port, jsonl=args.jsonl, interval_s=args.interval,
                                  duration_s=args.duration)  # fmt: skip
            json.dump(final.snapshot(), sys.stdout)
            sys.stdout.write("\n")
    except (AudioError, SpecError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"edgepack-runtime: {args.command} failed: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port taken, a full disk under --jsonl: name the path or the port
        where = exc.filename or (f"127.0.0.1:{args.port}" if args.command == "serve" else "")
        print(f"edgepack-runtime: {args.command} failed: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 8
    return 0


if __name__ == "__main__":
    sys.exit(main())
