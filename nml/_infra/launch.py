"""Launch one training cell through ``torchrun`` and wait for it, streaming its log.

A notebook whose params say ``runtime.launcher: torchrun`` does not train in its own process: for
each cell not yet cached it writes the resolved params to a file, runs
``torchrun … -m nml.cli pretrain|finetune --params FILE --cell CELL``, streams the processes'
output into its own log, and then reads the checkpoint (or result) the run cached — exactly as it
reads one a previous run cached.

With ``nnodes > 1`` the notebook's machine is one node: the same command must run on every other
node (a Slurm step does that; see README "Running at paper scale"); it is logged before the launch.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from nml._infra.cache import atomic_write_bytes, stable_hash
from nml._infra.paths import nml_home
from nml._infra.runtime_config import RuntimeConfig

log = logging.getLogger("nml._infra.launch")


def torchrun_command(cfg: RuntimeConfig, command: str, params_file: Path, cell: str, *, run_id: str) -> list[str]:
    """``python -m torch.distributed.run … -m nml.cli <command> --params FILE --cell CELL``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={cfg.nproc_per_node}",
           f"--nnodes={cfg.nnodes}"]
    if cfg.nnodes > 1:
        cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={cfg.rdzv_endpoint}", f"--rdzv_id=nml-{run_id}"]
    else:
        cmd += ["--standalone"]
    return [*cmd, "-m", "nml.cli", command, "--params", str(params_file), "--cell", cell]


def write_params_file(params_yaml: str) -> Path:
    """The resolved params of a launch, written once under ``<NML_HOME>/launch/`` by content."""
    path = nml_home() / "launch" / f"params-{stable_hash(params_yaml, length=16)}.yaml"
    if not path.exists():
        atomic_write_bytes(path, params_yaml.encode())
    return path


def run_torchrun(cfg: RuntimeConfig, command: str, params_yaml: str, cell: str, *, tail: int = 40) -> None:
    """Run one cell through ``torchrun`` and wait; its output goes to this process's log line by
    line. A non-zero exit raises ``RuntimeError`` with the command and the last ``tail`` lines."""
    params_file = write_params_file(params_yaml)
    cmd = torchrun_command(cfg, command, params_file, cell, run_id=stable_hash([params_yaml, cell], length=12))
    if cfg.nnodes > 1:
        log.info("multi-node launch: run this same command on the other %d nodes:\n  %s", cfg.nnodes - 1, " ".join(cmd))
    log.info("torchrun %s %s on %d process(es) per node, %d node(s)", command, cell, cfg.nproc_per_node, cfg.nnodes)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    last: deque[str] = deque(maxlen=tail)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            last.append(line)
            log.info("  %s", line)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"torchrun {command} --cell {cell} exited with code {code}\n  command: {' '.join(cmd)}\n"
                           "  last lines:\n    " + "\n    ".join(last))
