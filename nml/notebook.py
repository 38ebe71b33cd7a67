"""What every notebook does first: read its params and know where its outputs go."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from nml._infra.paths import project_root
from nml.config import Params, load_params


def setup(profile: str = "cpu", params_path: str | None = None, output_dir: str | None = None) -> tuple[Params, Path]:
    """Load the params (the runner's resolved file, or a profile) and create the output folder.

    Opened in JupyterLab without papermill, a notebook runs on ``profile`` and writes its
    figures to ``figures/<profile>/``; under ``nml run`` it gets the run's resolved params and
    output folder.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("nml").setLevel(logging.INFO)
    params = load_params(path=params_path) if params_path else load_params(profile)
    out = Path(output_dir) if output_dir else project_root() / "figures" / params.profile
    out.mkdir(parents=True, exist_ok=True)
    return params, out
