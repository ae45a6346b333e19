"""The ``aetiket`` command end to end (DESIGN.md, "CLI").

Every command runs as a subprocess (``python -m aetiket ...``) with an environment of its
own: ``AETIKET_HOME`` and ``AETIKET_CONFIG_DIR`` under the test's tmp_path and no
``ETIKET_*``/``AETIKET_*`` variable from the outer environment. The servers are real
``aetiket serve`` processes (tests/conftest.py), or the embedded local server the command
starts itself when no server is configured. Setup the CLI does not offer (a scope, a user,
a file record) goes through the HTTP API with urllib.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
SMALL_FILES = 300
BIG_FILES = 2
BIG_SIZE = 64 * MiB
# Exit codes (aetiket.cli.EXIT), spelled out: the documented contract, not the module's copy.
FAILED, USAGE, AUTH, ACCESS, UNREACHABLE, INTERRUPTED = 1, 2, 3, 4, 5, 130


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------- data


def write_small_tree(root: Path, count: int, seed: int) -> None:
    """``count`` random files of 1..8 KiB, spread over nested subfolders."""
    rng = random.Random(seed)
    for i in range(count):
        folder = root / f"run{i % 4}" / f"sweep{i % 7}"
        if i % 3 == 0:
            folder = folder / "deeper"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"trace_{i:04d}.dat").write_bytes(rng.randbytes(rng.randint(1024, 8192)))


def digests(root: Path) -> dict[str, str]:
    """Relative path (with ``/``) -> SHA-256 of every file under ``root``."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(4 * MiB):
                    digest.update(block)
            out[path.relative_to(root).as_posix()] = digest.hexdigest()
    return out


def total_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 small random files in nested folders and 2 random files of 64 MiB."""
    root = tmp_path_factory.mktemp("big") / "measurement"
    write_small_tree(root, SMALL_FILES, seed=1)
    (root / "raw").mkdir()
    for i in range(BIG_FILES):
        with open(root / "raw" / f"scan{i}.bin", "wb") as f:
            for _ in range(BIG_SIZE // (8 * MiB)):
                f.write(os.urandom(8 * MiB))
    return root


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "sample"
    write_small_tree(root, 40, seed=2)
    return root


# ---------------------------------------------------------------------------- the command


@dataclasses.dataclass
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"aetiket {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"
        )

    def ok(self) -> Run:
        assert self.code == 0, str(self)
        return self

    def json(self) -> Any:
        """The command succeeded and printed one JSON document (failed items shown if not)."""
        try:
            doc = json.loads(self.out)
        except ValueError:
            doc = None
        if self.code != 0 and isinstance(doc, dict) and doc.get("items"):
            failed = [i for i in doc["items"] if i.get("status") == "failed"]
            summary = {k: v for k, v in doc.items() if k != "items"}
            raise AssertionError(
                f"aetiket {' '.join(self.args)} -> exit {self.code}: {summary}\n"
                f"failed: {failed}\n--- stderr\n{self.err[-3000:]}"
            )
        self.ok()
        assert doc is not None, str(self)
        return doc

    def last_line(self) -> str:
        lines = self.out.strip().splitlines()
        assert lines, str(self)
        return lines[-1]

    def error(self, code: int) -> str:
        """The command failed with ``code`` and said why in one line (no traceback)."""
        assert self.code == code, f"expected exit {code}\n{self}"
        assert "Traceback" not in self.err, str(self)
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line on stderr\n{self}"
        assert lines[0].startswith("aetiket"), str(self)
        return lines[0]


@dataclasses.dataclass
class Cli:
    """``python -m aetiket`` with an environment of its own."""

    home: Path
    config: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "aetiket", *args]

    def environ(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {**self.env, **(extra or {})}

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Run:
        proc = subprocess.run(
            self.command(*args),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.environ(env),
            cwd=self.home.parent,
            timeout=timeout,
            check=False,
        )
        return Run(args, proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ(env),
            cwd=self.home.parent,
        )

    def login(self, url: str, username: str, password: str) -> Run:
        return self.run(
            "login", "--url", url, "--username", username, "--password-stdin", stdin=password + "\n"
        )

    def saved_files(self) -> list[Path]:
        return [p for p in self.config.rglob("*") if p.is_file()] if self.config.exists() else []


def clean_env(tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETIKET_", "AETIKET_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        AETIKET_HOME=str(tmp / "home"),
        AETIKET_CONFIG_DIR=str(tmp / "config"),
        XDG_CONFIG_HOME=str(tmp / "xdg-config"),
        XDG_DATA_HOME=str(tmp / "xdg-data"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    workdir = tmp_path / "cli"
    workdir.mkdir()
    return Cli(home=workdir / "home", config=workdir / "config", env=clean_env(workdir))


# ---------------------------------------------------------------------------- the API, for setup


class Api:
    """Plain HTTP calls (urllib, no proxy) for what the CLI does not do."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self._open = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
        form = urllib.parse.urlencode({"username": username, "password": password}).encode()
        self.token: str = self.call("POST", "/api/v1/token", form=form)["access_token"]

    def call(self, method: str, path: str, body: Any = None, form: bytes | None = None) -> Any:
        headers = {}
        data = form
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with self._open(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def status(self, method: str, path: str) -> int:
        try:
            self.call(method, path)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

    def scope(self, scope: str) -> None:
        self.call("POST", "/api/v1/scopes/", {"name": scope, "description": "cli tests"})

    def user(self, username: str, password: str) -> None:
        self.call(
            "POST",
            "/api/v1/users/",
            {
                "username": username,
                "firstname": "Cli",
                "lastname": "Tester",
                "email": f"{username}@example.org",
                "hashed_password": password,
            },
        )

    def dataset(self, scope: str, uid: str, files: list[tuple[str, str]]) -> None:
        self.call(
            "POST",
            "/api/v1/datasets/",
            {
                "name": "cli",
                "uid": uid,
                "scope": scope,
                "files": [{"name": n, "uid": u} for n, u in files],
            },
        )


def admin_api(srv: ServerProcess) -> Api:
    return Api(srv.url, srv.admin_user, srv.admin_password)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def logged_in(cli: Cli, srv: ServerProcess) -> None:
    cli.login(srv.url, srv.admin_user, srv.admin_password).ok()


# ---------------------------------------------------------------------------- login


def test_login_saves_tokens_0600_without_the_password(server: ServerProcess, cli: Cli) -> None:
    run = cli.login(server.url, server.admin_user, server.admin_password).ok()
    assert server.admin_password not in run.out + run.err
    saved = cli.saved_files()
    assert saved, f"nothing saved under {cli.config}\n{run}"
    for path in saved:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is {path.stat().st_mode:o}"
        assert server.admin_password.encode() not in path.read_bytes(), f"{path} holds it"
    # The saved login is used: no URL, no environment, and the server's scopes come back.
    assert isinstance(cli.run("ls", "--json").json(), list)


def test_wrong_password_is_an_auth_error_and_saves_nothing(server: ServerProcess, cli: Cli) -> None:
    run = cli.login(server.url, server.admin_user, "not-the-password")
    line = run.error(AUTH)
    assert "not-the-password" not in line
    assert cli.saved_files() == []


# ---------------------------------------------------------------------------- push and pull


def test_push_to_a_missing_scope_is_an_error(
    server: ServerProcess, cli: Cli, small_tree: Path
) -> None:
    logged_in(cli, server)
    scope = name("nosuch")
    line = cli.run("push", str(small_tree), "--scope", scope).error(ACCESS)
    assert scope in line
    assert admin_api(server).status("GET", f"/api/v1/scopes/{scope}") == 404, (
        "push created a scope on a real server"
    )


@pytest.mark.slow
def test_push_pull_round_trip(
    server: ServerProcess, cli: Cli, big_tree: Path, tmp_path: Path
) -> None:
    logged_in(cli, server)
    scope = name("cli")
    admin_api(server).scope(scope)
    source = digests(big_tree)
    assert len(source) == SMALL_FILES + BIG_FILES

    push = cli.run("push", str(big_tree), "--scope", scope, "--json").json()
    dataset = push["dataset"]
    got_scope, _, uid = dataset.partition("/")
    assert got_scope == scope and uid and "/" not in uid, push["dataset"]
    assert push["files"] == len(source)
    assert push["uploaded_bytes"] == total_size(big_tree)
    assert (push["skipped"], push["failed"]) == (0, 0), [
        i for i in push.get("items", []) if i.get("status") != "uploaded"
    ]

    dest = tmp_path / "pulled"
    pull = cli.run("pull", dataset, str(dest), "--json").json()
    assert pull["dataset"] == dataset
    assert (pull["files"], pull["failed"]) == (len(source), 0)
    assert pull["downloaded_bytes"] == total_size(big_tree)
    assert digests(dest) == source

    again = cli.run("push", str(big_tree), "--scope", scope, "--json").json()
    assert again["dataset"] == dataset
    assert (again["uploaded_bytes"], again["skipped"], again["failed"]) == (0, len(source), 0)

    plain = cli.run("push", str(big_tree), "--scope", scope).ok()
    assert plain.last_line() == dataset, str(plain)

    repull = cli.run("pull", dataset, str(dest), "--json").json()
    assert (repull["downloaded_bytes"], repull["skipped"], repull["failed"]) == (0, len(source), 0)
    assert digests(dest) == source


def test_push_names_a_broken_link_and_exits_failed(
    server: ServerProcess, cli: Cli, tmp_path: Path
) -> None:
    logged_in(cli, server)
    scope = name("cli")
    admin_api(server).scope(scope)
    folder = tmp_path / "with-link"
    folder.mkdir()
    (folder / "kept.txt").write_bytes(b"kept")
    (folder / "broken").symlink_to(tmp_path / "gone")
    why = f"aetiket: broken: a broken link (to {tmp_path / 'gone'}): No such file or directory"

    # A dry run says so before anything moves; the push itself moves the rest.
    assert cli.run("push", str(folder), "--scope", scope, "--dry-run").error(FAILED) == why
    push = cli.run("push", str(folder), "--scope", scope)
    assert push.error(FAILED) == why
    assert push.out.splitlines()[0].startswith("1 uploaded, 0 skipped, 1 failed"), str(push)


def test_ls_lists_scopes_datasets_and_files(
    server: ServerProcess, cli: Cli, small_tree: Path
) -> None:
    logged_in(cli, server)
    scope = name("ls")
    admin_api(server).scope(scope)
    push = cli.run("push", str(small_tree), "--scope", scope).ok()
    dataset = push.last_line()
    assert dataset.startswith(f"{scope}/"), str(push)
    uid = dataset.split("/", 1)[1]
    names = set(digests(small_tree))

    scopes = cli.run("ls").ok()
    assert scope in [
        line.split("\t")[0].split()[0] for line in scopes.out.splitlines() if line.strip()
    ], str(scopes)
    assert scope in {s["name"] for s in cli.run("ls", "--json").json()}

    datasets = cli.run("ls", scope).ok()
    assert [line for line in datasets.out.splitlines() if line.strip()], str(datasets)
    assert dataset in datasets.out, str(datasets)
    assert [d["uid"] for d in cli.run("ls", scope, "--json").json()] == [uid]

    files = cli.run("ls", dataset).ok()
    listed = [line for line in files.out.splitlines() if line.strip()]
    assert len(listed) == len(names), str(files)
    assert {line.split("\t")[-1] for line in listed} == names, str(files)
    doc = cli.run("ls", dataset, "--json").json()
    assert doc["uid"] == uid and doc["scope"] == scope
    assert {f["name"] for f in doc["files"]} == names
    assert {f["status"] for f in doc["files"]} == {"available"}


def test_upload_and_download_one_file(server: ServerProcess, cli: Cli, tmp_path: Path) -> None:
    logged_in(cli, server)
    api = admin_api(server)
    scope, ds, fuid = name("one"), name("ds"), name("f")
    api.scope(scope)
    api.dataset(scope, ds, [("blob.bin", fuid)])
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(5 * MiB + 123))

    up = cli.run("upload", str(src), "--scope", scope, "--file-uid", fuid, "--json").json()
    assert up["uploaded_bytes"] == src.stat().st_size, up
    record = api.call("GET", f"/api/v1/uploads/{scope}/{fuid}")
    assert record["status"] == "available"
    assert record["etag"] == hashlib.sha256(src.read_bytes()).hexdigest()

    dest = tmp_path / "out" / "blob.bin"
    dest.parent.mkdir()
    down = cli.run("download", f"{scope}/{fuid}", str(dest), "--json").json()
    assert down["downloaded_bytes"] == src.stat().st_size, down
    assert dest.read_bytes() == src.read_bytes()


def test_environment_overrides_the_saved_login(
    server: ServerProcess, make_server: Callable[..., ServerProcess], cli: Cli
) -> None:
    logged_in(cli, server)  # saved: the session server
    other = make_server()
    api = admin_api(other)
    only_there = name("elsewhere")
    api.scope(only_there)
    saved = {p: p.read_bytes() for p in cli.saved_files()}

    env = {"ETIKET_URL": other.url, "ETIKET_TOKEN": api.token}
    assert only_there in {s["name"] for s in cli.run("ls", "--json", env=env).json()}
    # The flag beats the environment, which beats the saved login.
    flag = cli.run(
        "ls",
        "--json",
        "--url",
        other.url,
        env={"ETIKET_URL": server.url, "ETIKET_TOKEN": api.token},
    ).json()
    assert only_there in {s["name"] for s in flag}
    # ETIKET_TOKEN alone replaces the saved token for the saved server.
    cli.run("ls", env={"ETIKET_TOKEN": "not-a-token"}).error(AUTH)
    assert {p: p.read_bytes() for p in cli.saved_files()} == saved, "the saved login changed"
    assert only_there not in {s["name"] for s in cli.run("ls", "--json").json()}


# ---------------------------------------------------------------------------- embedded


def test_embedded_server_when_nothing_is_configured(
    cli: Cli, small_tree: Path, tmp_path: Path
) -> None:
    scope = name("local")
    push = cli.run("push", str(small_tree), "--scope", scope).ok()
    said = [line for line in push.err.splitlines() if line.strip()]
    assert len(said) == 1 and "embedded local server" in said[0], str(push)
    dataset = push.last_line()
    assert dataset.startswith(f"{scope}/"), str(push)

    dest = tmp_path / "pulled"
    pull = cli.run("pull", dataset, str(dest)).ok()
    assert len([ln for ln in pull.err.splitlines() if "embedded local server" in ln]) == 1
    assert digests(dest) == digests(small_tree)

    listing = cli.run("ls", dataset, "--json").json()
    links = {urllib.parse.urlsplit(f["download_link"]) for f in listing["files"]}
    ports = {link.port for link in links}
    assert {link.hostname for link in links} == {"127.0.0.1"} and len(ports) == 1, links
    port = ports.pop()
    assert port is not None and not port_open(port), f"port {port} still open after the command"
    assert (cli.home / "server").is_dir(), "the embedded server keeps its data in AETIKET_HOME"


# ---------------------------------------------------------------------------- interrupt


@pytest.mark.slow
def test_sigint_mid_push_then_the_same_command_resumes(
    server: ServerProcess, cli: Cli, big_tree: Path, tmp_path: Path
) -> None:
    logged_in(cli, server)
    scope = name("sigint")
    admin_api(server).scope(scope)
    args = ("push", str(big_tree), "--scope", scope, "--uid", name("ds"), "--json")
    uploads = server.data_dir / "uploads"
    before = set(uploads.iterdir()) if uploads.exists() else set()

    proc = cli.start(*args)
    started = time.monotonic()
    partial = False
    while time.monotonic() - started < 15 and proc.poll() is None:
        if uploads.exists():
            for path in set(uploads.iterdir()) - before:
                with contextlib.suppress(FileNotFoundError):  # a part just joined
                    partial = partial or path.stat().st_size >= 4 * MiB
        if partial:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the push ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    interrupted = Run(args, proc.returncode, out, err)
    line = interrupted.error(INTERRUPTED)
    assert "interrupted" in line, str(interrupted)

    again = cli.run(*args)
    doc = again.json()
    assert (doc["files"], doc["failed"]) == (SMALL_FILES + BIG_FILES, 0), [
        i for i in doc["items"] if i["status"] == "failed"
    ]
    dest = tmp_path / "pulled"
    pull = cli.run("pull", doc["dataset"], str(dest), "--json").json()
    assert pull["failed"] == 0, [i for i in pull["items"] if i["status"] == "failed"]
    assert digests(dest) == digests(big_tree)


# ---------------------------------------------------------------------------- bad input


def test_missing_path_is_a_usage_error(server: ServerProcess, cli: Cli, tmp_path: Path) -> None:
    logged_in(cli, server)
    missing = tmp_path / "no-such-folder"
    assert str(missing) in cli.run("push", str(missing), "--scope", "any").error(USAGE)
    assert str(missing) in cli.run(
        "upload", str(missing), "--scope", "any", "--file-uid", "x"
    ).error(USAGE)


def test_not_a_member_is_an_access_error(
    server: ServerProcess, cli: Cli, small_tree: Path, tmp_path: Path
) -> None:
    api = admin_api(server)
    user, password, scope = name("user"), "user-pw-" + uuid.uuid4().hex, name("private")
    api.user(user, password)
    api.scope(scope)  # the admin is its only member
    cli.login(server.url, user, password).ok()
    cli.run("push", str(small_tree), "--scope", scope).error(ACCESS)
    cli.run("ls", scope).error(ACCESS)
    cli.run("pull", f"{scope}/anything", str(tmp_path / "out")).error(ACCESS)


def test_server_down_is_unreachable(
    server: ServerProcess, make_server: Callable[..., ServerProcess], cli: Cli, small_tree: Path
) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    cli.run("login", "--url", down, "--username", "admin", "--password-stdin", stdin="pw\n").error(
        UNREACHABLE
    )
    cli.run(
        "push", str(small_tree), "--scope", "any", "--url", down, env={"ETIKET_TOKEN": "some-token"}
    ).error(UNREACHABLE)
    # A saved login whose server has gone away.
    gone = make_server()
    logged_in(cli, gone)
    gone.stop()
    cli.run("push", str(small_tree), "--scope", "any").error(UNREACHABLE)


@pytest.mark.parametrize("meta", ["novalue", "=value", "k=too-short-key"])
def test_invalid_meta_is_a_usage_error(
    server: ServerProcess, cli: Cli, small_tree: Path, meta: str
) -> None:
    logged_in(cli, server)
    scope = name("meta")
    admin_api(server).scope(scope)
    cli.run("push", str(small_tree), "--scope", scope, "--meta", meta).error(USAGE)


@pytest.mark.parametrize(
    "command",
    [
        ("pull", "no-slash", "DEST"),
        ("pull", "a/b/c", "DEST"),
        ("pull", "/uid", "DEST"),
        ("pull", "scope/", "DEST"),
        ("download", "no-slash", "DEST"),
        ("ls", "a/b/c"),
    ],
)
def test_malformed_reference_is_a_usage_error(
    server: ServerProcess, cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    logged_in(cli, server)
    args = [str(tmp_path / "dest") if a == "DEST" else a for a in command]
    cli.run(*args).error(USAGE)
