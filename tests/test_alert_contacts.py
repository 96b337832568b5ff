"""The contact file: the documented examples load, secrets come from the environment given,
every mistake is refused with a message naming the field, and the watcher applies good
edits, keeps the last good contacts on a broken one and says why."""

import base64
import copy
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.risk import Level
from services.alerts import contacts as contacts_module
from services.alerts.contacts import (
    ContactBook,
    ContactFileWatcher,
    ContactsError,
    Email,
    parse_contacts,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_FILE = ROOT / "deploy" / "alerts" / "contacts.yaml"
ORIGIN = "contacts.yaml"
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 140))).decode()
ENV = {"SURREY_WEBHOOK_SECRET": SECRET}

BASE: dict[str, Any] = {
    "authorities": {
        "E10000030": {
            "webhooks": [
                {
                    "id": "surrey-mash",
                    "url": "https://receiver.example/caresignal",
                    "secret_env": "SURREY_WEBHOOK_SECRET",
                }
            ],
            "emails": [{"address": "safeguarding@surrey.example", "min_level": "moderate"}],
        },
        "E06000036": {
            "webhooks": [
                {
                    "id": "bracknell-hub",
                    "url": "https://hub.bracknell.example/hooks",
                    "secret": OTHER_SECRET,
                    "min_level": "major",
                }
            ]
        },
    }
}


def documented_examples() -> list[str]:
    module_doc = contacts_module.__doc__ or ""
    from_docstring = textwrap.dedent(module_doc[module_doc.index("    authorities:") :])
    lines = DEPLOY_FILE.read_text().splitlines()
    start = lines.index("# authorities:")
    commented = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        commented.append(line.removeprefix("#").removeprefix(" "))
    return [from_docstring, "\n".join(commented) + "\n"]


def dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)


def edited(change: Any) -> str:
    document = copy.deepcopy(BASE)
    change(document)
    return dump(document)


def surrey(document: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = document["authorities"]["E10000030"]
    return result


# --- what loads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "hook_level", "email_level"),
    [(0, Level.moderate, Level.minor), (1, Level.minor, Level.moderate)],
    ids=["module-docstring", "deploy-file-comment"],
)
def test_the_documented_example_loads(example: int, hook_level: Level, email_level: Level) -> None:
    book = parse_contacts(documented_examples()[example], ORIGIN, ENV)
    assert book.authorities() == {"E10000030"}
    (hook,) = book.webhooks["E10000030"]
    assert hook.endpoint_id == "surrey-mash"
    assert hook.authority == "E10000030"
    assert hook.url.startswith("https://") and hook.url.endswith("/caresignal")
    assert hook.secret == SECRET
    assert hook.min_level is hook_level
    assert book.emails["E10000030"] == (Email("E10000030", "safeguarding@surrey.example", email_level),)
    assert book.webhook("surrey-mash") == hook
    assert book.webhook("nobody") is None


def readme_contact_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Point an authority's webhook or email at it") :]
    return section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]


def test_the_readme_example_loads_with_its_secret_from_the_environment() -> None:
    book = parse_contacts(readme_contact_example(), "README.md", ENV)
    assert book.webhooks["E10000030"][0].secret == SECRET


@pytest.mark.parametrize("text", [readme_contact_example(), *documented_examples()], ids=["readme", "doc", "deploy"])
def test_no_documented_example_suggests_an_inline_secret(text: str) -> None:
    # The contact file is tracked by git: a secret written into it is a leaked secret.
    assert "secret: whsec_" not in text and "secret_env:" in text
    assert "lowercase" in text


def test_the_shipped_file_loads_empty() -> None:
    book = parse_contacts(DEPLOY_FILE.read_text(), str(DEPLOY_FILE), {})
    assert book.authorities() == set()


def test_an_empty_file_is_an_empty_book() -> None:
    assert parse_contacts("", ORIGIN, {}).authorities() == set()


def test_secret_env_is_resolved_from_the_environ_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURREY_WEBHOOK_SECRET", OTHER_SECRET)
    book = parse_contacts(dump(BASE), ORIGIN, ENV)
    assert book.webhooks["E10000030"][0].secret == SECRET
    assert book.webhooks["E06000036"][0].secret == OTHER_SECRET
    assert book.webhooks["E06000036"][0].min_level is Level.major
    assert book.emails["E10000030"][0].min_level is Level.moderate


def test_secret_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURREY_WEBHOOK_SECRET", OTHER_SECRET)
    assert parse_contacts(dump(BASE), ORIGIN).webhooks["E10000030"][0].secret == OTHER_SECRET


def test_email_addresses_are_lowercased_and_min_level_defaults_to_minor() -> None:
    text = edited(lambda d: surrey(d)["emails"].append({"address": "Duty.Team@Surrey.Example"}))
    emails = parse_contacts(text, ORIGIN, ENV).emails["E10000030"]
    assert emails[1] == Email("E10000030", "duty.team@surrey.example", Level.minor)


def test_the_version_follows_the_text() -> None:
    text = dump(BASE)
    assert parse_contacts(text, ORIGIN, ENV).version == parse_contacts(text, ORIGIN, ENV).version
    assert parse_contacts(text, ORIGIN, ENV).version != parse_contacts(text + "\n# edited\n", ORIGIN, ENV).version


# --- what is refused -------------------------------------------------------------------


def set_secret(value: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        hook = surrey(document)["webhooks"][0]
        del hook["secret_env"]
        hook["secret"] = value

    return change


SURREY_HOOK = "authorities.E10000030.webhooks.0"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            set_secret("wsec_" + base64.b64encode(bytes(32)).decode()), [SURREY_HOOK, "secret", "whsec_"], id="prefix"
        ),
        pytest.param(set_secret("whsec_not*base64*at*all"), [SURREY_HOOK, "secret", "base64"], id="base64"),
        pytest.param(
            set_secret("whsec_" + base64.b64encode(bytes(16)).decode()), [SURREY_HOOK, "secret", "24 to 64"], id="short"
        ),
        pytest.param(
            set_secret("whsec_" + base64.b64encode(bytes(65)).decode()), [SURREY_HOOK, "secret", "24 to 64"], id="long"
        ),
        pytest.param(
            lambda d: surrey(d)["webhooks"][0].update(secret=SECRET),
            [SURREY_HOOK, "`secret` and `secret_env`"],
            id="both",
        ),
        pytest.param(
            lambda d: surrey(d)["webhooks"][0].pop("secret_env"),
            [SURREY_HOOK, "`secret` and `secret_env`"],
            id="neither",
        ),
        pytest.param(
            lambda d: d["authorities"]["E06000036"]["webhooks"][0].update(id="surrey-mash"),
            ["authorities", "webhook id 'surrey-mash' is used twice"],
            id="duplicate-webhook-id",
        ),
        pytest.param(
            lambda d: surrey(d)["emails"].append({"address": "SAFEGUARDING@surrey.example"}),
            ["E10000030", "safeguarding@surrey.example", "twice"],
            id="duplicate-email",
        ),
        pytest.param(
            lambda d: d["authorities"].update(E12000001={"emails": [{"address": "a@b.example"}]}),
            ["authorities.E12000001", "pattern"],
            id="bad-ons-code",
        ),
        pytest.param(
            lambda d: d["authorities"].update(Surrey={"emails": [{"address": "a@b.example"}]}),
            ["authorities.Surrey", "pattern"],
            id="name-not-ons-code",
        ),
        pytest.param(
            lambda d: surrey(d)["emails"][0].update(address="safeguarding.surrey.example"),
            ["authorities.E10000030.emails.0.address"],
            id="bad-email",
        ),
        pytest.param(
            lambda d: surrey(d)["emails"][0].update(address="Duty <duty@surrey.example>"),
            ["authorities.E10000030.emails.0.address"],
            id="email-with-display-name",
        ),
        pytest.param(
            lambda d: surrey(d)["webhooks"][0].update(url="ftp://receiver.example/x"),
            [f"{SURREY_HOOK}.url"],
            id="bad-url",
        ),
        pytest.param(
            lambda d: surrey(d)["webhooks"][0].update(id="Surrey MASH"), [f"{SURREY_HOOK}.id"], id="bad-webhook-id"
        ),
        pytest.param(
            lambda d: surrey(d)["webhooks"][0].update(id="Surrey-MASH"),
            [f"{SURREY_HOOK}.id", "'Surrey-MASH'", "lowercase", "did you mean 'surrey-mash'?"],
            id="uppercase-webhook-id",
        ),
        pytest.param(
            lambda d: surrey(d)["webhooks"][0].update(min_levl="major"),
            [f"{SURREY_HOOK}.min_levl", "Extra inputs"],
            id="unknown-webhook-key",
        ),
        pytest.param(
            lambda d: surrey(d).update(sms=["+440000"]), ["authorities.E10000030.sms", "Extra inputs"], id="unknown-key"
        ),
        pytest.param(lambda d: d.update(version=2), ["version", "Extra inputs"], id="unknown-top-level-key"),
        pytest.param(
            lambda d: surrey(d)["emails"][0].update(min_level="severe"),
            ["authorities.E10000030.emails.0.min_level"],
            id="bad-level",
        ),
    ],
)
def test_mistakes_are_refused_naming_the_field(change: Any, expected: list[str]) -> None:
    text = edited(change)
    with pytest.raises(ContactsError) as caught:
        parse_contacts(text, ORIGIN, ENV)
    message = str(caught.value)
    assert message.startswith(f"{ORIGIN}: ")
    for part in expected:
        assert part in message


def test_a_refused_secret_is_not_repeated_in_the_message() -> None:
    bad = "whsec_" + base64.b64encode(bytes(range(10))).decode()
    with pytest.raises(ContactsError) as caught:
        parse_contacts(edited(set_secret(bad)), ORIGIN, ENV)
    assert "secret" in str(caught.value)
    assert bad.removeprefix("whsec_") not in str(caught.value)


def test_a_missing_environment_variable_names_it_and_the_webhook() -> None:
    with pytest.raises(ContactsError) as caught:
        parse_contacts(dump(BASE), ORIGIN, {})
    assert "SURREY_WEBHOOK_SECRET" in str(caught.value)
    assert "surrey-mash" in str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["not-a-secret", "whsec_***", "whsec_" + base64.b64encode(bytes(8)).decode()],
    ids=["prefix", "b64", "short"],
)
def test_a_bad_secret_in_the_environment_names_the_variable_and_the_webhook(value: str) -> None:
    with pytest.raises(ContactsError) as caught:
        parse_contacts(dump(BASE), ORIGIN, {"SURREY_WEBHOOK_SECRET": value})
    message = str(caught.value)
    assert "SURREY_WEBHOOK_SECRET" in message
    assert "surrey-mash" in message
    assert "secret" in message
    assert value not in message


@pytest.mark.parametrize("text", ["authorities: [\n", "authorities:\n  E10000030: {webhooks: [}\n"])
def test_broken_yaml_is_refused(text: str) -> None:
    with pytest.raises(ContactsError, match=f"^{ORIGIN}: not valid YAML"):
        parse_contacts(text, ORIGIN, ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- E10000030\n", "valid dictionary"),
        ("authorities:\n", "authorities: Input should be a valid dictionary"),
        ("authorities: E10000030\n", "authorities: Input should be a valid dictionary"),
        ("authorities:\n  E10000030:\n", "authorities.E10000030: Input should be a valid dictionary"),
        ("authorities:\n  E10000030:\n    emails: safeguarding@surrey.example\n", "authorities.E10000030.emails"),
    ],
)
def test_wrong_shapes_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ContactsError) as caught:
        parse_contacts(text, ORIGIN, ENV)
    assert str(caught.value).startswith(f"{ORIGIN}: ")
    assert expected in str(caught.value)


# --- the watcher -----------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    """Write and move the mtime on, so the edit is seen whatever the clock's resolution."""
    previous = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(text)
    stamp = max(previous + 10, path.stat().st_mtime)
    os.utime(path, (stamp, stamp))


def test_the_watcher_loads_picks_up_edits_and_ignores_an_untouched_file(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    write(path, dump(BASE))
    watcher = ContactFileWatcher(path, ENV)
    assert watcher.refresh() is True
    first = watcher.book
    assert first.authorities() == {"E10000030", "E06000036"}
    assert watcher.last_error is None

    assert watcher.refresh() is False
    assert watcher.book is first

    write(path, edited(lambda d: d["authorities"].pop("E06000036")))
    assert watcher.refresh() is True
    assert watcher.book.authorities() == {"E10000030"}
    assert watcher.book.version != first.version


def test_a_file_seen_empty_mid_write_does_not_replace_the_contacts(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    write(path, dump(BASE))
    watcher = ContactFileWatcher(path, ENV)
    watcher.refresh()
    good = watcher.book
    write(path, "")  # what a reader sees between the truncation and the write of an edit
    assert watcher.refresh() is False
    assert watcher.book is good
    write(path, "authorities: {E1: nonsense}")  # and the edit was broken: the last good stays
    assert watcher.refresh() is False
    assert watcher.book is good and watcher.last_error is not None
    # Emptied on purpose: still empty at the next look, so it applies.
    write(path, "")
    assert watcher.refresh() is False
    assert watcher.refresh() is True
    assert watcher.book.authorities() == set()


def test_an_edit_of_the_same_size_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    write(path, dump(BASE))
    watcher = ContactFileWatcher(path, ENV)
    watcher.refresh()
    text = dump(BASE).replace("min_level: major", "min_level: minor")
    assert len(text) == len(dump(BASE))
    write(path, text)
    assert watcher.refresh() is True
    assert watcher.book.webhooks["E06000036"][0].min_level is Level.minor


def test_a_broken_edit_keeps_the_last_good_book_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    write(path, dump(BASE))
    watcher = ContactFileWatcher(path, ENV)
    watcher.refresh()
    good = watcher.book

    write(path, edited(lambda d: surrey(d)["emails"][0].update(address="nobody")))
    assert watcher.refresh() is False
    assert watcher.book is good
    assert watcher.last_error is not None
    assert str(path) in watcher.last_error
    assert "emails.0.address" in watcher.last_error
    assert "keeping the last good contacts" in watcher.last_error

    assert watcher.refresh() is False
    assert watcher.book is good
    assert watcher.last_error is not None

    write(path, dump(BASE))
    assert watcher.refresh() is True
    assert watcher.last_error is None


def test_a_deleted_file_keeps_the_last_good_book(tmp_path: Path) -> None:
    path = tmp_path / "contacts.yaml"
    write(path, dump(BASE))
    watcher = ContactFileWatcher(path, ENV)
    watcher.refresh()
    good = watcher.book
    path.unlink()
    assert watcher.refresh() is False
    assert watcher.book is good
    assert watcher.last_error is not None and "does not exist" in watcher.last_error


def test_a_file_missing_from_the_start_is_reported(tmp_path: Path) -> None:
    # Readiness reports "contacts: none loaded" only when last_error is set: a wrong path
    # at startup must not look like a healthy, empty contact file.
    watcher = ContactFileWatcher(tmp_path / "absent.yaml", ENV)
    assert watcher.refresh() is False
    assert watcher.book == ContactBook()
    assert watcher.last_error is not None and "does not exist" in watcher.last_error
