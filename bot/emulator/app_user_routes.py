"""The App about itself (`GET /app`, the manifest conversion) and a user's view through a user
access token (`GET /user`, their installations and repositories)."""

from __future__ import annotations

from collections.abc import Callable

from bot.emulator.api_calls import ApiError, Call, Reply, paginate
from bot.emulator.app_registry import CodeRefused
from bot.emulator.github_models import JSON, PERMISSION_LEVELS, Installation, UserToken
from bot.emulator.github_state import GitHubState


class AppsAndUsers:
    """Handlers of the App's own endpoints and of the signed-in user's."""

    def __init__(self, emu: GitHubState) -> None:
        self.emu = emu

    def handlers(self) -> dict[str, Callable[[Call], Reply]]:
        return {
            "apps/get-authenticated": self.get_app,
            "apps/create-from-manifest": self.convert_manifest,
            "users/get-authenticated": self.get_user,
            "apps/list-installations-for-authenticated-user": self.list_installations,
            "apps/list-installation-repos-for-authenticated-user": self.list_repositories,
        }

    def get_app(self, call: Call) -> Reply:
        app = call.caller.app
        if app is None:
            raise ApiError(401, "A JSON web token could not be decoded")
        return Reply(200, self.emu.integration_json(app))

    def convert_manifest(self, call: Call) -> Reply:
        # No authentication: the code, handed to the browser once, is the credential.
        try:
            app = self.emu.apps.convert(str(call.params["code"]), self.emu.clock())
        except CodeRefused as refused:
            raise ApiError(refused.status, refused.message) from None
        answer: JSON = {
            **self.emu.integration_json(app, count=False),
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "webhook_secret": app.webhook_secret,
            "pem": app.private_key_pem,
        }
        return Reply(201, answer)

    @staticmethod
    def _user(call: Call) -> UserToken:
        if call.caller.user is None:
            raise ApiError(401, "Requires authentication")
        return call.caller.user

    def get_user(self, call: Call) -> Reply:
        return Reply(200, self.emu.private_user_json(self._user(call).login))

    def list_installations(self, call: Call) -> Reply:
        user = self._user(call)
        found = self.emu.user_installations(user.login, user.app_id)
        page, headers = paginate(call.request, found, self.emu.url)
        answer = {
            "total_count": len(found),
            "installations": [self.emu.installation_json(i) for i in page],
        }
        return Reply(200, answer, headers=headers)

    def list_repositories(self, call: Call) -> Reply:
        user = self._user(call)
        wanted = call.params["installation_id"]
        installation: Installation | None = next(
            (i for i in self.emu.user_installations(user.login, user.app_id) if i.id == wanted),
            None,
        )
        if installation is None:
            # Another App's installation, or one the user reaches nothing of.
            raise ApiError(404, "Not Found")
        repos = self.emu.user_repositories(user.login, installation)
        page, headers = paginate(call.request, repos, self.emu.url)
        listed = []
        for repo in page:
            rank = PERMISSION_LEVELS.index(self.emu.permission(repo.full_name, user.login))
            listed.append(
                {
                    **self.emu.repo_json(repo),
                    # "The access the user has to each repository is included in the hash
                    # under the permissions key."
                    "permissions": {
                        "admin": rank >= 5,
                        "maintain": rank >= 4,
                        "push": rank >= 3,
                        "triage": rank >= 2,
                        "pull": rank >= 1,
                    },
                }
            )
        answer = {
            "total_count": len(repos),
            "repository_selection": "selected",
            "repositories": listed,
        }
        return Reply(200, answer, headers=headers)
