"""Signing the audit log's checkpoints in the background, every few seconds while the log grows, and having
each new one cosigned by the configured witnesses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from interlock.core.errors import InterlockError
from interlock.ledger import Ledger
from interlock.witnessing import WitnessTarget, cosign

_log = logging.getLogger(__name__)


class Checkpointer:
    """A thread that signs a checkpoint every `every` seconds (when the log grew), and once more on close.

    A refusal to sign (`audit.inconsistent`: the stored history contradicts the last checkpoint) is logged
    as an error on every round: it needs a person, and nothing is signed until one looks.

    With witnesses, a second thread asks each one that has not cosigned the newest checkpoint to cosign it,
    after every round; a witness that refuses or cannot be reached is logged as an error and asked again after
    the next. Signing never waits for a witness.
    """

    def __init__(self, ledger: Ledger, every: float, witnesses: Sequence[WitnessTarget] = ()) -> None:
        self.ledger = ledger
        self.every = every
        self.witnesses = tuple(witnesses)
        self._cosigned: dict[str, int] = {}  # witness name -> the checkpoint size it last cosigned
        self._stopped = threading.Event()
        self._signed = threading.Event()  # a round ended: the witnesses may have something new to cosign
        self._threads = [threading.Thread(target=self._run, name="interlock-checkpointer", daemon=True)]
        if self.witnesses:
            self._threads.append(threading.Thread(target=self._run_witnesses, name="interlock-witnessing",
                                                  daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._signed.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self.sign()

    def sign(self) -> None:
        try:
            self.ledger.checkpoint()
        except InterlockError as error:
            _log.error("audit checkpoint not signed: %s: %s", error.code, error.message)

    def witness(self) -> None:
        """Ask each witness that has not cosigned the newest checkpoint to cosign it."""
        for target in self.witnesses:
            try:
                latest = self.ledger.latest()
                if latest is None or self._cosigned.get(target.key.name) == latest.size:
                    continue
                self._cosigned[target.key.name] = cosign(self.ledger, target.url, target.key).size
            except InterlockError as error:
                _log.error("audit checkpoint not cosigned by %s: %s: %s", target.key.name, error.code, error.message)

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            self.sign()
            self._signed.set()

    def _run_witnesses(self) -> None:
        while True:
            self._signed.wait()
            self._signed.clear()
            if self._stopped.is_set():
                return
            self.witness()
