"""The smoke test and the benchmark on a board, and where their results go.

The board runs the very smoke spec the image ran under QEMU; its outputs are
compared with the host reference within the target's tolerances. The bench
adds p50/p95/p99, peak RSS and CPU (measured by the runtime on the board) and
the board's temperature and throttling flags (read from /sys/class/thermal
and ``vcgencmd``, before and after). Results join build/<target>/report.json
under ``devices``, next to the QEMU results, and are appended to
build/<target>/device-runs.jsonl, the history ``device.regress`` reads.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepack.config import Project, Target
from edgepack.device.deploy import built_image, probe, runtime_argv
from edgepack.device.errors import BoardError
from edgepack.device.ssh import Board
from edgepack.errors import InputError
from edgepack.fsutil import write_json
from edgepack.pipeline import smoke
from edgepack.pipeline.steps import StepCache

# vcgencmd get_throttled bits (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    0: "under-voltage",
    1: "arm frequency capped",
    2: "throttled",
    3: "soft temperature limit",
    16: "under-voltage occurred",
    17: "frequency capping occurred",
    18: "throttling occurred",
    19: "soft temperature limit occurred",
}
THERMAL_SCRIPT = "\n".join(
    [
        "for z in /sys/class/thermal/thermal_zone*; do",
        '  [ -r "$z/temp" ] && echo "zone $(cat "$z/type" 2>/dev/null || basename "$z") $(cat "$z/temp")"',
        "done",
        "if command -v vcgencmd >/dev/null 2>&1; then",
        '  echo "vc $(vcgencmd measure_temp 2>/dev/null) $(vcgencmd get_throttled 2>/dev/null)"',
        "fi",
        "true",
    ]
)
_REPORT_LOCK = threading.Lock()  # fleet runs record from several threads


def host_reference(project: Project, target: Target) -> dict[str, Any]:
    """The host's smoke outputs for the built image (the app step's reference.json)."""
    report = json.loads((project.build_dir / target.name / "report.json").read_text())
    app = next((s for s in report.get("steps", []) if s["name"] == "app"), None)
    stamp = StepCache(project.cache_root).stamp_at("app", app["key"]) if app else None
    if stamp is None or not stamp.is_file():
        raise InputError(
            f"the host reference of the {target.name} build is gone from build/cache.",
            hint=f"Rebuild: edgepack build --target {target.name}",
        )
    reference: dict[str, Any] = json.loads(Path(json.loads(stamp.read_text())["reference"]).read_text())
    return reference


def require_deployed(board: Board, target: Target, project: Project) -> dict[str, Any]:
    """The board must run the image that was built (else results would be compared with the wrong build)."""
    image = built_image(project, target)
    facts = probe(board, target)
    expected = (
        image["id"] if board.spec.mode == "docker" else f"releases/{image['id'].removeprefix('sha256:')[:12]}"
    )
    if facts.current != expected:
        raise BoardError(
            f"board {board.spec.name} runs {facts.current or 'nothing'}, not the {target.name} build "
            f"{image['id'][:19]}.",
            hint=f"Deploy it first: edgepack device.deploy --target {target.name} ...",
        )
    return image


def run_json(
    board: Board, target: Target, command: list[str], *, what: str, timeout: float
) -> dict[str, Any]:
    out = board.run(runtime_argv(board.spec, target, command), what=what, timeout=timeout, privileged=False)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True)
class BoardSmoke:
    """The deployed image's smoke spec on a board over SSH (a ``pipeline.smoke.SmokeRunner``)."""

    board: Board
    target: Target
    runs: int

    @property
    def where(self) -> str:
        return f"{self.target.image}:current on board {self.board.spec.name}"

    def run_smoke(self) -> dict[str, Any]:
        command = ["smoke", "--runs", str(self.runs)]
        return run_json(
            self.board, self.target, command, what="smoke inference", timeout=self.target.smoke.timeout_s
        )


def board_smoke(board: Board, target: Target, project: Project, *, runs: int | None = None) -> dict[str, Any]:
    """The image's smoke spec on the board; ``runs`` (default: the target's) only changes timings."""
    image_id = require_deployed(board, target, project)["id"]
    reference = host_reference(project, target)
    on_board = BoardSmoke(board, target, runs or target.smoke.runs)
    result, checks = smoke.verify(reference, on_board, atol=target.smoke.atol, rtol=target.smoke.rtol)
    return {
        "ok": True,
        "image_id": image_id,
        "checks": smoke.checks_as_dicts(checks),
        "board": _summary(result),
    }


def board_bench(board: Board, target: Target, project: Project, *, runs: int, warmup: int) -> dict[str, Any]:
    image = require_deployed(board, target, project)
    before = read_thermal(board)
    command = ["bench", "--json", "--runs", str(runs), "--warmup", str(warmup)]
    result = run_json(
        board, target, command, what="benchmark", timeout=target.smoke.timeout_s * (runs + warmup)
    )
    after = read_thermal(board)
    return {
        "image_id": image["id"],
        "image_mb": int(image["bytes"]) / 1e6,
        **_summary(result),
        "peak_rss_mb": result["peak_rss_mb"],
        "cpu_percent": result["cpu_percent"],
        "runs": runs,
        "warmup": warmup,
        "model": result["model"],
        "thermal": {"before": before, "after": after},
    }


def read_thermal(board: Board) -> dict[str, Any]:
    return parse_thermal(board.sh(THERMAL_SCRIPT, what="reading temperatures").stdout)


def parse_thermal(text: str) -> dict[str, Any]:
    """``zone cpu-thermal 51540`` and ``vc temp=51.5'C throttled=0x50000`` lines."""
    out: dict[str, Any] = {"zones_c": {}}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "zone" and words[2].lstrip("-").isdigit():
            out["zones_c"][words[1]] = int(words[2]) / 1000
        elif words and words[0] == "vc":
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key == "temp":
                    out["vcgencmd_c"] = float(value.rstrip("'C"))
                elif key == "throttled":
                    bits = int(value, 16)
                    out["throttled"] = value
                    out["throttled_flags"] = [name for bit, name in THROTTLE_BITS.items() if bits >> bit & 1]
    return out


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("runtime", "load_ms", "latency_ms", "pass_ms", "audio_seconds", "rtf")
    return {k: result[k] for k in keys if k in result}


def record(project: Project, target: Target, *, board: str, kind: str, result: dict[str, Any]) -> None:
    """Into report.json (``devices.<board>.<kind>``) and the run history (device-runs.jsonl)."""
    out = project.build_dir / target.name
    entry = {"board": board, "kind": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    with _REPORT_LOCK:
        report_path = out / "report.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        report.setdefault("devices", {}).setdefault(board, {})[kind] = entry
        write_json(report_path, report)
        with (out / "device-runs.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
