"""What an alert says: the webhook body and the email, rendered from a stored alert. Pure.

Only what the risk change carries is rendered: levels, rules, evidence counts, times,
types and sources, actions and their leads, the registered name of the service; the email
also names the organisation, the authorities and the sources (`names.py`: public registers'
names, never a person's). Event content never reaches this module, so no personal data can
leak into a message.
"""

import html
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from schemas.alerts import (
    KIND_LABELS,
    WEBHOOK_TYPE_PREFIX,
    AlertData,
    AlertKind,
    AlertLinks,
    AlertNotification,
    EvidenceSummary,
    Reason,
    Recipient,
)
from schemas.risk import LevelChange, RuleFiring
from services.alerts.names import Names


@dataclass(frozen=True)
class AlertContent:
    """The stored facts of one alert that every message about it is rendered from."""

    alert_id: str
    kind: AlertKind
    change: LevelChange
    location_name: str | None
    reminder_number: int | None = None


@dataclass(frozen=True)
class Links:
    """Links into the risk board (served by this service): pages for people, not JSON.

    A reader who is not signed in is asked to sign in, then lands on the page."""

    public_url: str

    def for_alert(self, content: AlertContent) -> AlertLinks:
        base = self.public_url.rstrip("/")
        location = content.change.location_id
        return AlertLinks(
            location=f"{base}/board/locations/{location}" if location else None,
            alert=f"{base}/board/alerts/{content.alert_id}",
        )


def summarise(rule: RuleFiring) -> Reason:
    groups: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for ref in rule.evidence:
        groups[(ref.type, ref.source)].append(ref.time)
    return Reason(
        rule_id=rule.rule_id,
        family=rule.family,
        level=rule.level,
        description=rule.description,
        measure=rule.measure,
        evidence_count=max(rule.evidence_count, len(rule.evidence)),
        evidence=[
            EvidenceSummary(type=t, source=s, count=len(times), first=min(times), last=max(times))
            for (t, s), times in sorted(groups.items())
        ],
        evidence_ids=[ref.event_id for ref in rule.evidence],
    )


def notification(
    content: AlertContent, recipient: Recipient, delivery_id: str, links: Links, now: datetime
) -> AlertNotification:
    change = content.change
    data = AlertData(
        alert_id=content.alert_id,
        delivery_id=delivery_id,
        kind=content.kind,
        label=KIND_LABELS[content.kind],
        scope=change.scope,
        location_id=change.location_id,
        location_name=content.location_name,
        provider_id=change.provider_id,
        locations=change.locations,
        old_level=change.old_level,
        new_level=change.new_level,
        meaning=change.meaning,
        reasons=[summarise(rule) for rule in change.reasons],
        actions=change.actions,
        policy_version=change.policy_version,
        change_id=change.change_id,
        decided_at=change.decided_at,
        reminder_number=content.reminder_number,
        recipient=recipient,
        links=links.for_alert(content),
    )
    return AlertNotification(
        type=f"{WEBHOOK_TYPE_PREFIX}{content.kind.value}",
        timestamp=now,
        data=data,
    )


def webhook_body(message: AlertNotification) -> bytes:
    return json.dumps(message.model_dump(mode="json"), separators=(",", ":"), sort_keys=True).encode()


def event_type_label(event_type: str) -> str:
    """`uk.caresignal.safeguarding_concern.v1` -> `Safeguarding concern`."""
    name = event_type.removeprefix("uk.caresignal.").rsplit(".v", 1)[0]
    return name.replace("_", " ").capitalize()


def _location_text(names: Names, location_id: str) -> str:
    name = names.location(location_id)
    return f"{name} ({location_id})" if name else location_id


def _subject_name(data: AlertData, names: Names) -> str:
    if data.scope == "organisation":
        name = names.organisation(data.provider_id)
        return f"{name} (provider {data.provider_id})" if name else f"provider {data.provider_id}"
    return f"{data.location_name} ({data.location_id})" if data.location_name else f"location {data.location_id}"


def subject_line(data: AlertData, names: Names) -> str:
    level = data.new_level.upper()
    if data.kind is AlertKind.de_escalation:
        what = f"lowered from {data.old_level.upper()} to {level}"
    elif data.kind is AlertKind.reminder:
        what = f"still {level}, not yet acknowledged (reminder {data.reminder_number})"
    elif data.kind is AlertKind.current_level:
        what = f"is {level} now (last told: {data.old_level.upper()})"
    else:
        what = f"raised from {data.old_level.upper()} to {level}"
    return f"[CareSignal] {data.label}: {_subject_name(data, names)} risk {what}"


def _where(data: AlertData, names: Names) -> list[str]:
    """Which service or organisation, by name with its code (what a reader searches by)."""
    provider = names.organisation_label(data.provider_id) if data.provider_id else None
    if data.scope == "organisation":
        concerned = ", ".join(_location_text(names, loc) for loc in data.locations) or "none listed"
        return [f"Provider: {provider}.", f"Locations concerned: {concerned}."]
    lines = [
        f"Location: {data.location_name} ({data.location_id})."
        if data.location_name
        else f"Location {data.location_id}."
    ]
    location = names.directory.locations.get(data.location_id or "")
    if location is not None:
        lines.append(f"Host authority: {names.authority_label(location.host_authority)}.")
    if provider:
        lines.append(f"Provider: {provider}.")
    return lines


HISTORY_LOADED = (
    "History was loaded for this service: the changes it caused are recorded (GET /v1/alerts?state=history) "
    "but were not sent one by one. This is the level now."
)


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


def _when(value: datetime) -> str:
    # Sources send local offsets (+01:00 in summer): convert, or "UTC" would be a lie.
    return value.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")


def _plain(data: AlertData, names: Names) -> str:
    lines = [subject_line(data, names).removeprefix("[CareSignal] "), ""]
    roles = " and ".join(r.value for r in data.recipient.roles)
    lines.append(f"You receive this as the {roles} authority ({names.authority_label(data.recipient.authority)}).")
    lines += _where(data, names)
    lines.append(f"Decided {_when(data.decided_at)} under policy {data.policy_version}.")
    if data.kind is AlertKind.current_level:
        lines += ["", HISTORY_LOADED]
    if data.meaning:
        lines += ["", f"What it means: {data.meaning}"]
    lines += ["", "Why:"]
    if not data.reasons:
        lines.append("  No rule holds this location above the new level any more.")
    for reason in data.reasons:
        lines.append(
            f"  - [{reason.level.upper()}] {reason.description} ({reason.rule_id}, {_events(reason.evidence_count)})"
        )
        for ev in reason.evidence:
            span = _when(ev.first) if ev.first == ev.last else f"{_when(ev.first)} to {_when(ev.last)}"
            lines.append(f"      {ev.count} x {event_type_label(ev.type)} from {names.source_label(ev.source)}, {span}")
    lines += ["", "Recommended actions:"]
    if not data.actions:
        lines.append("  None at this level.")
    for action in data.actions:
        lines.append(f"  - {action.action} (lead: {action.lead})")
    lines.append("")
    if data.links.location:
        lines.append(f"Location page: {data.links.location}")
    lines.append(f"Alert: {data.links.alert}")
    if data.kind in (AlertKind.escalation, AlertKind.reminder):
        lines.append("Acknowledge it there (POST /v1/alerts/<id>/acknowledge) to stop reminders.")
    elif data.kind is AlertKind.current_level:
        lines.append("Acknowledge it there (POST /v1/alerts/<id>/acknowledge) to record that it was seen.")
    lines += ["", f"Alert {data.alert_id}, delivery {data.delivery_id}. No personal data is included."]
    return "\n".join(lines) + "\n"


def _html(data: AlertData, names: Names) -> str:
    e = html.escape
    who = e(names.authority_label(data.recipient.authority))
    roles = e(" and ".join(r.value for r in data.recipient.roles))
    reasons = (
        "".join(
            f"<li><strong>[{e(r.level.upper())}]</strong> {e(r.description)} "
            f"<small>({e(r.rule_id)}, {_events(r.evidence_count)})</small><ul>"
            + "".join(
                f"<li>{ev.count} &times; {e(event_type_label(ev.type))} from {e(names.source_label(ev.source))}, "
                f"{e(_when(ev.first))}" + (f" to {e(_when(ev.last))}" if ev.first != ev.last else "") + "</li>"
                for ev in r.evidence
            )
            + "</ul></li>"
            for r in data.reasons
        )
        or "<li>No rule holds this location above the new level any more.</li>"
    )
    actions = "".join(f"<li>{e(a.action)} <em>(lead: {e(a.lead)})</em></li>" for a in data.actions)
    where = "".join(f"<p>{e(line)}</p>" for line in _where(data, names))
    link = f'<p><a href="{e(data.links.location)}">Location page</a></p>' if data.links.location else ""
    return (
        "<!doctype html><html><body>"
        f"<h1>{e(data.label)}</h1><p>{e(subject_line(data, names).removeprefix('[CareSignal] '))}</p>"
        f"<p>You receive this as the {roles} authority ({who}).</p>"
        f"{where}<p>Decided {e(_when(data.decided_at))} under policy {e(data.policy_version)}.</p>"
        + (f"<p>{e(HISTORY_LOADED)}</p>" if data.kind is AlertKind.current_level else "")
        + (f"<p><strong>What it means:</strong> {e(data.meaning)}</p>" if data.meaning else "")
        + f"<h2>Why</h2><ul>{reasons}</ul>"
        f"<h2>Recommended actions</h2><ul>{actions or '<li>None at this level.</li>'}</ul>"
        f'{link}<p><a href="{e(data.links.alert)}">Alert {e(data.alert_id)}</a></p>'
        f"<p><small>Delivery {e(data.delivery_id)}. No personal data is included.</small></p>"
        "</body></html>"
    )


def email_message(message: AlertNotification, sender: str, to: str, names: Names) -> EmailMessage:
    """The email for one delivery, naming the organisation, authorities and sources from `names`."""
    data = message.data
    mail = EmailMessage()
    mail["Subject"] = subject_line(data, names)
    mail["From"] = sender
    mail["To"] = to
    mail["Date"] = format_datetime(message.timestamp)
    # Stable per delivery, so a resend after a crash is recognisably the same message.
    mail["Message-ID"] = f"<{data.delivery_id}@caresignal.invalid>"
    mail["X-CareSignal-Alert-Id"] = data.alert_id
    mail["X-CareSignal-Delivery-Id"] = data.delivery_id
    mail["X-CareSignal-Kind"] = data.kind.value
    mail.set_content(_plain(data, names))
    mail.add_alternative(_html(data, names), subtype="html")
    return mail
