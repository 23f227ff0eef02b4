"""The process's signing secret, and the keys derived from it for each use.

Tokens of the API are signed (HMAC), so any process that holds the secret can check them
without a lookup. (SIP digest nonces are signed with a key of each process's own, because the
nonce counts that stop replays are kept per process.) The secret is ``[cluster] secret`` when the
configuration sets one (the same on every node of a cluster); otherwise a random one is
generated the first time and kept in the store, so tokens and challenges stay valid across a
restart of the process. Each use gets its own key (``derive_key``), so a value signed for one
purpose is never accepted for another.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from engine.config_model import ClusterConfig
from engine.store import Store

logger = logging.getLogger(__name__)

SECRET_SETTING = "cluster.secret"


def cluster_secret(config: ClusterConfig, store: Store) -> bytes:
    """``[cluster] secret``, or the one generated once and kept in ``store``."""
    if config.secret is not None:
        return config.secret.encode("utf-8")
    stored = store.setting_default(SECRET_SETTING, secrets.token_hex(32))
    return stored.encode("ascii")


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose`` ("api-token"...) from the secret."""
    return hmac.new(secret, b"trio-b2bua key: " + purpose.encode("utf-8"), hashlib.sha256).digest()
