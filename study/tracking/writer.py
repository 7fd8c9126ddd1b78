"""Write-behind for the trial logger: Tune's callbacks hand MLflow writes over and return at once;
writes are done in order, in batches, and what the store refuses is kept and tried again.

- Inline (no thread: ``study sync``, a logger used on its own), a write is done as it is handed
  over, after the writes kept before it.
- Between :meth:`WriteBehind.start` and :meth:`WriteBehind.close` (a sweep's Tune run), a daemon
  thread does them: it waits :attr:`WriteBehind.LINGER_S` after the first one so that a batch
  gathers, hands everything waiting to ``plan`` (the logger merges a trial's epochs into one
  call there), and makes the calls. Nothing Tune schedules waits for the store.
- A call that raises one of ``errors`` keeps its writes and every write not yet done, in order;
  none is tried again before ``retry_s()`` seconds have passed, except by :meth:`close`.
- :meth:`close` makes one last attempt at what is waiting, whatever the interval, joins the thread
  and returns to inline writing. A sweep's Tune run ends with it (``on_experiment_end``), and
  ending a sweep's runs calls it first (:func:`study.tracking.runs.settle_writes`), whatever
  stopped the driver, so no trial write lands after its sweep's ending. What is still kept then
  is in Ray's results, which ``study sync`` writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

Write = tuple[str, Callable[..., Any], tuple[Any, ...]]  # (whose write: a trial id, action, args)
Plan = Callable[[list[Write]], Iterable[tuple[Callable[[], Any], list[int]]]]


class WriteBehind:
    """Writes done in order by ``plan``'s calls, inline or by a thread; see the module."""

    LINGER_S = 0.5  # after the first write of a batch, seconds the thread waits for more

    def __init__(
        self,
        plan: Plan,
        errors: tuple[type[BaseException], ...],
        clock: Callable[[], float],
        retry_s: Callable[[], float],
        on_down: Callable[[BaseException, bool], None],
        on_back: Callable[[int], None],
    ) -> None:
        self._plan, self._errors, self._clock, self._retry_s = plan, errors, clock, retry_s
        self._on_down, self._on_back = on_down, on_back
        self._items: list[Write] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._crash: BaseException | None = None
        self._unanswered = False
        self._retry_at = 0.0

    @property
    def pending(self) -> int:
        """Writes waiting: handed over and not yet done, or kept because the store refused them."""
        with self._cond:
            return len(self._items)

    def submit(self, write: Write) -> None:
        with self._cond:
            self._items.append(write)
            if self._thread is not None:
                self._cond.notify()
                return
        if self._due():
            self._drain()

    def start(self) -> None:
        """Write from a thread from now on, until :meth:`close`."""
        with self._cond:
            if self._thread is not None:
                return
            self._closing, self._crash = False, None
            self._thread = threading.Thread(target=self._run, name="mlflow-writes", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """One last attempt at what is waiting, whatever the retry interval; then inline again.
        An error the thread met that is not a store's (a bug) is raised here."""
        with self._cond:
            thread = self._thread
            self._closing = True
            self._cond.notify()
        if thread is not None:
            thread.join()
            with self._cond:
                self._thread = None
        elif self._items:
            self._drain()
        crash, self._crash = self._crash, None
        if crash is not None:
            raise crash

    def _due(self) -> bool:
        return not self._unanswered or self._clock() >= self._retry_at

    def _until_retry(self) -> float | None:
        """Seconds to the next attempt while the store does not answer; else until notified."""
        return max(0.05, self._retry_at - self._clock()) if self._unanswered else None

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closing and not (self._items and self._due()):
                        self._cond.wait(self._until_retry())
                    if not self._closing:  # let a batch gather
                        self._cond.wait_for(lambda: self._closing, self.LINGER_S)
                    closing = self._closing
                self._drain()
                if closing:
                    return
        except BaseException as err:  # a bug, not a store that is down: kept for close()
            self._crash = err

    def _drain(self) -> None:
        """Everything waiting, as ``plan`` batches it; the first error keeps the rest."""
        done = 0
        while True:
            with self._cond:
                batch = list(self._items)
            if not batch:
                break
            finished: set[int] = set()
            refused = None
            try:
                for call, covered in self._plan(batch):
                    try:
                        call()
                    except self._errors as err:
                        refused = err
                        break
                    finished.update(covered)
            finally:  # only this method removes writes: the batch is still their head
                with self._cond:
                    kept = [w for i, w in enumerate(self._items[: len(batch)]) if i not in finished]
                    self._items = kept + self._items[len(batch) :]
            done += len(finished)
            if refused is not None:
                first = not self._unanswered
                self._unanswered = True
                self._retry_at = self._clock() + self._retry_s()
                self._on_down(refused, first)
                return
        if self._unanswered:
            self._unanswered = False
            self._on_back(done)
