"""What an alert says: the webhook body keeps to the documented model, evidence is
summarised per type and source, and the email carries the same facts in plain text and
escaped HTML, with a subject that tells a rise, a fall and a reminder apart."""

import html
import json
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.alerts import AlertKind, AlertNotification, EvidenceSummary, Recipient, RecipientRole
from schemas.directory import Location, ServiceType
from schemas.risk import Action, EvidenceRef, Level, LevelChange, LevelName, RuleFiring
from services.alerts.messages import AlertContent, Links, email_message, notification, summarise, webhook_body
from services.alerts.names import Names
from services.alerts.routing import Directory

BST = timezone(timedelta(hours=1))
LOCATION = "1-101234567"
PROVIDER = "1-100000001"
ECM = "urn:caresignal:source:kent-ecm"
COMPLAINTS = "/systems/complaints"
NOW = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
LINKS = Links(public_url="https://alerts.example/")
RECIPIENT = Recipient(authority="E10000030", roles=[RecipientRole.host, RecipientRole.placing], locations=[LOCATION])


def ref(event_id: str, type_: str, source: str, time: datetime) -> EvidenceRef:
    return EvidenceRef(event_id=event_id, type=type_, source=source, time=time)


SAFEGUARDING = RuleFiring(
    rule_id="trigger.safeguarding_cluster",
    family="trigger",
    level=LevelName.major,
    description="Three or more safeguarding concerns within 14 days",
    measure=3.0,
    evidence_count=5,
    evidence=[
        ref("ev-3", "safeguarding_concern", ECM, datetime(2024, 5, 30, 14, 5, tzinfo=UTC)),
        ref("ev-1", "safeguarding_concern", ECM, datetime(2024, 5, 20, 9, 0, tzinfo=UTC)),
        # Local summer time from the source: 10:15 BST is 09:15 UTC.
        ref("ev-2", "safeguarding_concern", ECM, datetime(2024, 5, 25, 10, 15, tzinfo=BST)),
        ref("ev-4", "complaint", COMPLAINTS, datetime(2024, 5, 28, 16, 45, tzinfo=UTC)),
        ref("ev-5", "complaint", ECM, datetime(2024, 5, 29, 11, 0, tzinfo=UTC)),
    ],
)
MISSED_VISITS = RuleFiring(
    rule_id="rise.missed_visits",
    family="rise",
    level=LevelName.moderate,
    description="Missed visits well above the location's own baseline",
    measure=4.2,
    # More events than references carried: the count is the rule's, not the list's.
    evidence_count=12,
    evidence=[
        ref("ev-6", "missed_visit", ECM, datetime(2024, 6, 1, 7, 30, tzinfo=UTC)),
        ref("ev-7", "missed_visit", ECM, datetime(2024, 6, 1, 7, 30, tzinfo=UTC)),
    ],
)
ACTIONS = [
    Action(action="Contact the registered manager within one working day", lead="Host authority quality team"),
    Action(action="Share the concern with the CQC inspector", lead="Safeguarding adults manager"),
]


def level_change(
    old: LevelName = LevelName.minor,
    new: LevelName = LevelName.major,
    reasons: list[RuleFiring] | None = None,
    scope: str = "location",
) -> LevelChange:
    organisation = scope == "organisation"
    return LevelChange(
        change_id=f"{PROVIDER if organisation else LOCATION}:7",
        sequence=7,
        scope=scope,
        location_id=None if organisation else LOCATION,
        provider_id=PROVIDER,
        locations=[LOCATION, "1-101234568"] if organisation else [],
        old_level=old,
        new_level=new,
        direction="escalation" if Level[new.value] > Level[old.value] else "de-escalation",
        score=8.5,
        reasons=[SAFEGUARDING, MISSED_VISITS] if reasons is None else reasons,
        actions=ACTIONS if new is LevelName.major else [],
        meaning="Serious concern: act today",
        policy_version="kent-2024.05",
        decided_at=datetime(2024, 6, 1, 9, 30, tzinfo=UTC),
    )


def content(
    kind: AlertKind = AlertKind.escalation,
    change: LevelChange | None = None,
    name: str | None = "Oak & Ash House",
    reminder: int | None = None,
) -> AlertContent:
    return AlertContent("al_0123456789abcdef01234567", kind, change or level_change(), name, reminder)


def render(alert: AlertContent) -> AlertNotification:
    return notification(alert, RECIPIENT, "msg_0123456789abcdef01234567", LINKS, NOW)


def names(
    authority: str | None = None, organisation: str | None = None, sources: dict[str, str] | None = None
) -> Names:
    """What the delivery worker hands the email: the directory as it stands, and the source names."""
    directory = Directory()
    for location_id, name in ((LOCATION, "Oak & Ash House"), ("1-101234568", "Birch Lodge")):
        directory.put_location(
            Location(
                location_id=location_id,
                provider_id=PROVIDER,
                service_type=ServiceType.care_home,
                capacity=30,
                host_authority="E10000016",
                name=name,
                provider_name=organisation,
            )
        )
    if authority:
        directory.authority_names["E10000030"] = authority
    return Names(directory, {"E10000016": "Kent"}, sources or {})


NO_NAMES = Names(Directory())


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain, rich = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and rich is not None
    return plain.get_content(), rich.get_content()


ESCALATION = content()
DE_ESCALATION = content(AlertKind.de_escalation, level_change(LevelName.major, LevelName.minor, [MISSED_VISITS]))
REMINDER = content(AlertKind.reminder, reminder=2)


# --- the webhook body ------------------------------------------------------------------


@pytest.mark.parametrize("alert", [ESCALATION, DE_ESCALATION, REMINDER], ids=lambda a: a.kind.value)
def test_the_body_parses_back_into_the_documented_model(alert: AlertContent) -> None:
    message = render(alert)
    body = webhook_body(message)
    document = json.loads(body)
    # Contract models forbid extra fields at every depth, so this proves nothing
    # undocumented is in the body.
    parsed = AlertNotification.model_validate(document)
    assert parsed == message
    assert document["type"] == f"caresignal.alert.{alert.kind.value}"
    assert document["data"]["kind"] == alert.kind.value
    assert document["data"]["delivery_id"] == "msg_0123456789abcdef01234567"
    assert document["data"]["alert_id"] == alert.alert_id
    assert document["data"]["recipient"] == RECIPIENT.model_dump(mode="json")
    assert document["data"]["reminder_number"] == alert.reminder_number
    assert document["data"]["links"] == {
        "location": f"https://alerts.example/board/locations/{LOCATION}",
        "alert": "https://alerts.example/board/alerts/al_0123456789abcdef01234567",
    }


def test_an_undocumented_field_would_be_refused() -> None:
    document = json.loads(webhook_body(render(ESCALATION)))
    document["data"]["reasons"][0]["evidence"][0]["person"] = "someone"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AlertNotification.model_validate(document)


def test_the_body_is_compact_canonical_json() -> None:
    body = webhook_body(render(ESCALATION))
    assert body == json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True).encode()
    assert b"\n" not in body


def test_the_body_carries_no_event_content_only_ids_types_sources_and_times() -> None:
    reason = json.loads(webhook_body(render(ESCALATION)))["data"]["reasons"][0]
    assert set(reason) == {
        "rule_id",
        "family",
        "level",
        "description",
        "measure",
        "evidence_count",
        "evidence",
        "evidence_ids",
    }
    assert reason["evidence_ids"] == ["ev-3", "ev-1", "ev-2", "ev-4", "ev-5"]


def test_evidence_is_summarised_per_type_and_source() -> None:
    first, second = render(ESCALATION).data.reasons
    assert first.evidence_count == 5
    assert first.evidence == [
        EvidenceSummary(
            type="complaint",
            source=COMPLAINTS,
            count=1,
            first=datetime(2024, 5, 28, 16, 45, tzinfo=UTC),
            last=datetime(2024, 5, 28, 16, 45, tzinfo=UTC),
        ),
        EvidenceSummary(
            type="complaint",
            source=ECM,
            count=1,
            first=datetime(2024, 5, 29, 11, 0, tzinfo=UTC),
            last=datetime(2024, 5, 29, 11, 0, tzinfo=UTC),
        ),
        EvidenceSummary(
            type="safeguarding_concern",
            source=ECM,
            count=3,
            first=datetime(2024, 5, 20, 9, 0, tzinfo=UTC),
            last=datetime(2024, 5, 30, 14, 5, tzinfo=UTC),
        ),
    ]
    assert second.evidence_count == 12
    assert [(e.type, e.count) for e in second.evidence] == [("missed_visit", 2)]


def test_evidence_count_is_never_below_the_references_carried() -> None:
    rule = MISSED_VISITS.model_copy(update={"evidence_count": 0})
    assert summarise(rule).evidence_count == 2


refs = st.builds(
    ref,
    st.from_regex(r"\Aev-[0-9]{1,4}\Z"),
    st.sampled_from(["complaint", "missed_visit", "safeguarding_concern"]),
    st.sampled_from([ECM, COMPLAINTS]),
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2024, 12, 31), timezones=st.sampled_from([UTC, BST])
    ),
)


@settings(max_examples=200)
@given(st.lists(refs, max_size=12), st.integers(min_value=0, max_value=30))
def test_summaries_account_for_every_reference(evidence: list[EvidenceRef], count: int) -> None:
    rule = RuleFiring(rule_id="r", family="pattern", level=LevelName.minor, description="d", evidence_count=count)
    reason = summarise(rule.model_copy(update={"evidence": evidence}))
    assert reason.evidence_count == max(count, len(evidence))
    assert sum(e.count for e in reason.evidence) == len(evidence)
    keys = [(e.type, e.source) for e in reason.evidence]
    assert keys == sorted(set(keys))
    for summary in reason.evidence:
        times = [r.time for r in evidence if (r.type, r.source) == (summary.type, summary.source)]
        assert summary.count == len(times)
        assert summary.first == min(times) and summary.last == max(times)
    assert reason.evidence_ids == [r.event_id for r in evidence]


# --- the email -------------------------------------------------------------------------


def test_the_email_has_a_plain_and_an_html_part_and_stable_headers() -> None:
    mail = email_message(render(ESCALATION), "alerts@caresignal.invalid", "duty@surrey.example", names("Surrey"))
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["To"] == "duty@surrey.example"
    assert mail["From"] == "alerts@caresignal.invalid"
    assert mail["Message-ID"] == "<msg_0123456789abcdef01234567@caresignal.invalid>"
    assert mail["X-CareSignal-Kind"] == "escalation"
    assert mail["X-CareSignal-Alert-Id"] == "al_0123456789abcdef01234567"
    assert mail["Date"] == "Mon, 03 Jun 2024 08:00:00 +0000"


def test_subjects_tell_a_rise_a_fall_and_a_reminder_apart() -> None:
    subjects = {
        alert.kind: str(email_message(render(alert), "a@b.example", "c@d.example", NO_NAMES)["Subject"])
        for alert in (ESCALATION, DE_ESCALATION, REMINDER)
    }
    assert len(set(subjects.values())) == 3
    assert "RISK RAISED" in subjects[AlertKind.escalation]
    assert "raised from MINOR to MAJOR" in subjects[AlertKind.escalation]
    assert "LOWERED" in subjects[AlertKind.de_escalation]
    assert "lowered from MAJOR to MINOR" in subjects[AlertKind.de_escalation]
    assert "LOWERED" not in subjects[AlertKind.escalation] and "LOWERED" not in subjects[AlertKind.reminder]
    assert "REMINDER" in subjects[AlertKind.reminder] and "reminder 2" in subjects[AlertKind.reminder]
    assert "REMINDER" not in subjects[AlertKind.escalation]
    for subject in subjects.values():
        assert subject.startswith("[CareSignal] ")
        assert f"Oak & Ash House ({LOCATION})" in subject


def test_both_parts_carry_the_actions_reasons_counts_and_links() -> None:
    plain, rich = parts(email_message(render(ESCALATION), "a@b.example", "c@d.example", NO_NAMES))
    for text, escape in ((plain, str), (rich, html.escape)):
        for action in ACTIONS:
            assert escape(action.action) in text
            assert escape(action.lead) in text
        assert escape(SAFEGUARDING.description) in text
        assert escape(MISSED_VISITS.description) in text
        assert "(trigger.safeguarding_cluster, 5 events)" in text
        assert "(rise.missed_visits, 12 events)" in text
        assert "host and placing authority (E10000030)" in text
        assert "kent-2024.05" in text
        assert "https://alerts.example/board/alerts/al_0123456789abcdef01234567" in text
        assert "Serious concern: act today" in text
    assert f"Location page: https://alerts.example/board/locations/{LOCATION}" in plain
    assert f'href="https://alerts.example/board/locations/{LOCATION}"' in rich
    # No name known for these sources: their ids stand in.
    assert f"3 x Safeguarding concern from {ECM}, 20 May 2024 09:00 UTC to 30 May 2024 14:05 UTC" in plain
    assert f"3 &times; Safeguarding concern from {ECM}, 20 May 2024 09:00 UTC to 30 May 2024 14:05 UTC" in rich
    assert f"1 x Complaint from {COMPLAINTS}, 28 May 2024 16:45 UTC\n" in plain
    assert "2 x Missed visit from" in plain and "01 Jun 2024 07:30 UTC\n" in plain
    assert "Decided 01 Jun 2024 09:30 UTC" in plain
    assert "Acknowledge" in plain


def test_one_event_is_not_one_events() -> None:
    rule = SAFEGUARDING.model_copy(update={"evidence": [SAFEGUARDING.evidence[0]], "evidence_count": 1})
    plain, rich = parts(email_message(render(content(change=level_change(reasons=[rule]))), "a@b", "c@d", NO_NAMES))
    for text in (plain, rich):
        assert "(trigger.safeguarding_cluster, 1 event)" in text
        assert "1 events" not in text


def test_a_current_level_notice_says_history_was_loaded_and_the_level_now() -> None:
    change = level_change(LevelName.none, LevelName.major).model_copy(update={"backfill": True})
    message = render(content(AlertKind.current_level, change))
    assert message.type == "caresignal.alert.current-level"
    assert message.data.label == "CURRENT RISK LEVEL (history loaded)"
    mail = email_message(message, "a@b.example", "c@d.example", NO_NAMES)
    assert mail["Subject"] == (
        f"[CareSignal] CURRENT RISK LEVEL (history loaded): Oak & Ash House ({LOCATION}) risk is MAJOR now "
        "(last told: NONE)"
    )
    plain, rich = parts(mail)
    for text in (plain, rich):
        assert "History was loaded" in text and "not sent one by one" in text
        assert html.escape(ACTIONS[0].action) in text
    assert "record that it was seen" in plain and "reminders" not in plain
    assert AlertNotification.model_validate_json(webhook_body(message)) == message


def test_times_are_shown_in_utc_whatever_the_sources_offset() -> None:
    rule = SAFEGUARDING.model_copy(update={"evidence": [SAFEGUARDING.evidence[2]]})
    change = level_change(reasons=[rule]).model_copy(update={"decided_at": datetime(2024, 6, 1, 10, 30, tzinfo=BST)})
    plain, rich = parts(email_message(render(content(change=change)), "a@b.example", "c@d.example", NO_NAMES))
    for text in (plain, rich):
        assert "25 May 2024 09:15 UTC" in text
        assert "10:15 UTC" not in text
        assert "Decided 01 Jun 2024 09:30 UTC" in text


def test_html_escapes_the_location_name_and_plain_text_does_not() -> None:
    # No registered name can hold markup (the directory's pattern refuses it); the email escapes all the same.
    plain, rich = parts(
        email_message(
            render(ESCALATION), "a@b.example", "c@d.example", Names(Directory(), {"E10000030": "Surrey <MASH>"})
        )
    )
    assert "Oak &amp; Ash House" in rich
    assert "Oak & Ash" not in rich
    assert "Surrey &lt;MASH&gt;" in rich and "<MASH>" not in rich
    assert "Oak & Ash House" in plain and "Oak &amp;" not in plain


def test_a_cleared_notice_without_reasons_or_actions_says_so_and_asks_no_acknowledgement() -> None:
    cleared = content(AlertKind.de_escalation, level_change(LevelName.major, LevelName.none, reasons=[]))
    plain, rich = parts(email_message(render(cleared), "a@b.example", "c@d.example", NO_NAMES))
    for text in (plain, rich):
        assert "No rule holds this location above the new level any more." in text
        assert "None at this level." in text
        assert "RISK LOWERED" in text
    assert "Acknowledge" not in plain
    assert "E10000030" in plain  # no authority name: the ONS code stands in


def test_an_organisation_alert_names_the_provider_and_its_locations() -> None:
    org = content(change=level_change(scope="organisation"), name=None)
    message = render(org)
    assert message.data.links.location is None
    mail = email_message(message, "a@b.example", "c@d.example", NO_NAMES)
    assert f"provider {PROVIDER}" in str(mail["Subject"])
    plain, rich = parts(mail)
    assert f"Locations concerned: {LOCATION}, 1-101234568." in plain
    assert f"Locations concerned: {LOCATION}, 1-101234568." in rich
    assert "Location page" not in plain and "Location page" not in rich


def test_a_reminder_carries_its_number() -> None:
    message = render(REMINDER)
    assert message.data.reminder_number == 2
    assert message.data.label == "REMINDER: UNACKNOWLEDGED"
    plain, _ = parts(email_message(message, "a@b.example", "c@d.example", NO_NAMES))
    assert "not yet acknowledged (reminder 2)" in plain


def test_the_email_names_the_organisation_the_authorities_and_the_sources_with_their_codes() -> None:
    known = names("Surrey County Council", "Oakfield Care Ltd", {ECM: "Kent County Council call monitoring"})
    plain, rich = parts(email_message(render(ESCALATION), "a@b.example", "c@d.example", known))
    for text, escape in ((plain, str), (rich, html.escape)):
        assert "host and placing authority (Surrey County Council (E10000030))" in text
        assert f"Location: {escape('Oak & Ash House')} ({LOCATION})." in text
        assert "Host authority: Kent (E10000016)." in text  # from the ONS list: no authority record for it
        assert f"Provider: Oakfield Care Ltd ({PROVIDER})." in text
        assert "from Kent County Council call monitoring, 20 May 2024" in text
        assert f"from {COMPLAINTS}, 28 May 2024" in text  # no name for this source: its id


def test_an_organisation_alert_is_named_after_the_organisation_and_lists_its_locations_by_name() -> None:
    message = render(content(change=level_change(scope="organisation"), name=None))
    mail = email_message(message, "a@b.example", "c@d.example", names(organisation="Oakfield Care Ltd"))
    assert f"RISK RAISED: Oakfield Care Ltd (provider {PROVIDER}) risk raised" in str(mail["Subject"])
    plain, rich = parts(mail)
    assert f"Provider: Oakfield Care Ltd ({PROVIDER})." in plain
    assert f"Locations concerned: Oak & Ash House ({LOCATION}), Birch Lodge (1-101234568)." in plain
    assert f"Locations concerned: Oak &amp; Ash House ({LOCATION}), Birch Lodge (1-101234568)." in rich


def test_a_source_named_after_an_authority_takes_the_authoritys_name() -> None:
    known = names("Surrey County Council")
    assert known.source("urn:caresignal:source:E10000030-safeguarding") == "Surrey County Council (safeguarding)"
    assert known.source("urn:caresignal:source:E10000016-ecm") == "Kent (ecm)"  # the ONS list's name
    assert known.source("urn:caresignal:source:E10000099-ecm") is None  # no such authority known
    assert known.source("urn:caresignal:source:cqc-ratings") is None
    assert known.source_label("urn:caresignal:source:cqc-ratings") == "urn:caresignal:source:cqc-ratings"
