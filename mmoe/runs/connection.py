"""The run index's SQLite connections (one per thread), and what can go wrong with them, said in words.

Every ``sqlite3.Error`` the index raises -- on open, on a statement, on a fetch -- becomes one
``IndexFault`` (a ``StoreError``) that says what is wrong, where, and how to fix it:

    corrupt   "file is not a database", "database disk image is malformed" -> ``runs --repair``
    readonly  the folder or the file cannot be written  -> reading works, writing is refused
    cantopen  the file cannot be opened at all
    busy      another process held the write lock for the whole busy timeout
    full / io the disk is full / the file system failed
    missing   the index is missing or empty (0 bytes) but run folders exist -> ``runs --repair``

Read-only stores. A store whose folder or ``runs.sqlite`` this process may not write (a
colleague's store, a read-only volume) opens read-only: listing runs, Inspect, Compare and
``predict`` work; training, renaming and deleting raise an ``IndexFault`` (kind readonly) at once,
before any work. The file is opened with ``mode=ro``; a WAL database in a folder nobody may write
(no ``-shm`` file to share) is opened ``immutable=1`` (read as it is on disk). Nothing is written:
no interrupted runs are marked and no temporary files are removed.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from mmoe.runs.errors import IndexFault

BUSY_TIMEOUT_MS = 15_000


def run_folder_ids(home: Path) -> list[int]:
    """Ids of the run folders in ``home`` (folders named by a whole number), ascending."""
    try:
        entries = list(os.scandir(home))
    except OSError:
        return []
    return sorted(int(e.name) for e in entries if e.name.isdigit() and e.is_dir(follow_symlinks=False))


def repair_command(home: Path) -> str:
    return f"python -m mmoe runs --repair --store {home}"


def check_index(home: Path, db_path: Path) -> None:
    """Refuse to start a new index where one was lost: a missing or emptied (0-byte) ``runs.sqlite``
    beside run folders would otherwise become a new, empty index (and new runs would collide with
    the old folders)."""
    try:
        size = db_path.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError as e:
        raise IndexFault(f"cannot read the run index {db_path} ({e.strerror or e}); check its permissions "
                         "or use another --store", "cantopen") from None
    if size:
        return
    folders = run_folder_ids(home)
    if folders:
        state = "missing" if size is None else "empty (0 bytes)"
        raise IndexFault(f"the run index {db_path} is {state} but {len(folders)} run folder"
                         f"{'s' if len(folders) != 1 else ''} exist in {home}; nothing was changed. Rebuild the index "
                         f"from them with: {repair_command(home)}", "missing")


def writable(home: Path, db_path: Path) -> bool:
    """May this process write the store? (the folder, for the journal files, and the database)"""
    if not os.access(home, os.W_OK | os.X_OK):
        return False
    return not db_path.exists() or os.access(db_path, os.W_OK)


def translate(e: sqlite3.Error, db_path: Path) -> IndexFault:
    """One SQLite error as one clear line: what, where, how to fix it."""
    name = getattr(e, "sqlite_errorname", "") or ""
    home = db_path.parent
    what = str(e) or type(e).__name__
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in what or "malformed" in what:
        return IndexFault(f"the run index {db_path} is damaged ({what}); nothing was changed. Rebuild it from the "
                          f"run folders with: {repair_command(home)} (the damaged file is kept beside it)", "corrupt")
    if name.startswith("SQLITE_READONLY") or "readonly" in what:
        return readonly_fault(db_path, what)
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in what:
        return IndexFault(f"cannot open the run index {db_path} ({what}); check that the folder exists and that "
                          "you may read it, or use another --store", "cantopen")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in what:
        return IndexFault(f"the run index {db_path} stayed locked by another process for "
                          f"{BUSY_TIMEOUT_MS // 1000} s ({what}); try again when it has finished writing", "busy")
    if name.startswith("SQLITE_FULL") or "full" in what:
        return IndexFault(f"the disk holding the run index {db_path} is full ({what}); free some space and try "
                          "again", "full")
    if name.startswith("SQLITE_IOERR") or "disk I/O" in what:
        return IndexFault(f"could not read or write the run index {db_path} ({what}); check the disk and its "
                          "file system", "io")
    return IndexFault(f"the run index {db_path} failed: {what}", "other")


def readonly_fault(db_path: Path, why: str = "no write permission") -> IndexFault:
    return IndexFault(f"the run store {db_path.parent} is read-only ({why}): listing and inspecting runs work, "
                      "training, renaming and deleting do not; make the folder and its runs.sqlite writable "
                      "(chmod u+w) or use another --store", "readonly")


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose statements and fetches raise ``IndexFault`` instead of ``sqlite3.Error``."""

    db_path: Path

    def _fault(self, e: sqlite3.Error) -> IndexFault:
        return translate(e, self.connection.db_path)

    def execute(self, *args):
        try:
            return super().execute(*args)
        except sqlite3.Error as e:
            raise self._fault(e) from None

    def executemany(self, *args):
        try:
            return super().executemany(*args)
        except sqlite3.Error as e:
            raise self._fault(e) from None

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.Error as e:
            raise self._fault(e) from None

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            raise self._fault(e) from None


class GuardedConnection(sqlite3.Connection):
    """A connection that knows its file and raises ``IndexFault`` for every SQLite error."""

    db_path: Path

    def cursor(self, factory=GuardedCursor):
        return super().cursor(factory)

    def execute(self, sql, parameters=()):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, parameters):
        return self.cursor().executemany(sql, parameters)


def connect(db_path: Path, *, read_only: bool = False, immutable: bool = False) -> GuardedConnection:
    """A connection to the index (autocommit; transactions are explicit), Row rows, busy timeout."""
    if read_only:
        target, uri = f"file:{quote(str(db_path))}?{'immutable=1' if immutable else 'mode=ro'}", True
    else:
        target, uri = str(db_path), False
    try:
        con = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                              check_same_thread=False, uri=uri, factory=GuardedConnection)
    except sqlite3.Error as e:
        raise translate(e, db_path) from None
    con.db_path = db_path
    con.row_factory = sqlite3.Row
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    con.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        con.execute("PRAGMA synchronous = NORMAL")
    return con


class _Conn:
    """Holder that closes its connection when the owning thread's local storage dies."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()

    def __del__(self) -> None:
        self.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class ConnectionIO:
    """The connection methods of ``RunStore`` (which provides ``db_path`` and ``read_only``)."""

    db_path: Path
    read_only: bool = False
    immutable: bool = False

    def _init_connections(self) -> None:
        self._local = threading.local()
        self._conns: "weakref.WeakSet[_Conn]" = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._opened_identity = _identity(self.db_path)

    def _con(self) -> sqlite3.Connection:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            holder = _Conn(connect(self.db_path, read_only=self.read_only, immutable=self.immutable))
            self._local.holder = holder
            with self._conns_lock:
                self._conns.add(holder)
        return holder.con

    def require_writable(self) -> None:
        """Raise the read-only ``IndexFault`` when this store may not be written."""
        if self.read_only:
            raise readonly_fault(self.db_path)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: take the write lock up front)."""
        self.require_writable()
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            with contextlib.suppress(Exception):   # a failed COMMIT/statement may have ended it already
                con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (any thread). Reopened lazily on use."""
        with self._conns_lock:
            holders = list(self._conns)
            self._conns = weakref.WeakSet()
        for h in holders:
            h.close()
        self._local = threading.local()

    def index_replaced(self) -> bool:
        """Was ``runs.sqlite`` replaced (``runs --repair``) or removed since this store opened it?"""
        return _identity(self.db_path) != self._opened_identity
