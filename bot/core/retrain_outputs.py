"""What a retrain changed: the files under `retrain.outputs` before and after it, as git blobs."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.core.changes import matches

# git's modes of the files a retrain may commit: plain, executable, symbolic link.
REGULAR, EXECUTABLE, SYMLINK = "100644", "100755", "120000"
FILE_MODES = (REGULAR, EXECUTABLE, SYMLINK)
# What one retrain may commit through the API: outputs are pointers and small files (DVC
# keeps the large ones in its cache); GitHub's blob limit is 100 MB, sent base64 in JSON.
MAX_OUTPUT_BYTES = 10 * 1024 * 1024
MAX_OUTPUT_FILES = 300


@dataclass(frozen=True)
class BlobFile:
    """A file as git stores it: its mode and the sha of its blob."""

    mode: str
    sha: str


@dataclass(frozen=True)
class OutputChange:
    """One file to commit: its new mode and content, or `content` None to delete it."""

    path: str
    mode: str
    content: bytes | None

    @property
    def sha(self) -> str | None:
        return blob_sha(self.content) if self.content is not None else None

    @property
    def deleted(self) -> bool:
        return self.content is None


@dataclass(frozen=True)
class PushedFile:
    """One file a retrain pipeline pushed itself (`runner: semaphore`): its blob sha as
    GitHub's compare lists it, or `sha` None when the push deleted it."""

    path: str
    sha: str | None

    @property
    def deleted(self) -> bool:
        return self.sha is None


# A file a retrain changed: committed by mlgate, or pushed by the retrain pipeline.
ChangedFile = OutputChange | PushedFile


def blob_sha(content: bytes) -> str:
    """The sha git gives `content` as a blob (`git hash-object`)."""
    header = b"blob %d\x00" % len(content)
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def output_changes(
    before: Mapping[str, BlobFile],
    after: Mapping[str, tuple[str, bytes]],
    patterns: Sequence[str],
) -> tuple[OutputChange, ...]:
    """The files matching `patterns` that differ between the commit (`before`, path → blob)
    and the work tree after the retrain (`after`, path → (mode, content)), sorted by path:
    new or changed ones with their content, vanished ones as deletions."""
    changes = []
    for path in sorted({*before, *after}):
        if not matches(path, patterns):
            continue
        old = before.get(path)
        if path in after:
            mode, content = after[path]
            if old is not None and old == BlobFile(mode, blob_sha(content)):
                continue
            changes.append(OutputChange(path, mode, content))
        elif old is not None and old.mode in FILE_MODES:
            changes.append(OutputChange(path, old.mode, None))
    return tuple(changes)


def merges_own_retrain(
    data_paths: Collection[str],
    committed: Mapping[str, str | None],
    at_commit: Mapping[str, BlobFile],
) -> bool:
    """Whether every data path a push changed holds exactly what mlgate's last retrain commit
    wrote there (`committed`, path → blob sha or None for deleted): the push merged that
    retrain, and retraining on it would only start the loop again."""
    if not data_paths:
        return False
    for path in data_paths:
        if path not in committed:
            return False
        now = at_commit.get(path)
        if (now.sha if now is not None else None) != committed[path]:
            return False
    return True
