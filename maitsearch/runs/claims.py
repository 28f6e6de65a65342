"""Claims on trial-cache keys: one worker trains a (placement, seed), the others wait for it.

A worker about to train a key creates ``claims/<digest>.lease`` in the cache folder with
``O_CREAT | O_EXCL``: of several workers, exactly one creates it, on one host or several sharing
the folder (NFSv3 and later create exclusively too). The lease holds its host, pid, a token of
its own, and a heartbeat that a thread of the holder rewrites every few seconds while it
trains. Another worker that wants the key waits for the cache entry instead of training it.

Staleness is judged by the heartbeat alone, and by the waiter's own clock: a lease whose
content has not changed for ``grace`` seconds of the waiter's monotonic time belongs to a dead
worker. No pid is checked (a pid means nothing on another host) and no two hosts' clocks are
compared, so clock skew between hosts cannot break a live lease. The price: a worker that
finds a dead worker's lease waits one grace period before it trains the key itself.

Breaking and releasing both rename the lease to a tombstone of the breaker's own, so of
several breakers one wins; the winner then checks that the tombstone holds the lease it judged
stale, and puts back one it took by mistake (a lease that was re-created in between). The
heartbeat writes through the holder's open descriptor, never through the path, so a holder
whose lease was broken cannot bring it back over a new claimant's.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..atomic import DISK_ERRNOS, disk_error

GRACE_ENV = "MAITSEARCH_CLAIM_GRACE"
DEFAULT_GRACE = 60.0  # seconds; a heartbeat is written every grace / 6 (at most 5 s)
RECORD_SIZE = 512  # every heartbeat rewrites the same bytes: a reader never sees a shorter, older tail


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its file says (``pid`` 0 while the file is still being written)."""

    host: str
    pid: int
    token: str
    heartbeat: float  # the holder's wall clock: shown, never compared with this host's


@dataclass
class Lease:
    """A lease this process holds."""

    path: Path
    token: str
    fd: int
    started: float
    beats: int = 0


def claim_grace() -> float:
    """``$MAITSEARCH_CLAIM_GRACE`` seconds, else the default: how long a silent lease is trusted."""
    text = os.environ.get(GRACE_ENV, "")
    try:
        return max(0.5, float(text)) if text else DEFAULT_GRACE
    except ValueError:
        return DEFAULT_GRACE


class Claims:
    """The leases of one cache folder; ``name`` is a key's digest."""

    def __init__(self, folder: str | Path, grace: float | None = None):
        self.folder = Path(folder) / "claims"
        self.grace = grace if grace is not None else claim_grace()
        self.interval = min(5.0, self.grace / 6)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._held: dict[Path, Lease] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.lease"

    # ---- holding ---------------------------------------------------------------------------
    def try_claim(self, name: str) -> Lease | None:
        """This process's new lease on ``name``, or None when another worker holds one."""
        path = self.path(name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        except OSError as err:
            if err.errno in DISK_ERRNOS:
                raise disk_error(path, err) from None
            raise
        lease = Lease(path, secrets.token_hex(8), fd, time.time())
        try:
            self._beat(lease)
        except OSError as err:
            self._drop(lease)
            if err.errno in DISK_ERRNOS:
                raise disk_error(path, err) from None
            raise
        with self._lock:
            self._held[path] = lease
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._heartbeats, name="maitsearch-claims", daemon=True)
                self._thread.start()
        return lease

    def release(self, lease: Lease) -> None:
        """Give the lease up (after the result is in the cache, or when training failed). A
        folder that cannot be written any more leaves the lease to go stale."""
        with self._lock:
            if self._held.pop(lease.path, None) is not None:
                self._drop(lease)

    def _drop(self, lease: Lease) -> None:
        try:
            self._take_away(lease.path, lease.token)
        except OSError:
            pass
        finally:
            try:
                os.close(lease.fd)
            except OSError:
                pass

    def _beat(self, lease: Lease) -> None:
        lease.beats += 1
        record = {"host": self.host, "pid": self.pid, "token": lease.token, "started": lease.started,
                  "heartbeat": time.time(), "beat": lease.beats}
        os.pwrite(lease.fd, json.dumps(record).encode().ljust(RECORD_SIZE), 0)
        os.fsync(lease.fd)  # another host sees the beat when it next opens the file (NFS close-to-open)

    def _heartbeats(self) -> None:
        while True:
            time.sleep(self.interval)
            # under the lock: a lease released meanwhile has its descriptor closed, and the number
            # may already name another file
            with self._lock:
                for lease in self._held.values():
                    try:
                        self._beat(lease)
                    except OSError:  # a disk gone read-only or full: the write of the result will say so
                        pass

    # ---- watching other workers' leases ---------------------------------------------------
    def read(self, name: str) -> tuple[bytes, Holder] | None:
        """The lease file's raw content and what it says; None when there is no lease."""
        try:
            raw = self.path(name).read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            holder = Holder(str(data["host"]), int(data["pid"]), str(data["token"]), float(data["heartbeat"]))
        except (ValueError, TypeError, KeyError):  # created a moment ago, its first beat not yet written
            holder = Holder("?", 0, "", 0.0)
        return raw, holder

    def break_stale(self, name: str, stale: Holder) -> bool:
        """Remove the lease judged stale (its holder's token ``stale.token``); True when this
        worker removed it, False when another breaker or the holder got there first."""
        try:
            return self._take_away(self.path(name), stale.token)
        except OSError:
            return False

    def _take_away(self, path: Path, token: str) -> bool:
        """Rename the lease to a private tombstone; keep it removed if it is the one with
        ``token``, else put it back. Only one of several renames of one file succeeds."""
        tomb = path.with_name(f"{path.name}.{secrets.token_hex(6)}.broken")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            return False
        try:
            data = json.loads(tomb.read_bytes())
            taken = data.get("token", "")
        except (OSError, ValueError, AttributeError):
            taken = ""
        if taken != token:  # a newer claimant's lease: give it back unless yet another exists
            try:
                os.link(tomb, path)
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise
        tomb.unlink(missing_ok=True)
        return taken == token


class Watch:
    """One waiter's view of another worker's lease: when its content last changed, by this
    process's monotonic clock."""

    def __init__(self, claims: Claims, name: str):
        self.claims, self.name = claims, name
        self.seen: bytes | None = None
        self.since = time.monotonic()
        self.holder: Holder | None = None

    def look(self) -> str:
        """``free`` (no lease), ``alive`` (its heartbeat moved within the grace period) or
        ``stale``."""
        found = self.claims.read(self.name)
        if found is None:
            self.seen, self.holder = None, None
            return "free"
        raw, self.holder = found
        if raw != self.seen:
            self.seen, self.since = raw, time.monotonic()
            return "alive"
        return "stale" if time.monotonic() - self.since > self.claims.grace else "alive"

    def silent(self) -> float:
        return time.monotonic() - self.since
