"""What a running study shows: trials done, best so far, the current trial. A rich live panel on a terminal,
one plain line per trial otherwise (logs, workers, tests)."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..storage.tally import PENDING

STATUS_STYLE = {"completed": "green", "infeasible": "yellow", "invalid": "yellow", "pruned": "cyan",
                "stopped": "cyan", "diverged": "red", "failed": "red", "interrupted": "magenta"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Display:
    """Receives the runner's events; `live=False` prints one line per finished trial."""

    def __init__(self, study_name: str, objectives: list[str], target: int | None, *, live: bool | None = None,
                 prefix: str = "", stream=None):
        self.study_name = study_name
        self.objectives = objectives
        self.target = target
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.prefix = prefix
        self.counts: dict[str, int] = {}
        self.best: str = "-"
        self.current: dict[str, Any] = {}
        self.started = time.perf_counter()
        self._live = None

    # -------------------------------------------------------------------------------------- events
    def __enter__(self) -> "Display":
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(file=self.stream), refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def trial_started(self, number: int, pattern: str | None, n_params: int | None) -> None:
        self.current = {"number": number, "pattern": pattern, "n_params": n_params, "step": None, "metrics": {}}
        self._refresh()

    def trial_step(self, step: int, metrics: dict[str, float]) -> None:
        self.current["step"] = step
        self.current["metrics"] = metrics
        self._refresh()

    def trial_finished(self, number: int, status: str, values: list[float] | None, note: str | None,
                       counts: dict[str, int], best: str) -> None:
        self.counts, self.best = counts, best
        self.current = {}
        if not self.live:
            shown = ", ".join(f"{m}={_fmt(v)}" for m, v in zip(self.objectives, values or []))
            line = f"{self.prefix}trial {number:>4} {status:<11} {shown}"
            if note:
                line += f"  ({note[:160]})"
            print(line, file=self.stream, flush=True)
        self._refresh()

    def message(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(f"{self.prefix}{text}", file=self.stream, flush=True)

    # -------------------------------------------------------------------------------------- rendering
    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self):
        from rich.panel import Panel
        from rich.table import Table

        done = sum(n for s, n in self.counts.items() if s not in PENDING)  # retries count once (storage.tally)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        target = f" / {self.target}" if self.target else ""
        table.add_row("trials", f"{done}{target}   " + "  ".join(
            f"[{STATUS_STYLE.get(s, 'white')}]{s} {n}[/]" for s, n in sorted(self.counts.items())))
        table.add_row("best", self.best)
        if self.current:
            c = self.current
            metrics = "  ".join(f"{k}={_fmt(v)}" for k, v in list(c["metrics"].items())[:4])
            step = f"step {c['step']}  {metrics}" if c["step"] is not None else "screening / starting"
            table.add_row("current", f"#{c['number']} {c['pattern'] or ''} "
                          f"({(c['n_params'] or 0):,} params)  {step}")
        table.add_row("elapsed", f"{time.perf_counter() - self.started:.0f} s")
        return Panel(table, title=f"study {self.study_name}", expand=False)
