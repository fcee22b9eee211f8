"""A run's result as ONE blob, the same bytes on every machine that runs the same job.

Owns the rule (docs/agent.md, "The result"): `/out` empty → no result; exactly one regular
file directly in `/out` → that file's bytes; anything else → a ustar archive of `/out` with
entries in bytewise order of their paths, directories before their contents, mtime 0, uid and
gid 0, no user or group names, mode 0755 for directories and 0644 for files. A symlink, a
special file, or a name ustar cannot hold is refused: the workload produced something the
agent will not ship (a workload fault, reported as a trap). The result digest is SHA-256 of
the blob.

Does not own: counting the output against its cap (orbitq.clients.agent.sandbox), which runs
first: a run over its cap is never packed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from orbitq.clients.agent.sandbox import OUTPUT_ENTRIES_MAX

_COPY_BYTES = 1024 * 1024


class OutputRefusedError(ValueError):
    """`/out` holds something that is not packed into a result; the message says what."""


@dataclass(frozen=True)
class Packed:
    """The result blob: where it is, its SHA-256 and size (None and 0: no result)."""

    path: Path | None
    sha256: bytes | None
    size: int


def pack(out_dir: Path, dest: Path) -> Packed:
    """Write the result of `out_dir` to `dest` (replaced); OutputRefusedError when it cannot."""
    dest.unlink(missing_ok=True)
    entries = _entries(out_dir)
    if not entries:
        return Packed(None, None, 0)
    if len(entries) == 1 and not entries[0][1].is_dir():
        _copy(entries[0][1], dest)
    else:
        _archive(entries, dest)
    digest, size = file_sha256(dest)
    return Packed(dest, digest, size)


def file_sha256(path: Path) -> tuple[bytes, int]:
    """SHA-256 and size of a file, read in bounded blocks."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while block := file.read(_COPY_BYTES):
            hasher.update(block)
            size += len(block)
    return hasher.digest(), size


def _entries(out_dir: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of everything under out_dir, sorted bytewise; a bounded walk that
    never follows a link."""
    found: list[tuple[str, Path]] = []
    stack = [(out_dir, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as listing:
            for entry in listing:
                name = prefix + entry.name
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append((Path(entry.path), name + "/"))
                elif not stat.S_ISREG(mode):
                    kind = "a symlink" if stat.S_ISLNK(mode) else "a special file"
                    raise OutputRefusedError(f"/out/{name} is {kind}: only files and directories")
                found.append((name, Path(entry.path)))
                if len(found) > OUTPUT_ENTRIES_MAX:
                    raise OutputRefusedError(f"/out holds over {OUTPUT_ENTRIES_MAX} entries")
    found.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    return found


def _copy(source: Path, dest: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, dest.open("wb") as writer:
        while block := reader.read(_COPY_BYTES):
            writer.write(block)


def _archive(entries: list[tuple[str, Path]], dest: Path) -> None:
    try:
        with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT, encoding="utf-8") as archive:
            for name, path in entries:
                _add(archive, name, path)
    except (UnicodeEncodeError, ValueError) as error:
        dest.unlink(missing_ok=True)
        if isinstance(error, OutputRefusedError):
            raise
        raise OutputRefusedError(f"/out has a name a ustar archive cannot hold: {error}") from None


def _add(archive: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        archive.addfile(info)
        return
    info.mode = 0o644
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader:
        info.size = os.fstat(reader.fileno()).st_size
        archive.addfile(info, reader)
