"""The progress bar (rich, on stderr): step, loss, tokens/s. Disabled, it costs nothing."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressBar:
    def __init__(self, enabled: bool, total: int, done: int, title: str):
        self._progress = None
        if enabled:
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
                                      TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._task = self._progress.add_task(title, total=total, completed=done, loss="-", speed="")
            self._progress.start()

    def update(self, step: int, loss: float, tokens_per_s: float | None) -> None:
        if self._progress is not None:
            speed = f"{tokens_per_s:,.0f} tok/s" if tokens_per_s else ""
            self._progress.update(self._task, completed=step, loss=f"{loss:.4f}", speed=speed)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
