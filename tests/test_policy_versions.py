"""Change ids name the policy version: a decision under a new policy is never taken for
a repeat of one under the old (pure: the ledger's bookkeeping without a broker)."""

from services.scoring.ledger import PublishedLedger
from services.scoring.model import change_id


def test_the_ledger_keeps_sequences_per_location_and_policy_version() -> None:
    ledger = PublishedLedger("127.0.0.1:9", "unused")
    ledger.record(change_id("1-101234567", "default-2026.11.1", 4))
    assert ledger.already_published(change_id("1-101234567", "default-2026.11.1", 4))
    assert ledger.already_published(change_id("1-101234567", "default-2026.11.1", 3))
    # The same sequence number under another policy is another decision.
    assert not ledger.already_published(change_id("1-101234567", "default-2026.11.2", 4))
    assert not ledger.already_published(change_id("1-101234568", "default-2026.11.1", 1))
    ledger.record(change_id("org:1-000111222", "default-2026.11.2", 1))
    assert ledger.already_published("org:1-000111222:default-2026.11.2:1")
    assert not ledger.already_published("org:1-000111222:default-2026.11.1:1")


def test_a_change_id_is_subject_version_and_sequence() -> None:
    assert change_id("1-101234567", "kent-3.1", 12) == "1-101234567:kent-3.1:12"
