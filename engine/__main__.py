"""``python -m engine`` is the ``b2bua`` command."""

from __future__ import annotations

from engine.cli import main

raise SystemExit(main())
