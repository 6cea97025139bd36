"""`bentoml build` packs the service, its code and its locked requirements into a Bento."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bentoml_build_produces_a_bento_with_a_dockerfile() -> None:
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    bentos = Path(os.environ["BENTOML_HOME"]) / "bentos" / "riskstrat"
    (bento,) = [p for p in bentos.iterdir() if p.is_dir() and p.name != "latest"]
    assert (bento / "env" / "docker" / "Dockerfile").exists()
    assert (bento / "src" / "serving" / "service.py").exists()
    assert (bento / "src" / "features" / "engine.py").exists()
    web = bento / "src" / "serving" / "web"
    assert (web / "templates" / "list.html").exists()
    assert (web / "static" / "nhsuk" / "nhsuk-frontend.min.css").exists()
    assert "lightgbm==" in (bento / "env" / "python" / "requirements.txt").read_text()
