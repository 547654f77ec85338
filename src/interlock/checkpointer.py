"""Signing the audit log's checkpoints in the background, every few seconds while the log grows."""

from __future__ import annotations

import logging
import threading

from interlock.core.errors import InterlockError
from interlock.ledger import Ledger

_log = logging.getLogger(__name__)


class Checkpointer:
    """A thread that signs a checkpoint every `every` seconds (when the log grew), and once more on close.

    A refusal to sign (`audit.inconsistent`: the stored history contradicts the last checkpoint) is logged
    as an error on every round: it needs a person, and nothing is signed until one looks.
    """

    def __init__(self, ledger: Ledger, every: float) -> None:
        self.ledger = ledger
        self.every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interlock-checkpointer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sign()

    def sign(self) -> None:
        try:
            self.ledger.checkpoint()
        except InterlockError as error:
            _log.error("audit checkpoint not signed: %s: %s", error.code, error.message)

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            self.sign()
