"""A pip install works: the wheel carries the templates and example playbooks, and from an empty folder a fresh
venv with only that wheel inits, checks, drills and exports. The wheel is built from a copy of the source (the
build leaves nothing in the checkout); the fresh venv borrows the test environment's dependencies (a .pth), so
the test needs no network beyond what building the wheel needs (setuptools from the index)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ("pyproject.toml", "README.md", "src", "templates", "playbooks")


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out


def build_wheel(tmp: Path) -> Path:
    src = tmp / "source"
    src.mkdir()
    for name in SOURCE:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"), str(src)], tmp, 300)
    [wheel] = (tmp / "dist").glob("rollback_bot-*.whl")
    return wheel


def test_the_wheel_installs_and_a_new_team_inits_checks_drills_and_exports(tmp_path: Path) -> None:
    t0 = time.monotonic()
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"rollback_bot/data/{p.relative_to(ROOT)}"
        for folder in ("templates", "playbooks")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in (".j2", ".yaml", ".md")
    }
    assert "rollback_bot/data/templates/comms/internal-alert.md.j2" in shipped
    assert "rollback_bot/data/playbooks/starter.yaml" in shipped
    assert shipped <= names, sorted(shipped - names)
    assert "rollback_bot/store/migrations/script.py.mako" in names

    venv = tmp_path / "venv"
    try:
        use_in_a_fresh_venv(wheel, venv, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    assert time.monotonic() - t0 < 100


def use_in_a_fresh_venv(wheel: Path, venv: Path, tmp_path: Path) -> None:
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        tmp_path,
    )
    [site] = (venv / "lib").glob("python3*/site-packages")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz-test-dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")  # after the wheel's own
    bot = str(venv / "bin" / "rollback-bot")
    work = tmp_path / "team"
    work.mkdir()
    where = run([str(venv / "bin" / "python"), "-c", "import rollback_bot; print(rollback_bot.__file__)"], work)
    assert where.stdout.startswith(str(site)), where.stdout  # the installed wheel, not the checkout

    assert "wrote my-service.yaml" in run([bot, "init"], work).stdout
    assert "my-service.yaml: ok (my-service" in run([bot, "check"], work).stdout
    db = f"sqlite:///{tmp_path}/drill.db"
    drill = run([bot, "drill", "my-service.yaml", "--speed", "2880", "--database", db], work)
    assert "All targets met." in drill.stdout
    (work / "templates" / "postmortem.md.j2").unlink()  # the installed built-in one takes over
    md = run([bot, "export", "1", "--database", db], work).stdout
    assert md.startswith("# Post-mortem: my-service incident #1 (critical)")
    run([bot, "export", "1", "--database", db, "--format", "html", "--out", "pm.html"], work)
    assert "<h1>Post-mortem: my-service incident #1" in (work / "pm.html").read_text()
    examples = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from rollback_bot.builtin import builtin_dir as b; print(b('playbooks'))",
        ],
        work,
    ).stdout.strip()
    assert examples.startswith(str(site))
    assert "genai-release.yaml: ok" in run([bot, "check", "--no-env", examples], work).stdout
