"""Every distribution in the repository builds a wheel that carries its entry point."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_build_wheels_script_builds_one_wheel_per_distribution(tmp_path):
    subprocess.run(["bash", str(REPO / "scripts" / "build_wheels.sh"), str(tmp_path)], check=True, capture_output=True)
    projects = [REPO / "core", *(p.parent for p in REPO.glob("plugins/*/*/pyproject.toml"))]
    wheels = {w.name.split("-")[0]: w for w in tmp_path.glob("*.whl")}
    expected = {p.name.replace("-", "_") for p in projects[1:]} | {"omni_core"}
    assert set(wheels) == expected
    for name, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as archive:
            entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
            text = archive.read(entry_points).decode()
        if name == "omni_core":
            assert "omni = omni.cli.main:main" in text and "[pytest11]" in text
            assert any("omni/scaffold/tuner/entry.py.tmpl" in n for n in zipfile.ZipFile(wheel).namelist())
        else:
            assert "[omni]" in text and name.removeprefix("omni_plugin_").replace("_", "") in text.replace("_", "")
