"""Registration with every broker replica: :class:`~xtts_balancer.broker.BrokerLinks` against
fake brokers (real HTTP servers) on several 127.0.0.x addresses that share one port, as the
pods of a headless Service do, found through :mod:`broker_dns`'s table."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from broker_dns import write_table
from fake_broker import SECRET, FakeBroker, running

from xtts_balancer.broker import BrokerLinks
from xtts_balancer.discovery import BrokerTarget, load_resolver, resolve_targets, system_resolver
from xtts_balancer.settings import BalancerSettings
from xtts_core.cluster import DEREGISTER_PATH, HEARTBEAT_PATH, REGISTER_PATH
from xtts_core.errors import SettingsError
from xtts_core.settings import load_settings

NAME = "brokers.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        port: int = sock.getsockname()[1]
        return port


def settings(**cluster: Any) -> BalancerSettings:
    return BalancerSettings(
        service={"standalone_mode": False, "port": 8123},
        model={"backend": "tone"},
        auth={"enabled": False},
        cluster={"secret": SECRET, "balancer_id": "bal", "retry_interval_s": 0.05, **cluster},
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


def heard(broker: FakeBroker, path: str) -> bool:
    return path in broker.paths()


def test_links_follow_the_replicas_a_name_resolves_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "dns.json"
    monkeypatch.setenv("FLEET_DNS_FILE", str(table))
    port = free_port()
    config = settings(
        broker_urls=[f"http://{NAME}:{port}"], resolve_brokers=True, resolve_interval_s=0.05,
        broker_resolver="broker_dns:resolve",
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        a, b, c = (stack.enter_context(running(f"127.0.0.{i}", port)) for i in (2, 3, 4))
        write_table(table, {NAME: ["127.0.0.2", "127.0.0.3"]})

        async def scenario() -> None:
            links = BrokerLinks(config, lambda: (1, 2))
            links.start()
            try:
                await until(lambda: heard(a, HEARTBEAT_PATH) and heard(b, HEARTBEAT_PATH), "a, b")
                assert a.calls[0] == (REGISTER_PATH, a.calls[0][1])
                assert a.calls[0][1]["id"] == "bal" and a.calls[0][1]["capacity"] == 2
                assert set(a.hosts) == {f"{NAME}:{port}"}  # the name, not the address

                # A failed lookup keeps every link: it cannot tell "gone" from "DNS is down".
                write_table(table, {})
                await asyncio.sleep(0.3)
                assert set(links.links) == {f"http://127.0.0.{i}:{port}" for i in (2, 3)}
                assert not heard(a, DEREGISTER_PATH) and not heard(b, DEREGISTER_PATH)

                # b leaves the name, c joins it.
                write_table(table, {NAME: ["127.0.0.3", "127.0.0.4"]})
                await until(lambda: heard(c, HEARTBEAT_PATH) and heard(a, DEREGISTER_PATH), "c")
                assert a.calls[-1] == (DEREGISTER_PATH, {"id": "bal"})
                assert not heard(b, DEREGISTER_PATH)
            finally:
                await links.stop()
            for broker in (b, c):
                assert broker.calls[-1] == (DEREGISTER_PATH, {"id": "bal"})

        asyncio.run(scenario())


def test_a_list_of_urls_is_one_link_each_and_a_404_registers_again() -> None:
    with running() as first, running() as second:
        urls = [f"http://127.0.0.1:{s.server_address[1]}" for s in (first, second)]

        async def scenario() -> None:
            links = BrokerLinks(settings(broker_urls=urls), lambda: (1, 1))
            links.start()
            try:
                await until(
                    lambda: heard(first, HEARTBEAT_PATH) and heard(second, HEARTBEAT_PATH), "both"
                )
                registrations = second.paths().count(REGISTER_PATH)
                second.forget = True  # a restarted replica: only it hears a registration again
                await until(
                    lambda: second.paths().count(REGISTER_PATH) == registrations + 1, "again"
                )
                assert first.paths().count(REGISTER_PATH) == 1
            finally:
                await links.stop()

        asyncio.run(scenario())
    assert first.calls[-1][0] == second.calls[-1][0] == DEREGISTER_PATH


def test_resolve_targets_names_each_address_once() -> None:
    def two(host: str) -> list[str]:
        return ["127.0.0.3", "127.0.0.2", "127.0.0.3", "::1"]

    targets = asyncio.run(resolve_targets(["https://b.test:19000"], two))
    assert targets == {
        url: BrokerTarget(url, "b.test")
        for url in ("https://127.0.0.2:19000", "https://127.0.0.3:19000", "https://[::1]:19000")
    }
    # A resolver that fails, or answers something that is no address, changes nothing.
    assert asyncio.run(resolve_targets(["http://b.test:1"], lambda host: ["b.internal"])) is None
    assert asyncio.run(resolve_targets(["http://b.test:1"], lambda host: {}[host])) is None
    plain = asyncio.run(resolve_targets(["http://b.test:1"], None))
    assert plain == {"http://b.test:1": BrokerTarget("http://b.test:1")}
    assert "127.0.0.1" in system_resolver("localhost")


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ("broker_urls: [ftp://b:1]", "is not a base URL"),
        ("broker_urls: ['http://b:1/api']", "is not a base URL"),
        ("broker_resolver: nosuchmodule_xyz:resolve", "cannot import 'nosuchmodule_xyz'"),
        ("broker_resolver: os.path", "is not an import path"),
        ("broker_resolver: 'os:sep'", "is not callable"),
    ],
)
def test_bad_broker_settings_name_the_key(tmp_path: Path, cluster: str, message: str) -> None:
    path = tmp_path / "balancer.yaml"
    path.write_text(
        "model: {backend: tone}\nauth: {enabled: false}\n"
        f"service: {{standalone_mode: false}}\ncluster: {{secret: s, {cluster}}}\n"
    )
    with pytest.raises(SettingsError, match=message):
        load_settings(BalancerSettings, str(path))
    assert load_resolver(None) is system_resolver
