"""Rank-0 run monitoring: TensorBoard scalars and images, tqdm progress, a JSONL log.

Messages (e.g. validation results) go through :mod:`logging`; while the progress bar is
shown they are routed through ``tqdm.write`` so the bar stays intact.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from torch import Tensor
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data_schemas.location import durable_temp

logger = logging.getLogger(__name__)


class _Outputs:
    """The open outputs of the main rank."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, progress: bool,
                 name: str) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported only where it writes

        self.stack = ExitStack()
        log_path = run_dir / "train_log.jsonl"
        if start_step:  # a resumed run: forget what a killed run logged after its checkpoint
            truncate_log(log_path, start_step)
        # purge_step: TensorBoard hides every older event at step >= start_step + 1
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1 if start_step
                                    else None)
        self.stack.callback(self.writer.close)
        self.log: IO[str] = self.stack.enter_context(open(log_path, "a"))
        self.bar = self.stack.enter_context(tqdm(
            total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
            disable=not progress, desc=name))
        self.stack.enter_context(logging_redirect_tqdm())


def truncate_log(path: Path, last_step: int) -> int:
    """Keep the lines of the JSONL log ``path`` whose ``step`` is at most ``last_step`` (the
    step a run resumes from), atomically (a temporary file renamed over it); a line a killed
    run left half-written is dropped too. Returns the number of lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= last_step]
    if len(kept) == len(lines):
        return 0
    text = "".join(line if line.endswith("\n") else line + "\n" for line in kept)
    with durable_temp(str(path.parent), text.encode(), f".{path.name}.") as tmp:
        os.replace(tmp, path)
    logger.info("%s: dropped %d line(s) logged after step %d (the step this run resumes "
                "from)", path, len(lines) - len(kept), last_step)
    return len(lines) - len(kept)


def _logged_step(line: str) -> float:
    """The ``step`` of one log line; inf for a line that is not a complete record."""
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError):
        return float("inf")
    return float(step) if isinstance(step, int | float) else float("inf")


class Monitor:
    """TensorBoard + tqdm + ``train_log.jsonl`` on the main rank; no-ops elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool, total_steps: int, start_step: int,
                 progress: bool = True, name: str = "train") -> None:
        self.out = _Outputs(run_dir, total_steps, start_step, progress, name) if enabled \
            else None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.out is None:
            return
        for name, value in values.items():
            self.out.writer.add_scalar(name, value, step)
        self.out.log.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self.out.log.flush()

    def image(self, step: int, name: str, image: Tensor) -> None:
        if self.out is not None:
            self.out.writer.add_image(name, image, step)

    def advance(self, postfix: dict[str, str]) -> None:
        if self.out is not None:
            self.out.bar.set_postfix(postfix, refresh=False)
            self.out.bar.update(1)

    def write(self, line: str) -> None:
        """A message of the main rank (logged; printed above the progress bar)."""
        if self.out is not None:
            logger.info(line)

    def close(self) -> None:
        if self.out is not None:
            self.out.stack.close()
            self.out = None
