"""The TOML text of a configuration: ``render_config(config)``, the inverse of ``load_config``.

Every key of every section is written with its effective value (defaults included), so what
``b2bua`` shows is the whole configuration; keys without a value (``api.public_url``,
``calls.music_on_hold``, ``cluster.secret`` unset) are left out, and an unset directory file is
written as a comment naming the built-in demo.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.config_model import Config, format_host


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(config: Config) -> str:
    """The TOML text of ``config`` (e.g. for ``b2bua`` to show the effective settings);
    ``load_config`` of it gives ``config`` back (directory path made absolute)."""
    sip, api, cluster = config.sip, config.api, config.cluster

    def strings(values: Sequence[str]) -> str:
        return "[" + ", ".join(_toml_string(value) for value in values) + "]"

    lines = [
        "[sip]",
        f"listen = {strings([str(address) for address in sip.listen])}",
        f"domain = {_toml_string(sip.domain)}",
        f"digest_algorithms = {strings(sip.digest_algorithms)}",
        f"max_connections = {sip.max_connections}",
        f"max_connections_per_source = {sip.max_connections_per_source}",
        f"tcp_idle_timeout = {sip.tcp_idle_timeout!r}",
        f"trace_messages = {sip.trace_messages}",
        f"trace_memory = {sip.trace_memory}",
        "",
        "[media]",
        f"backend = {_toml_string(config.media.backend)}",
        f"address = {_toml_string(config.media.address)}",
        f"ports = [{config.media.ports[0]}, {config.media.ports[1]}]",
        f"rtpengine = {strings(config.media.rtpengine)}",
        "",
        "[api]",
        f"listen = {_toml_string(f'{format_host(api.host)}:{api.port}')}",
    ]
    if api.public_url is not None:
        lines.append(f"public_url = {_toml_string(api.public_url)}")
    if api.callback_allow is not None:
        lines.append(f"callback_allow = {strings(api.callback_allow)}")
    lines += [
        "",
        "[store]",
        f"url = {_toml_string(config.store.url)}",
        "",
        "[calls]",
        f"wait_for_pickup = {config.calls.wait_for_pickup}",
        f"max_duration = {config.calls.max_duration}",
        f"drain = {config.calls.drain!r}",
        f"max_in_parking = {config.calls.max_in_parking}",
    ]
    if config.calls.music_on_hold is not None:
        lines.append(f"music_on_hold = {_toml_string(str(config.calls.music_on_hold))}")
    if config.directory.file is not None:
        lines += ["", "[directory]", f"file = {_toml_string(str(config.directory.file))}"]
    else:
        lines += ["", "[directory]", '# file = "directory.toml"  # unset: the built-in demo']
    lines += [
        "",
        "[cluster]",
        f"node = {_toml_string(cluster.node)}",
        f"heartbeat = {cluster.heartbeat!r}",
        f"failover = {cluster.failover!r}",
    ]
    if cluster.secret is not None:
        lines.append(f"secret = {_toml_string(cluster.secret)}")
    return "\n".join(lines) + "\n"
