"""Several targets and the GPU variant, as a user meets them at the command line."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_bad_input import assert_clean_error, invoke, project  # noqa: F401 (fixture)


def test_an_unknown_name_in_a_target_list_suggests(project: Path) -> None:  # noqa: F811
    r = invoke(project, "build", "--target", "rpi4,x86box", "--dry")
    assert_clean_error(r, 2, "unknown target 'x86box' in --target rpi4,x86box", "Did you mean 'x86-box'?")


def test_all_plans_every_target(project: Path) -> None:  # noqa: F811
    r = invoke(project, "build", "--target", "all", "--dry", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    for name in ("jetson-orin-nano", "rpi-zero2w", "rpi4", "rpi5", "x86-box"):
        assert f"{name}: build plan" in r.stdout
    assert "smoke inference, native (no emulation)" in r.stdout
    assert "smoke inference, QEMU -cpu cortex-a76" in r.stdout


def test_a_native_target_with_a_qemu_cpu_is_refused(project: Path) -> None:  # noqa: F811
    text = (project / "targets/x86-box.yaml").read_text() + "qemu_cpu: cortex-a72\n"
    (project / "targets/bad.yaml").write_text(text)
    r = invoke(project, "build", "--target", "bad", "--dry")
    assert_clean_error(r, 2, "targets/bad.yaml:", "'qemu_cpu' is set, but linux/amd64 runs natively")


def test_the_gpu_variant_without_nvidias_base_stops_in_two_lines(project: Path) -> None:  # noqa: F811
    # The engine is asked for the image (docker image inspect); nothing is pulled.
    r = invoke(project, "build", "--target", "jetson-orin-nano", "--variant", "gpu")
    needles = ("jetson-orin-nano's GPU variant needs nvcr.io/nvidia/l4t-jetpack:r36.4.0",
               "cannot be pulled here",
               "docker load it", "edgepack build --target jetson-orin-nano")  # fmt: skip
    assert_clean_error(r, 3, *needles)
    assert len(r.stderr.strip().splitlines()) == 2, r.stderr


def test_the_gpu_variant_of_a_board_without_one(project: Path) -> None:  # noqa: F811
    r = invoke(project, "build", "--target", "rpi5", "--variant", "gpu")
    assert_clean_error(r, 2, "target 'rpi5' has no GPU variant")
