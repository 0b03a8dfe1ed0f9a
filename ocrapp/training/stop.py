"""A stop request that SIGTERM sets (kill, a session ending): a training loop checks it after each step, stops,
and still saves its checkpoint."""

from __future__ import annotations

import signal


class SigtermStop:
    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._request)

    def _request(self, *_args) -> None:
        self.requested = True

    def release(self) -> None:
        """Put back the SIGTERM handler that was there before."""
        signal.signal(signal.SIGTERM, self._previous)
