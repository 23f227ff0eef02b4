"""Number resolution (README, "Numbers") and caller-id parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.directory import Directory, demo_directory, parse_directory
from engine.numbers import (
    ExtensionTarget,
    NumberError,
    PublicTarget,
    SandboxTarget,
    format_caller_id,
    parse_caller_id,
    resolve,
)


@pytest.fixture(scope="module")
def demo() -> Directory:
    return demo_directory()


@pytest.mark.parametrize(
    ("number", "org", "allow_short", "extended"),
    [
        ("0003*210", None, True, "0003*210"),
        ("0003*210", 4, True, "0003*210"),  # extended works from any organization
        ("0004*210", 3, False, "0004*210"),
        ("210", 3, True, "0003*210"),
        ("210", 4, True, "0004*210"),  # short numbers are per organization
        ("211", 3, True, "0003*211"),
        (" 0003*300 ", 3, True, "0003*300"),  # surrounding blanks are ignored
    ],
)
def test_extensions(
    demo: Directory, number: str, org: int | None, allow_short: bool, extended: str
) -> None:
    target = resolve(number, demo, org, allow_short)
    assert isinstance(target, ExtensionTarget)
    assert target.extension.extended == extended


@pytest.mark.parametrize(("number", "index"), [("0003*00", 0), ("0003*05", 5), ("0004*09", 9)])
def test_sandbox(demo: Directory, number: str, index: int) -> None:
    target = resolve(number, demo, None, False)
    assert isinstance(target, SandboxTarget)
    assert (target.index, target.number) == (index, number)
    assert target.organization.code == number.split("*")[0]


@pytest.mark.parametrize(
    ("number", "org", "allow_short"),
    [
        ("5354353", 3, True),
        ("+4912345678", 3, True),
        ("211", 3, False),  # a short number taken as public when short numbers are off
        ("555", 3, True),  # no extension 555 in org 3: public
        ("555", None, True),  # no extension 555 anywhere
    ],
)
def test_public(demo: Directory, number: str, org: int | None, allow_short: bool) -> None:
    target = resolve(number, demo, org, allow_short)
    assert isinstance(target, PublicTarget)
    assert target.number == number
    assert (target.route.gateway_host, target.route.gateway_port) == ("127.0.0.1", 5080)


def test_public_longest_prefix_wins() -> None:
    directory = parse_directory(
        """
        [[routes]]
        prefix = "4"
        gateway = "udp:10.0.0.1:5060"
        [[routes]]
        prefix = "+49"
        gateway = "tcp:10.0.0.2:5060"
        rate = 0.1
        [[routes]]
        prefix = "491"
        gateway = "udp:10.0.0.3:5060"
        """
    )
    hosts = {
        n: resolve(n, directory).route.gateway_host  # type: ignore[union-attr]
        for n in ("+4912", "4912", "4920", "+4200")
    }
    assert hosts == {
        "+4912": "10.0.0.3",
        "4912": "10.0.0.3",
        "4920": "10.0.0.2",
        "+4200": "10.0.0.1",
    }
    with pytest.raises(NumberError, match="no route for public number 5354353"):
        resolve("5354353", directory)


@pytest.mark.parametrize(
    ("number", "org", "allow_short", "reason"),
    [
        ("0003*999", 3, True, "unknown extension 0003*999"),
        ("0009*210", 3, True, "unknown organization code 0009 in 0009*210"),
        ("0009*01", 3, True, "unknown organization code 0009"),
        ("210", None, True, "short number 210 needs an organization context"),
        ("21", 3, True, "unknown extension 0003*21"),
        ("21", None, False, "too short"),
        ("+12", 3, True, "too short"),
        ("1" * 21, 3, True, "too long"),
        ("", 3, True, "empty"),
        ("   ", 3, True, "empty"),
        ("abc", 3, True, "invalid number 'abc'"),
        ("0003*2a", 3, True, "invalid extended number"),
        ("*210", 3, True, "invalid extended number"),
        ("0003**210", 3, True, "invalid extended number"),
        ("++49123", 3, True, "invalid number"),
        ("49 123 4", 3, True, "invalid number"),
        ("٣٤٥٦٧", 3, True, "invalid number"),  # non-ASCII digits
    ],
)
def test_errors_say_why(
    demo: Directory, number: str, org: int | None, allow_short: bool, reason: str
) -> None:
    with pytest.raises(NumberError, match=reason.replace("*", r"\*").replace("+", r"\+")) as info:
        resolve(number, demo, org, allow_short)
    assert reason in info.value.reason


def test_non_string_number(demo: Directory) -> None:
    with pytest.raises(NumberError):
        resolve(210, demo, 3, True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("John Doe <4242425>", ("John Doe", "4242425")),
        ("  John   Doe<+4242425>  ", ("John Doe", "+4242425")),
        ("<0003*210>", (None, "0003*210")),
        ("4242425", (None, "4242425")),
        ("José O'Neil-Smith Jr. <210>", ("José O'Neil-Smith Jr.", "210")),
        ("Desk 2 <001>", ("Desk 2", "001")),
    ],
)
def test_parse_caller_id(text: str, parsed: tuple[str | None, str]) -> None:
    assert parse_caller_id(text) == parsed
    name, number = parsed
    assert parse_caller_id(format_caller_id(name, number)) == parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty caller id"),
        ("John Doe <>", "bad caller id number ''"),
        ("John Doe <42a>", "bad caller id number '42a'"),
        ("John Doe <42+4>", "bad caller id number"),
        ("John <Doe> <42>", "bad character(s) '<>'"),
        ("John Doe 4242425>", "expected 'Name <number>'"),
        ("John Doe <4242425", "expected 'Name <number>'"),
        ('"John" <4242425>', "bad character"),
        ("John;Doe <4242425>", "bad character"),
        ("J" * 65 + " <1>", "name too long"),
        ("<" + "1" * 33 + ">", "number too long"),
        ("<***>", "bad caller id number"),
    ],
)
def test_bad_caller_ids(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_caller_id(text)
    assert reason in str(info.value)


def test_format_caller_id() -> None:
    assert format_caller_id("John Doe", "4242425") == "John Doe <4242425>"
    assert format_caller_id(None, "4242425") == "4242425"


_DIALLED = st.text(alphabet="0123456789*+ #a٣", max_size=12)


@given(number=_DIALLED | st.text(max_size=12), org=st.sampled_from([None, 3, 4, 99]))
def test_any_input_resolves_or_says_why(number: str, org: int | None) -> None:
    directory = demo_directory()
    for allow_short in (True, False):
        try:
            target = resolve(number, directory, org, allow_short)
        except NumberError as exc:
            assert exc.reason
        else:
            assert isinstance(target, ExtensionTarget | PublicTarget | SandboxTarget)


@given(
    st.text(max_size=40) | st.from_regex(r"[A-Za-z .'-]{0,10} ?<\+?[0-9*]{1,8}>", fullmatch=True)
)
def test_caller_id_parse_never_crashes_and_round_trips(text: str) -> None:
    try:
        name, number = parse_caller_id(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert parse_caller_id(format_caller_id(name, number)) == (name, number)
