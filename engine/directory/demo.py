"""The built-in demo directory: what ``b2bua serve`` uses without ``[directory] file``.

Organization 3 (``0003``, "Demo Org") with users 12 and 13 and their extensions, organization 4,
a default route, a trusted peer and one App of every owner kind; the README's tour and
``b2bua demo`` rely on these entries.
"""

from __future__ import annotations

from engine.directory.loader import parse_directory
from engine.directory.model import Directory

DEMO_DIRECTORY_TOML = """\
# The built-in demo directory (what `b2bua serve` uses without [directory] file).

[[organizations]]
id = 3
code = "0003"
name = "Demo Org"

[[organizations]]
id = 4
code = "0004"
name = "Other Org"

[[users]]
id = 12
organization = 3
name = "John Doe"

[[users]]
id = 13
organization = 3
name = "Jane Roe"

[[users]]
id = 20
organization = 4
name = "Max Mustermann"

[[extensions]]
number = "210"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "John Doe <4242425>"
password = "secret210"
allow_caller_id = true

[[extensions]]
number = "211"
organization = 3
user = 13
type = "phone_terminal"
caller_id = "Jane Roe <4242426>"
password = "secret211"
allow_caller_id = true

[[extensions]]
number = "212"
organization = 3
user = 12
type = "phone_terminal"
caller_id = "John Doe <4242427>"
password = "secret212"
allow_caller_id = false

[[extensions]]
number = "300"
organization = 3
user = 12
type = "queue"

[[extensions]]
number = "400"
organization = 3
user = 12
type = "conference"

[[extensions]]
number = "401"
organization = 3
user = 12
type = "conference"
pin = "1234"

[[extensions]]
number = "500"
organization = 3
user = 12
type = "callback"
caller_id = "Demo Callback <4242500>"

[[extensions]]
number = "210"
organization = 4
user = 20
type = "phone_terminal"
caller_id = "Max Mustermann <5550210>"
password = "secret4210"
allow_caller_id = true

[[apps]]
client_id = "demo-user-app"
client_secret = "demo-user-secret"
owner = "user:12"

[[apps]]
client_id = "demo-org-app"
client_secret = "demo-org-secret"
owner = "organization:3"

[[apps]]
client_id = "demo-admin-app"
client_secret = "demo-admin-secret"
owner = "admin"

[[apps]]
client_id = "other-org-app"
client_secret = "other-org-secret"
owner = "organization:4"

[[routes]]
prefix = ""
gateway = "udp:127.0.0.1:5080"
rate = 0.02

[[peers]]
address = "127.0.0.1:5090"
organization = 3
"""


def demo_directory() -> Directory:
    """The built-in demo directory (``DEMO_DIRECTORY_TOML``)."""
    return parse_directory(DEMO_DIRECTORY_TOML, "<demo directory>")
