"""A test oracle: MMFF94 that fails every ``fail_every``-th call (an injected oracle failure)."""
from __future__ import annotations

from typing import Any

from golf.conformation import Conformation
from golf.oracles.base import OracleResult
from golf.oracles.mmff import MMFFOracle


class FlakyMMFF(MMFFOracle):
    name = "flaky_oracle:FlakyMMFF"

    def __init__(self, fail_every: int = 3, **kw: Any) -> None:
        super().__init__(**kw)
        self.fail_every = int(fail_every)
        self.calls = 0

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "fail_every": self.fail_every}

    def _compute(self, conf: Conformation) -> OracleResult:
        self.calls += 1
        if self.calls % self.fail_every == 0:
            return OracleResult.failure("injected failure (SCF not converged)")
        return super()._compute(conf)


class FailingMMFF(MMFFOracle):
    """An oracle whose every call fails (a broken genuine oracle)."""

    name = "flaky_oracle:FailingMMFF"

    def _compute(self, conf: Conformation) -> OracleResult:
        return OracleResult.failure("injected failure (SCF not converged)")


class SlowMMFF(MMFFOracle):
    """MMFF94 that takes ``delay`` seconds per call (a stand-in for a slow genuine oracle)."""

    name = "flaky_oracle:SlowMMFF"

    def __init__(self, delay: float = 0.5, **kw: Any) -> None:
        super().__init__(**kw)
        self.delay = float(delay)

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "delay": self.delay}

    def _compute(self, conf: Conformation) -> OracleResult:
        import time

        time.sleep(self.delay)
        return super()._compute(conf)
