"""Alerts: a failed run, a failed check, a stale source. Always logged; posted to a Slack-compatible
webhook (``SHOP360_ALERT_WEBHOOK_URL``) when one is configured.

Messages name jobs, runs, assets and checks, never data values: no customer's email reaches a chat.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import dagster as dg
import requests
from dagster._core.definitions.freshness import FreshnessState  # not exported at the top level in 1.13

from orchestration import settings as control

log = logging.getLogger("shop360.alerts")

WEBHOOK_TIMEOUT_SECONDS = 10
MAX_LISTED = 20
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def slack_message(title: str, lines: list[str]) -> dict:
    """A Slack incoming-webhook payload: ``text`` for notifications, one mrkdwn section for the detail."""
    detail = "\n".join(f"• {line}" for line in lines[:MAX_LISTED])
    if len(lines) > MAX_LISTED:
        detail += f"\n• … and {len(lines) - MAX_LISTED} more"
    return {
        "text": f"shop360: {title}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"shop360: {title}"[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail or "(no detail)"}},
        ],
    }


def send_alert(title: str, lines: list[str]) -> dict:
    """Log the alert and post it to the webhook if there is one; a webhook failure is logged, not raised."""
    message = slack_message(title, lines)
    log.warning("%s\n%s", message["text"], "\n".join(lines))
    url = control.alert_webhook_url()
    if url:
        try:
            response = requests.post(
                url,
                data=json.dumps(message),
                headers={"Content-Type": "application/json"},
                timeout=WEBHOOK_TIMEOUT_SECONDS,
            )
            response.raise_for_status()
        except requests.RequestException as error:
            # the URL itself is a secret (it authorises posting): only its failure is logged
            log.error("alert webhook failed: %s", type(error).__name__)
    return message


@dg.run_failure_sensor(
    name="run_failure_alert",
    description="Alerts when any run of this code location fails.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    failed_steps = sorted(
        {event.step_key for event in context.get_step_failure_events() if event.step_key is not None}
    )
    lines = [f"job `{run.job_name}`, run `{run.run_id}`"]
    if context.failure_event.message:
        lines.append(context.failure_event.message.splitlines()[0][:300])
    lines += [f"failed step: `{step}`" for step in failed_steps]
    send_alert(f"run of {run.job_name} failed", lines)


def _failed_check_line(evaluation: dg.AssetCheckEvaluation) -> str:
    severity = "ERROR" if evaluation.severity == dg.AssetCheckSeverity.ERROR else "WARN"
    return f"{severity} `{evaluation.asset_key.to_user_string()}` check `{evaluation.check_name}`"


@dg.sensor(
    name="check_failure_alert",
    description="Alerts on every asset check that fails (dbt tests, quality and freshness checks).",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def check_failure_alert(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
    # Runs, not the global event stream: Dagster's default SQLite storage shards events by run and
    # cannot page through all of them with a cursor. The cursor is the last finished run's update time.
    since = datetime.fromtimestamp(float(context.cursor), UTC) if context.cursor else None
    runs = context.instance.get_run_records(
        dg.RunsFilter(statuses=FINISHED, updated_after=since), order_by="update_timestamp", ascending=True
    )
    if not runs:
        return dg.SkipReason("no run finished since the last tick")
    evaluations = [
        entry.dagster_event.event_specific_data
        for run in runs
        for entry in context.instance.all_logs(
            run.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    context.update_cursor(str(runs[-1].update_timestamp.timestamp()))
    failed = [evaluation for evaluation in evaluations if not evaluation.passed]
    if not failed:
        return dg.SkipReason(f"{len(runs)} run(s) finished, {len(evaluations)} check results, all passed")
    send_alert(
        f"{len(failed)} asset check(s) failed", [_failed_check_line(evaluation) for evaluation in failed]
    )
    return None


def freshness_failures(instance: dg.DagsterInstance, keys: list[dg.AssetKey], since: float) -> list[str]:
    """Assets whose freshness policy has been failing since after ``since`` (a timestamp)."""
    records = instance.get_freshness_state_records(keys)
    return sorted(
        f"`{key.to_user_string()}` is stale (since {record.updated_at:%Y-%m-%d %H:%M} UTC)"
        for key, record in records.items()
        if record.freshness_state == FreshnessState.FAIL and record.updated_at.timestamp() > since
    )


def build_freshness_alert(keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Alerts when the freshness daemon finds one of ``keys`` failing its freshness policy."""

    @dg.sensor(
        name="freshness_alert",
        description="Alerts when a source fails its freshness policy (evaluated by the freshness daemon).",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def freshness_alert(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
        since = float(context.cursor) if context.cursor else 0.0
        stale = freshness_failures(context.instance, keys, since)
        context.update_cursor(str(time.time()))
        if not stale:
            return dg.SkipReason("every source is fresh, or was already reported")
        send_alert(f"{len(stale)} source table(s) stale", stale)
        return None

    return freshness_alert
