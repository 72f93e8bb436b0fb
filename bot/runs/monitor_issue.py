"""Production monitoring: judge an environment's live uploads and open, update or close its
one issue (ARCHITECTURE.md, Where to add: the decision is `bot.core.monitoring.decide`)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import redis

from bot.core import monitoring
from bot.core.config import CONFIG_PATH, RepoConfig, default_config, parse_config
from bot.core.evaluation_result import Evaluation
from bot.core.monitoring import ISSUE_LABEL, Judged, Observation
from bot.core.report import render_monitor_issue
from bot.errors import MlgateError, RepoConfigError
from bot.github.github_client import GitHubClient
from bot.runs.retrain_loop import start_retrain
from bot.state import audit, baselines, production_uploads
from bot.state.run_locks import monitor_lock

log = logging.getLogger(__name__)

# Uploads shown in the issue's trend and judged for the window.
HISTORY = 20
# Who stands in the audit stream for what mlgate does by itself.
MLGATE = "mlgate"


def _config(gh: GitHubClient, repo: str) -> RepoConfig | None:
    """The default branch's configuration (what every decision of mlgate reads)."""
    raw = gh.get_contents(repo, CONFIG_PATH)
    try:
        return default_config() if raw is None else parse_config(raw.decode("utf-8", "replace"))
    except RepoConfigError as exc:
        log.warning("monitoring: configuration invalid: %s", exc, extra={"repo": repo})
        return None


def _find_issue(gh: GitHubClient, repo: str, env: str, known: int | None) -> int | None:
    """The environment's open issue: the one mlgate remembers, else found by its marker (Redis
    may have lost the number; a second issue must never be opened)."""
    marker = monitoring.marker(env)
    for issue in gh.list_issues(repo, labels=ISSUE_LABEL, state="open"):
        if int(issue["number"]) == known or str(issue.get("body") or "").startswith(marker):
            return int(issue["number"])
    return None


def _latest(judged: list[Judged], deployed: Evaluation) -> Evaluation:
    newest = judged[-1]
    return replace(
        deployed,
        head_sha=newest.observation.sha,
        new=newest.observation.metrics,
        gates=newest.results,
    )


def _label(observation: Observation) -> str:
    return time.strftime("%m-%d %H:%M", time.gmtime(observation.at))


def _request_retrain(conn: redis.Redis, repo: str, env: str, newest: Observation) -> str:
    """on_breach: retrain: queue a retrain of the default branch (it opens or moves the retrain
    PR); what happened, for the issue."""
    try:
        queued = start_retrain(conn, repo, "monitoring", occasion=f"{env}@{newest.at:.0f}")
    except MlgateError as exc:
        return f"on_breach: retrain for {env} could not start: {exc}."
    if not queued:
        return f"on_breach: retrain for {env}: a retrain of the default branch is already queued."
    return f"on_breach: retrain: a retrain of the default branch is queued for {env}."


def check_production(gh: GitHubClient, conn: redis.Redis, repo: str, env: str) -> str:
    """Judge `env`'s newest uploads of `repo` and act on its issue; returns what was done."""
    config = _config(gh, repo)
    if config is None:
        return "config-invalid"
    monitor = config.monitor
    if monitor is None or monitor.env != env:
        return "not-monitored"
    observations = production_uploads.recent(conn, repo, env, max(HISTORY, monitor.window))
    if not observations:
        return "no-uploads"
    deployed_sha = observations[-1].sha
    baseline = baselines.baseline(conn, repo, deployed_sha)
    judged = monitoring.judge(observations, config.monitor_gates(), baseline)
    with monitor_lock(conn, repo, env):
        known = production_uploads.open_issue(conn, repo, env)
        number = _find_issue(gh, repo, env, known)
        decision = monitoring.decide(judged, monitor.window, number is not None, monitor.on_breach)
        notes = []
        if decision.retrain:
            audit.record(
                conn,
                repo,
                audit.Entry("retrain", MLGATE, 0, deployed_sha, f"monitoring: {env} breached"),
            )
            notes.append(_request_retrain(conn, repo, env, judged[-1].observation))
        deployed = Evaluation(deployed_sha, deployed_sha, old=baseline or {})
        body = (
            monitoring.marker(env)
            + "\n"
            + render_monitor_issue(
                env,
                _latest(judged, deployed),
                [(_label(j.observation), j.observation.metrics) for j in judged],
                breached=decision.breached,
                window=monitor.window,
                notes=notes,
            )
        )
        if decision.action == "open":
            created = gh.create_issue(
                repo, f"mlgate: {env} fails its quality gates", body, labels=[ISSUE_LABEL]
            )
            number = int(created["number"])
        elif decision.action == "update" and number is not None:
            gh.update_issue(repo, number, body=body)
        elif decision.action == "close" and number is not None:
            gh.update_issue(repo, number, body=body)
            gh.create_comment(
                repo,
                number,
                f"Recovered: the last {monitor.window} uploads from `{env}` pass their gates.",
            )
            gh.update_issue(repo, number, state="closed")
            number = None
        production_uploads.set_open_issue(conn, repo, env, number)
    log.info(
        "monitoring %s: %s",
        env,
        decision.action,
        extra={"repo": repo, "breached": decision.breached},
    )
    return decision.action
