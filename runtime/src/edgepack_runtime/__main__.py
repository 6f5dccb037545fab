"""``python -m edgepack_runtime smoke|info``: the image's entrypoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgepack_runtime.audio import AudioError

DEFAULT_SPEC = Path("/opt/edgepack/smoke/spec.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgepack-runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="run the baked-in smoke inference; JSON on stdout")
    smoke.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    smoke.add_argument("--runs", type=int, default=None)
    smoke.add_argument("--threads", type=int, default=None)
    sub.add_parser("info", help="print runtime versions and the CPU's features")
    args = parser.parse_args(argv)
    if args.command == "info":
        from edgepack_runtime.smoke import _platform

        print(json.dumps(_platform(), indent=2))
        return 0
    from edgepack_runtime.smoke import run_smoke

    try:
        result = run_smoke(args.spec, runs=args.runs, threads=args.threads)
    except (AudioError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"edgepack-runtime: smoke failed: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # onnxruntime raises untyped errors; the host shows this line
        print(f"edgepack-runtime: smoke failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
