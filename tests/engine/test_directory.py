"""The directory: the demo content, lookups, and load errors that name the entry and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.directory import (
    DEMO_DIRECTORY_TOML,
    DirectoryError,
    ExtensionType,
    demo_directory,
    load_directory,
    parse_directory,
)

BASE = """
[[organizations]]
id = 3
code = "0003"
name = "Demo Org"

[[users]]
id = 12
organization = 3
name = "John Doe"
"""


def test_demo_directory_has_what_the_contract_promises() -> None:
    d = demo_directory()
    org = d.organization(3)
    assert org is not None and (org.code, org.name) == ("0003", "Demo Org")
    assert d.organization_by_code("0003") is org
    john = d.user(12)
    assert john is not None and (john.name, john.organization) == ("John Doe", 3)
    assert {u.id for u in d.users_of(3)} >= {12, 13}

    ext210 = d.extension("0003*210")
    assert ext210 is not None
    assert ext210.type is ExtensionType.PHONE_TERMINAL and ext210.type == "phone_terminal"
    assert (ext210.user, ext210.caller_id, ext210.password) == (
        12,
        "John Doe <4242425>",
        "secret210",
    )
    assert ext210.allow_caller_id is True and ext210.number == "210"
    ext211 = d.extension("0003*211")
    assert ext211 is not None and (ext211.user, ext211.password) == (13, "secret211")
    ext212 = d.extension("0003*212")
    assert ext212 is not None and ext212.user == 12 and ext212.allow_caller_id is False
    assert any(e.type != ExtensionType.PHONE_TERMINAL for e in d.extensions_of(3))
    assert [e.extended for e in d.extensions_of_user(12)] == [
        "0003*210",
        "0003*212",
        "0003*300",
        "0003*400",
        "0003*401",
        "0003*500",
    ]
    conference = d.extension("0003*401")
    assert conference is not None and conference.type is ExtensionType.CONFERENCE
    assert conference.pin == "1234"
    callback = d.extension("0003*500")
    assert callback is not None and callback.type is ExtensionType.CALLBACK

    owners = {app.client_id: (app.client_secret, app.owner_kind, app.owner_id) for app in d.apps}
    assert owners["demo-user-app"] == ("demo-user-secret", "user", 12)
    assert owners["demo-org-app"] == ("demo-org-secret", "organization", 3)
    assert owners["demo-admin-app"] == ("demo-admin-secret", "admin", None)
    assert d.app("demo-user-app") is not None and d.app("nope") is None

    route = d.route_for("5354353")
    assert route is not None
    assert (route.gateway_transport, route.gateway_host, route.gateway_port, route.rate) == (
        "udp",
        "127.0.0.1",
        5080,
        0.02,
    )
    peer = d.trusted_peer("127.0.0.1", 5090)
    assert peer is not None and peer.organization == 3
    assert d.trusted_peer("127.0.0.1", 5091) is None

    # a second organization, for scope rules
    other = d.organization(4)
    assert other is not None and other.code == "0004"
    assert d.users_of(4) and d.extensions_of(4)
    assert {u.id for u in d.users_of(3)}.isdisjoint({u.id for u in d.users_of(4)})


def test_demo_text_is_a_loadable_file(tmp_path: Path) -> None:
    path = tmp_path / "directory.toml"
    path.write_text(DEMO_DIRECTORY_TOML)
    assert load_directory(path).extensions == demo_directory().extensions


def test_find_extension_short_needs_an_organization() -> None:
    d = demo_directory()
    assert d.find_extension("0003*210") == d.extension("0003*210")
    assert d.find_extension("0003*210", 4) == d.extension("0003*210")
    assert d.find_extension("210", 3) == d.extension("0003*210")
    assert d.find_extension("210", 4) == d.extension("0004*210")
    assert d.find_extension("210", None) is None
    assert d.find_extension("210", 99) is None
    assert d.find_extension("999", 3) is None
    assert d.organization(99) is None and d.user(99) is None and d.users_of(99) == []


def test_trusted_peer_port_specific_beats_host_only() -> None:
    d = parse_directory(
        BASE
        + """
        [[organizations]]
        id = 4
        code = "0004"
        [[peers]]
        address = "10.0.0.1"
        organization = 3
        [[peers]]
        address = "10.0.0.1:5070"
        organization = 4
        [[peers]]
        address = "[::1]:5060"
        organization = 4
        """
    )
    assert d.trusted_peer("10.0.0.1", 5070).organization == 4  # type: ignore[union-attr]
    assert d.trusted_peer("10.0.0.1", 5999).organization == 3  # type: ignore[union-attr]
    assert d.trusted_peer("::1", 5060).organization == 4  # type: ignore[union-attr]
    assert d.trusted_peer("10.0.0.2", 5070) is None


def test_route_plus_prefix_and_default() -> None:
    d = parse_directory(
        """
        [[routes]]
        prefix = "+49"
        gateway = "tcp:gw.example.com:5061"
        """
    )
    route = d.route_for("+4930123")
    assert route is not None and route.prefix == "49" and route.gateway_transport == "tcp"
    assert route.rate == 0.0
    assert d.route_for("4930") is route
    assert d.route_for("+3312345") is None


EXT = """
[[extensions]]
number = "210"
organization = 3
user = 12
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + '[[organizations]]\nid = 3\ncode = "0005"\n', "organizations[1].id: duplicate"),
        (BASE + '[[organizations]]\nid = 5\ncode = "0003"\n', "organizations[1].code: duplicate"),
        ('[[organizations]]\nid = 3\ncode = "A3"\n', "organizations[0].code: must be digits"),
        ('[[organizations]]\nid = "3"\ncode = "3"\n', "organizations[0].id: expected an integer"),
        ("[[organizations]]\nid = 3\n", "organizations[0]: missing key 'code'"),
        (BASE + '[[users]]\nid = 12\norganization = 3\nname = "X"\n', "users[1].id: duplicate"),
        (BASE + "[[users]]\nid = 13\norganization = 9\n", "users[1].organization: unknown"),
        (BASE + EXT.replace("user = 12", "user = 99"), "extensions[0].user: unknown user 99"),
        (
            BASE + EXT.replace("organization = 3", "organization = 7"),
            "extensions[0].organization: unknown organization 7",
        ),
        (BASE + EXT + EXT, "extensions[1].number: duplicate extension 0003*210"),
        (BASE + EXT + 'type = "fax"\n', "extensions[0].type: unknown type 'fax'"),
        (BASE + EXT + 'caller_id = "John <x>"\n', "extensions[0].caller_id: bad caller id"),
        (BASE + EXT + 'colour = "red"\n', "extensions[0].colour: unknown key"),
        (BASE + EXT + 'allow_caller_id = "yes"\n', "extensions[0].allow_caller_id: expected"),
        (BASE + EXT.replace('"210"', "210"), "extensions[0].number: write the number as a string"),
        (BASE + EXT.replace('"210"', '"21a"'), "extensions[0].number: must be digits"),
        (BASE + EXT.replace('"210"', '"05"'), "extensions[0].number: '05' is reserved"),
        (
            BASE + '[[apps]]\nclient_id = "a"\nclient_secret = "s"\nowner = "user:99"\n',
            "apps[0].owner: unknown user 99",
        ),
        (
            BASE + '[[apps]]\nclient_id = "a"\nclient_secret = "s"\nowner = "boss"\n',
            "apps[0].owner: expected 'user:ID', 'organization:ID' or 'admin'",
        ),
        (
            BASE
            + '[[apps]]\nclient_id = "a"\nclient_secret = "s"\nowner = "admin"\n'
            + '[[apps]]\nclient_id = "a"\nclient_secret = "t"\nowner = "admin"\n',
            "apps[1].client_id: duplicate",
        ),
        ('[[routes]]\nprefix = ""\ngateway = "sip:1.2.3.4"\n', "routes[0].gateway: expected 'udp:"),
        ('[[routes]]\nprefix = ""\ngateway = "udp:1.2.3.4:99999"\n', "routes[0].gateway:"),
        ('[[routes]]\nprefix = "4x"\ngateway = "udp:1.2.3.4:5060"\n', "routes[0].prefix: must"),
        (
            '[[routes]]\nprefix = ""\ngateway = "udp:1.2.3.4:5060"\nrate = -1\n',
            "routes[0].rate: expected a number >= 0",
        ),
        (BASE + '[[peers]]\naddress = "1.2.3.4"\norganization = 9\n', "peers[0].organization"),
        (BASE + '[[peers]]\naddress = "1.2.3.4:x"\norganization = 3\n', "peers[0].address"),
        ("[[phones]]\nid = 1\n", "phones: unknown section"),
        ("organizations = 3\n", "organizations: expected an array of tables"),
        ("[[organizations]\n", "<directory>: invalid TOML"),
    ],
)
def test_load_errors_name_entry_and_key(text: str, message: str) -> None:
    with pytest.raises(DirectoryError) as info:
        parse_directory(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            'type = "conference"\npin = 1234',
            'extensions[0].pin: write the pin as a string: pin = "1234"',
        ),
        (
            'type = "conference"\npin = "12a"',
            "extensions[0].pin: must be 1 to 16 digits, got '12a'",
        ),
        ('type = "conference"\npin = ""', "extensions[0].pin: must be 1 to 16 digits, got ''"),
        (
            'type = "phone_terminal"\npin = "1"',
            "extensions[0].pin: only conference extensions have a pin, not phone_terminal",
        ),
    ],
)
def test_a_conference_pin_is_checked(entry: str, message: str) -> None:
    text = BASE + f'[[extensions]]\nnumber = "400"\norganization = 3\nuser = 12\n{entry}\n'
    with pytest.raises(DirectoryError) as info:
        parse_directory(text)
    assert message in str(info.value)


def test_a_conference_without_a_pin_takes_none() -> None:
    text = (
        BASE + '[[extensions]]\nnumber = "400"\norganization = 3\nuser = 12\ntype = "conference"\n'
    )
    ext = parse_directory(text).extension("0003*400")
    assert ext is not None and ext.pin is None


def test_user_must_belong_to_the_extensions_organization() -> None:
    text = (
        BASE
        + '[[organizations]]\nid = 4\ncode = "0004"\n'
        + EXT.replace("organization = 3", "organization = 4")
    )
    with pytest.raises(DirectoryError, match=r"extensions\[0\]\.user: user 12 belongs to"):
        parse_directory(text)


def test_load_directory_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="cannot read"):
        load_directory(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[organizations]]\nid = 3\ncode = 3\n")
    with pytest.raises(DirectoryError, match=r"organizations\[0\]\.code: expected a string"):
        load_directory(bad)
    broken = tmp_path / "broken.toml"
    broken.write_bytes(b"\xff\xfe")
    with pytest.raises(DirectoryError, match=r"broken\.toml: not UTF-8"):
        load_directory(broken)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "directory.toml"
    path.write_text(
        '[[organizations]]\nid = 3\ncode = "00x3"\n'  # bad code: org 3 still counts as declared
        "[[users]]\nid = 12\norganization = 99\n"
        '[[users]]\nid = 13\norganization = 3\nname = "Jane"\n'
        '[[extensions]]\nnumber = 210\norganization = 3\nuser = 13\ntype = "fax"\n'
        '[[apps]]\nclient_id = "a"\nclient_secret = ""\nowner = "boss"\n'
        '[[routes]]\nprefix = "4x"\ngateway = "udp:1.2.3.4:5060"\n'
        '[[peers]]\naddress = "1.2.3.4"\norganization = 3\ncolour = "red"\n'
        "[[phones]]\n"
    )
    with pytest.raises(DirectoryError) as info:
        load_directory(path)
    assert [key for key, _ in info.value.problems] == [
        "phones",
        "organizations[0].code",
        "users[0].organization",
        "extensions[0].number",
        "extensions[0].type",
        "apps[0].client_secret",
        "apps[0].owner",
        "routes[0].prefix",
        "peers[0].colour",
    ]
    lines = str(info.value).splitlines()
    assert len(lines) == 9
    assert lines[2] == f"{path}: users[0].organization: unknown organization 99"
    # a reference to a declared but broken entry is not a second problem
    assert not any("unknown organization 3" in line for line in lines)
