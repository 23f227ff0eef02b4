"""The signing secret: from config when set, else generated once and kept in the store."""

from __future__ import annotations

from pathlib import Path

from engine.config_model import ClusterConfig
from engine.keys import cluster_secret, derive_key
from engine.store import open_store


def test_the_configured_secret_wins_over_the_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    secret = cluster_secret(ClusterConfig(node="a", secret="a long random string"), store)
    assert secret == b"a long random string"
    assert store.setting("cluster.secret") is None  # nothing generated or stored
    store.close()


def test_a_generated_secret_survives_a_restart_and_is_shared(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    first = open_store(url)
    generated = cluster_secret(ClusterConfig(node="a"), first)
    assert len(generated) == 64  # 32 random bytes, hex
    first.close()
    again = open_store(url)
    assert cluster_secret(ClusterConfig(node="a"), again) == generated
    other_node = open_store(url)
    assert cluster_secret(ClusterConfig(node="b"), other_node) == generated
    other_node.close()
    again.close()


def test_each_purpose_has_its_own_key() -> None:
    assert derive_key(b"s", "api-token") != derive_key(b"s", "sip-nonce")
    assert derive_key(b"s", "api-token") == derive_key(b"s", "api-token")
    assert derive_key(b"s", "api-token") != derive_key(b"t", "api-token")
    assert len(derive_key(b"s", "x")) == 32
