"""The key set in force, reloaded without a restart: on SIGHUP, and when the key file
changes (its inode, size, mtime or ctime, checked every PROXY_KEYS_RELOAD_SECONDS).

A reload reads and checks the whole file first and then swaps one reference, so a request
sees either the old set or the new one, never a mix; a request keeps the key it was
admitted with until it ends. A file that cannot be read or parsed leaves the set in force
unchanged (logged, and counted in proxy_api_key_reloads_total{result="error"}). A file
with no key at all is taken as it is: every request is then refused (fail closed).

The file may be replaced by renaming a new one over it (what an atomic writer does): the
path is looked up again at every check. A bind mount of the file itself would keep
showing the old inode after such a rename; mount its directory instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator

from .config import Settings
from .keys import KeySet, KeySetError, load_key_set
from .limits import Limiters
from .metrics import Metrics

log = logging.getLogger("inference_proxy")
Stamp = tuple[int, int, int, int, int] | None


class KeyStore:
    def __init__(self, settings: Settings, metrics: Metrics, limiters: Limiters | None = None):
        self.settings = settings
        self.metrics = metrics
        self.limiters = limiters or Limiters()
        self.current: KeySet | None = settings.load_keys()  # None: auth is off
        self._stamp = self._file_stamp()
        self._publish()

    def _file_stamp(self) -> Stamp:
        path = self.settings.api_keys_file
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _publish(self) -> None:
        keys = list(self.current or ())
        self.limiters.sync(keys)
        self.metrics.api_keys.set(len(keys))

    def reload(self, reason: str) -> bool:
        """Read the key set again; True when the new one is in force."""
        if self.current is None:
            return False  # auth is off: there is nothing to reload
        self._stamp = self._file_stamp()
        try:
            keys = load_key_set(self.settings.api_keys, self.settings.api_keys_file)
        except KeySetError as exc:
            self.metrics.key_reloads.labels("error").inc()
            log.error("key set not reloaded (%s): %s; the previous set stays in force", reason, exc)
            return False
        self.current = keys
        self._publish()
        self.metrics.key_reloads.labels("ok").inc()
        if len(keys):
            log.info("key set reloaded (%s): %d key(s)", reason, len(keys))
        else:
            log.error("key set reloaded (%s) with no key: every request is refused", reason)
        return True

    def check_file(self) -> None:
        if self.settings.api_keys_file and self._file_stamp() != self._stamp:
            self.reload("the key file changed")

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.keys_reload_seconds)
            self.check_file()

    @contextlib.asynccontextmanager
    async def reloading(self) -> AsyncIterator[KeyStore]:
        """SIGHUP (when running in the main thread) and the file watch, for the app's life."""
        loop = asyncio.get_running_loop()
        on_signal = threading.current_thread() is threading.main_thread()
        if on_signal:
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        task = asyncio.create_task(self.watch()) if self.current is not None else None
        try:
            yield self
        finally:
            if task is not None:
                task.cancel()
            if on_signal:
                loop.remove_signal_handler(signal.SIGHUP)
