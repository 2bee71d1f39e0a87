"""A PostgreSQL server the tests start, restart and kill themselves.

The fault tests need to do to a server what must never be done to the shared
one: restart it, kill its postmaster. So they make their own: ``initdb`` into
a temporary folder, trust authentication, a free port on 127.0.0.1, small
``shared_buffers`` and ``fsync=off`` (nothing here needs to survive a crash of
the machine). Started once per test module and always removed::

    server = PrivatePostgres.start_new()   # or raises PrivateServerUnavailable
    try:
        server.url          # postgresql+asyncpg://postgres@127.0.0.1:<port>/app
        server.restart()    # pg_ctl restart -m fast
        server.kill()       # SIGKILL to the postmaster, children gone
        server.start()
    finally:
        server.remove()     # stop (immediate) and delete the folder

PostgreSQL refuses to run as root; when the tests do, every server command
runs as the ``postgres`` OS user (``runuser``), in a folder it owns.

``unavailable_reason()`` says why no server can be made here (binaries or
user missing). ``require_private_server()`` turns that into a skip, or into a
failure when ``CI=true``: CI must not pass by skipping the fault tests.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

SERVER_USER = "postgres"
COMMAND_TIMEOUT = 60
BINARY_FOLDERS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")
SETTINGS = {"listen_addresses": "127.0.0.1", "shared_buffers": "16MB", "fsync": "off",
            "full_page_writes": "off", "synchronous_commit": "off", "max_connections": "50",
            "log_min_messages": "warning"}


class PrivateServerUnavailable(Exception):
    """No private server can be started here; the message says why and what to install."""


def find_binaries() -> Path | None:
    """Return the folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for pattern in BINARY_FOLDERS:
        candidates.extend(Path(p) for p in sorted(glob.glob(pattern), reverse=True))
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def unavailable_reason() -> str | None:
    """Say why a private server cannot be started here, or None if it can."""
    if find_binaries() is None:
        return ("the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not on PATH "
                f"nor in {', '.join(BINARY_FOLDERS)}; install them (Debian: apt-get install "
                "postgresql) to run the fault tests against a private server")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return (f"the tests run as root, which PostgreSQL refuses, and there is no "
                    f"{SERVER_USER!r} OS user to run it as; create one (useradd -r postgres)")
        if shutil.which("runuser") is None:
            return "the tests run as root and 'runuser' (util-linux) is missing"
    return None


def require_private_server() -> None:
    """Skip when no private server can be made here, but fail when ``CI`` is ``true``."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        raise PrivateServerUnavailable(f"CI=true and {reason}; CI must run the fault tests, "
                                       "not skip them")
    raise unittest.SkipTest(reason)


def free_port() -> int:
    """Return a TCP port nobody listens on right now (the server binds it moments later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """One throwaway PostgreSQL cluster: its folder, port and postmaster."""

    def __init__(self, *, binaries: Path, folder: Path) -> None:
        self.binaries = binaries
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = free_port()

    @classmethod
    def start_new(cls) -> "PrivatePostgres":
        """Create a cluster in a new temporary folder and start it; remove it if that fails."""
        require_private_server()
        server = cls(binaries=find_binaries(), folder=_server_folder())
        atexit.register(server.remove)  # in case the caller's own removal never runs
        try:
            server._run("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--no-sync", "--no-instructions")
            server.start()
        except BaseException:
            server.remove()
            raise
        return server

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/app"

    # -- verbs -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the postmaster and wait until it accepts connections."""
        options = " ".join([f"-p {self.port}", f"-k {self.folder}",
                            *(f"-c {key}={value}" for key, value in SETTINGS.items())])
        self._run("pg_ctl", "start", "-w", "-t", str(COMMAND_TIMEOUT), "-D", str(self.data),
                  "-l", str(self.log), "-o", options)

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back and disconnect every session)."""
        self._run("pg_ctl", "stop", "-w", "-t", str(COMMAND_TIMEOUT), "-m", mode,
                  "-D", str(self.data))

    def restart(self, *, mode: str = "fast") -> None:
        """``pg_ctl restart``: every connection is closed by the server, then it is back."""
        self._run("pg_ctl", "restart", "-w", "-t", str(COMMAND_TIMEOUT), "-m", mode,
                  "-D", str(self.data), "-l", str(self.log))

    def kill(self) -> None:
        """SIGKILL the postmaster, as an OOM killer would; return once its children are gone.

        The backends notice their postmaster's death and exit on their own.
        Waiting for them, and for the dead postmaster to be reaped (its parent
        is init; a zombie still counts as "another postmaster running" for the
        next ``start()``), lets ``start()`` reuse the folder right away.
        """
        pid = self.postmaster_pid()
        if pid is None:
            return
        children = _children_of(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while any(_alive(child) for child in children) or Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"postmaster {pid} (or its children {children}) is still "
                                   f"there {COMMAND_TIMEOUT}s after SIGKILL; see {self.log}")
            time.sleep(0.05)

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, from ``postmaster.pid``; None when stopped."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def remove(self) -> None:
        """Stop the server at once (or kill it) and delete its folder; idempotent."""
        if self.postmaster_pid() is not None:
            try:
                self.stop(mode="immediate")
            except (subprocess.SubprocessError, RuntimeError):
                self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- running server commands -------------------------------------------------------

    def _run(self, program: str, *args: str) -> None:
        """Run a server program (as the ``postgres`` user when we are root); explain failures."""
        command = [str(self.binaries / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}"
                               f"{done.stderr}\n--- {self.log} ---\n{log}")


def _server_folder() -> Path:
    """A new temporary folder the server's OS user owns and can reach."""
    base = tempfile.gettempdir()
    if os.geteuid() == 0 and not os.stat(base).st_mode & 0o001:
        base = "/tmp"  # a private TMPDIR of root's is not reachable by the postgres user
    folder = Path(tempfile.mkdtemp(prefix="private_postgres_", dir=base))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    return folder


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (the postmaster's backends and helpers)."""
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.split("/")[2]))
    return children
