"""Test-suite wide settings: Hypothesis profiles only.

``HYPOTHESIS_PROFILE=fast`` (the default) keeps local runs quick; ``.ci/run`` exports
``HYPOTHESIS_PROFILE=ci`` for more examples. Deadlines are off in both: the machine is shared
and timing noise must not fail a property.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

# a real PostgreSQL for the store's tests: the postgres_server and pg_url fixtures
pytest_plugins = ["tests.pg"]
