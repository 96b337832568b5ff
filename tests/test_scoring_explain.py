"""`caresignal policy explain` output, from the risk view of states the real model makes."""

from datetime import UTC

from services.scoring.explain import explain_lines, plural
from services.scoring.views import risk_view
from tests.test_scoring_model import AGENCY, HOME, LOW_COMPLAINT, MISSED, POLICY, SERIOUS, day, ev, run


def test_a_major_says_since_when_and_no_meaningless_score() -> None:
    state, _ = run([ev("safeguarding_concern", day(4), SERIOUS, "sg-1")], HOME)
    risk = risk_view(state, POLICY)
    assert risk["level"] == "major" and risk["since"] == day(4).isoformat()
    text = "\n".join(explain_lines(risk))
    head = text.splitlines()[0]
    assert (
        head == f"{HOME.location_id}: MAJOR since {day(4).astimezone(UTC):%Y-%m-%d %H:%M} UTC (policy {POLICY.version})"
    )
    assert "None" not in text and "score" not in text
    assert "serious_abuse_or_neglect" in text and "(1 event)" in text and "1 events" not in text


def test_counts_are_plural_and_a_score_is_shown_with_its_meaning() -> None:
    events = [ev("missed_visit", day(d), MISSED, f"mv-{d}") for d in (0, 1, 2)]
    events.append(ev("complaint", day(3), LOW_COMPLAINT, "c-1"))  # missed visits carry no weight
    events.append(ev("safeguarding_concern", day(4), SERIOUS, "sg-1"))
    state, _ = run(events, AGENCY)
    risk = risk_view(state, POLICY)
    assert risk["score"] > 0
    text = "\n".join(explain_lines(risk))
    assert "(3 events)" in text
    assert f"accumulated concern score: {risk['score']:g} (weighted low-level concerns" in text


def test_plural() -> None:
    assert [plural(n, "event") for n in (0, 1, 2)] == ["0 events", "1 event", "2 events"]
