"""The Git Data API on the emulator's real git repositories: blobs, trees, commits, refs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from bot.emulator.api_calls import (
    ApiError,
    Call,
    Reply,
    json_object,
    required_repo,
    string_field,
    validation_failed,
)
from bot.emulator.git_repo import CommitInfo, GitError, Identity, TreeEdit
from bot.emulator.github_models import JSON, EmulatedRepo, utc
from bot.emulator.github_state import HTML_BASE, GitHubState

# The object type each tree-entry mode holds ("Create a tree": mode and type must agree).
MODE_TYPES = {
    "100644": "blob",
    "100755": "blob",
    "120000": "blob",
    "040000": "tree",
    "160000": "commit",
}
# GitHub's messages for refused Git Data writes, verbatim.
MSG_NO_OBJECT = "Object does not exist"
MSG_REF_EXISTS = "Reference already exists"
MSG_NO_REF = "Reference does not exist"
MSG_NOT_FAST_FORWARD = "Update is not a fast forward"
MSG_NO_TREE = "Tree SHA does not exist"
MSG_BAD_PARENT = "Parent SHA does not exist or is not a commit object"
UNSIGNED = {
    "verified": False,
    "reason": "unsigned",
    "signature": None,
    "payload": None,
    "verified_at": None,
}


class GitData:
    """Handlers of the Git Data API; every write lands in the repository's git objects and
    refs, so contents, compare and PRs read it back."""

    def __init__(self, emu: GitHubState) -> None:
        self.emu = emu

    def handlers(self) -> dict[str, Callable[[Call], Reply]]:
        return {
            "git/create-blob": self.create_blob,
            "git/create-tree": self.create_tree,
            "git/create-commit": self.create_commit,
            "git/create-ref": self.create_ref,
            "git/update-ref": self.update_ref,
            "git/get-ref": self.get_ref,
        }

    def _api(self, repo: EmulatedRepo, path: str) -> str:
        return f"{self.emu.url}/repos/{repo.full_name}{path}"

    # -- blobs and trees ----------------------------------------------------------------------

    def create_blob(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        content = string_field(body, "content", "Blob", required=True)
        encoding = body.get("encoding") or "utf-8"
        if encoding in ("utf-8", "utf8"):
            data = content.encode()
        elif encoding == "base64":
            try:
                # Clients wrap base64 at 60 or 76 characters; the line breaks carry nothing.
                data = base64.b64decode("".join(content.split()), validate=True)
            except binascii.Error:
                raise validation_failed("Blob", "content", "content is not valid Base64.") from None
        else:
            raise validation_failed(
                "Blob", "encoding", f"encoding must be utf-8 or base64, not {encoding!r}."
            )
        sha = repo.git.write_blob(data)
        url = self._api(repo, f"/git/blobs/{sha}")
        return Reply(201, {"url": url, "sha": sha}, headers={"Location": url})

    def create_tree(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        entries = body.get("tree")
        if not isinstance(entries, list):
            raise validation_failed("Tree", "tree", "tree wasn't supplied.", "missing_field")
        base_tree = body.get("base_tree")
        if base_tree is not None:
            if not isinstance(base_tree, str):
                raise validation_failed("Tree", "base_tree", "base_tree is not a string.")
            if repo.git.object_types([base_tree])[base_tree] != "tree":
                raise ApiError(422, f"base_tree {base_tree} is not a tree in this repository.")
        parsed = [self._tree_edit(i, entry) for i, entry in enumerate(entries)]
        # Entries given by content become blobs first, all in one git process.
        written = iter(repo.git.write_blobs([c.encode() for _, c in parsed if c is not None]))
        edits = [
            replace(edit, sha=next(written)) if content is not None else edit
            for edit, content in parsed
        ]
        named = [e.sha for e in edits if e.sha is not None and e.type != "commit"]
        kinds = repo.git.object_types(named)
        for i, edit in enumerate(edits):
            # A submodule's commit lives in another repository: only blobs and trees must exist.
            if edit.sha is not None and edit.type != "commit" and kinds.get(edit.sha) != edit.type:
                raise validation_failed(
                    "Tree", f"tree[{i}].sha", f"{edit.sha} is not a {edit.type} of this repository."
                )
        try:
            sha = repo.git.write_tree(base_tree, edits)
        except (GitError, ValueError) as exc:
            raise ApiError(422, f"Invalid tree: {exc}") from None
        url = self._api(repo, f"/git/trees/{sha}")
        return Reply(201, self.tree_json(repo, sha), headers={"Location": url})

    def _tree_edit(self, index: int, entry: object) -> tuple[TreeEdit, str | None]:
        """The edit an entry asks for, and the content to write for it (its sha then)."""
        field = f"tree[{index}]"
        if not isinstance(entry, dict):
            raise validation_failed("Tree", field, f"{field} is not an object.")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise validation_failed(
                "Tree", f"{field}.path", "path wasn't supplied.", "missing_field"
            )
        mode = entry.get("mode", "100644")
        kind = entry.get("type", MODE_TYPES.get(str(mode), "blob"))
        if MODE_TYPES.get(str(mode)) != kind:
            raise validation_failed(
                "Tree", f"{field}.mode", f"mode {mode} does not hold a {kind} (type {kind})."
            )
        has_sha, has_content = "sha" in entry, entry.get("content") is not None
        if has_sha and has_content:
            # "Use either tree.sha or content ... Using both will return an error."
            raise validation_failed(
                "Tree", f"{field}.content", "Use either tree.sha or tree.content, not both."
            )
        if has_content:
            if kind != "blob" or not isinstance(entry["content"], str):
                raise validation_failed(
                    "Tree", f"{field}.content", "content is only for blobs, as a string."
                )
            return TreeEdit(path, str(mode), kind, None), entry["content"]
        if not has_sha:
            raise validation_failed(
                "Tree",
                f"{field}.sha",
                "Must supply either tree.sha or tree.content.",
                "missing_field",
            )
        sha = entry["sha"]
        if sha is not None and not isinstance(sha, str):
            raise validation_failed("Tree", f"{field}.sha", "sha is not a string.")
        # "If the value is null then the file will be deleted."
        return TreeEdit(path, str(mode), kind, sha), None

    def tree_json(self, repo: EmulatedRepo, sha: str) -> JSON:
        """A tree object: its entries, not recursive."""
        entries = []
        for entry in repo.git.tree_entries(sha):
            item: JSON = {
                "path": entry.path,
                "mode": entry.mode,
                "type": entry.type,
                "sha": entry.sha,
            }
            if entry.type == "blob":
                item["size"] = entry.size or 0
                item["url"] = self._api(repo, f"/git/blobs/{entry.sha}")
            elif entry.type == "tree":
                item["url"] = self._api(repo, f"/git/trees/{entry.sha}")
            entries.append(item)
        return {
            "sha": sha,
            "url": self._api(repo, f"/git/trees/{sha}"),
            "tree": entries,
            "truncated": False,
        }

    # -- commits ------------------------------------------------------------------------------

    def create_commit(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        message = string_field(body, "message", "Commit", required=True)
        tree = string_field(body, "tree", "Commit", required=True)
        parents = body.get("parents") or []
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise validation_failed("Commit", "parents", "parents must be a list of commit SHAs.")
        kinds = repo.git.object_types([tree, *parents])
        if kinds.get(tree) != "tree":
            raise ApiError(422, MSG_NO_TREE)
        if any(kinds.get(p) != "commit" for p in parents):
            raise ApiError(422, MSG_BAD_PARENT)
        # "By default, the author will be the authenticated user and the current date";
        # "By default, committer will use the information set in author."
        who = self.emu.bot_login
        author = self._identity(body, "author") or Identity(who, self.emu._author_email(who))
        committer = self._identity(body, "committer") or author
        try:
            sha = repo.git.create_commit(tree, parents, message, author, committer)
        except ValueError as exc:
            raise validation_failed("Commit", "author", str(exc)) from None
        info = repo.git.commit_info(sha)
        assert info is not None  # just written
        url = self._api(repo, f"/git/commits/{sha}")
        return Reply(201, self.git_commit_json(repo, info), headers={"Location": url})

    @staticmethod
    def _identity(body: JSON, name: str) -> Identity | None:
        value = body.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise validation_failed("Commit", name, f"{name} is not an object.")
        for key in ("name", "email"):
            if not isinstance(value.get(key), str) or not value[key]:
                raise validation_failed(
                    "Commit", f"{name}.{key}", f"{key} wasn't supplied.", "missing_field"
                )
        date = value.get("date")
        if date is not None:
            try:
                if not isinstance(date, str):
                    raise ValueError(date)
                datetime.fromisoformat(date.replace("Z", "+00:00"))
            except ValueError:
                raise validation_failed(
                    "Commit", f"{name}.date", f"{date!r} is not an ISO 8601 timestamp."
                ) from None
        return Identity(value["name"], value["email"], date)

    def git_commit_json(self, repo: EmulatedRepo, commit: CommitInfo) -> JSON:
        """A Git Data commit object."""
        return {
            "sha": commit.sha,
            "node_id": self.emu._node_id("Commit", int(commit.sha[:8], 16)),
            "url": self._api(repo, f"/git/commits/{commit.sha}"),
            "html_url": f"{HTML_BASE}/{repo.full_name}/commit/{commit.sha}",
            "author": {
                "name": commit.author_name,
                "email": commit.author_email,
                "date": utc(commit.author_date),
            },
            "committer": {
                "name": commit.committer_name,
                "email": commit.committer_email,
                "date": utc(commit.committer_date),
            },
            "tree": {"sha": commit.tree, "url": self._api(repo, f"/git/trees/{commit.tree}")},
            "message": commit.message,
            "parents": [
                {
                    "sha": parent,
                    "url": self._api(repo, f"/git/commits/{parent}"),
                    "html_url": f"{HTML_BASE}/{repo.full_name}/commit/{parent}",
                }
                for parent in commit.parents
            ],
            "verification": dict(UNSIGNED),
        }

    # -- refs ---------------------------------------------------------------------------------

    def create_ref(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        ref = string_field(body, "ref", "Reference", required=True)
        sha = string_field(body, "sha", "Reference", required=True)
        # "If it doesn't start with 'refs' and have at least two slashes, it will be rejected."
        if not ref.startswith("refs/") or ref.count("/") < 2 or not repo.git.valid_ref(ref):
            raise validation_failed("Reference", "ref", f"{ref} is not a valid ref name.")
        kind = repo.git.object_types([sha])[sha]
        if kind is None or (ref.startswith("refs/heads/") and kind != "commit"):
            raise ApiError(422, MSG_NO_OBJECT)
        if repo.git.ref_target(ref) is not None:
            raise ApiError(422, MSG_REF_EXISTS)
        try:
            repo.set_ref(ref, sha, expect="")
        except GitError:
            # Created meanwhile by another request.
            raise ApiError(422, MSG_REF_EXISTS) from None
        answer = self.ref_json(repo, ref, sha, kind)
        return Reply(201, answer, headers={"Location": answer["url"]})

    def update_ref(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        body = json_object(call.body)
        sha = string_field(body, "sha", "Reference", required=True)
        force = body.get("force", False) is True
        # The path names the ref without "refs/": heads/featureA, tags/v1.
        ref = f"refs/{call.params['ref']}"
        current = repo.git.ref_target(ref)
        if current is None:
            raise ApiError(422, MSG_NO_REF)
        kind = repo.git.object_types([sha])[sha]
        if kind is None or (ref.startswith("refs/heads/") and kind != "commit"):
            raise ApiError(422, MSG_NO_OBJECT)
        if not force and current != sha and not repo.git.is_ancestor(current, sha):
            raise ApiError(422, MSG_NOT_FAST_FORWARD)
        try:
            repo.set_ref(ref, sha, expect=current)
        except GitError:
            # Moved meanwhile by another request: what was checked no longer holds.
            raise ApiError(422, MSG_NOT_FAST_FORWARD) from None
        return Reply(200, self.ref_json(repo, ref, sha, kind))

    def get_ref(self, call: Call) -> Reply:
        repo = required_repo(call.repo)
        ref = f"refs/{call.params['ref']}"
        sha = repo.git.ref_target(ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        kind = repo.git.object_types([sha])[sha] or "commit"
        return Reply(200, self.ref_json(repo, ref, sha, kind))

    def ref_json(self, repo: EmulatedRepo, ref: str, sha: str, kind: str) -> JSON:
        """A reference object."""
        node = base64.b64encode(f"Ref:{repo.id}:{ref}".encode()).decode().rstrip("=")
        return {
            "ref": ref,
            "node_id": node,
            "url": self._api(repo, f"/git/{ref}"),
            "object": {"type": kind, "sha": sha, "url": self._api(repo, f"/git/{kind}s/{sha}")},
        }
