"""``python -m b2bua`` is the ``b2bua`` command."""

from __future__ import annotations

from b2bua.cli import main

raise SystemExit(main())
