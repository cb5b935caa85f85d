"""Where Ray may start a ConnectionHost: anywhere by default, or spread over the nodes that
advertise `connection_host_resources`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from actors.pool import HOST_MAX_CONCURRENCY, host_actor_options
from haven.settings import Settings


def test_host_asks_for_no_cpu_and_keeps_ray_default_placement_without_resources() -> None:
    options = host_actor_options(Settings(), "haven-connection-host-0")
    assert options == {
        "name": "haven-connection-host-0",
        "get_if_exists": True,
        "num_cpus": 0,
        "max_concurrency": HOST_MAX_CONCURRENCY,
    }


def test_host_resources_pin_hosts_to_those_nodes_and_spread_them() -> None:
    settings = Settings(connection_host_resources={"frontend": 1, "zone_a": 0.5})
    options = host_actor_options(settings, "haven-connection-host-1")
    assert options["resources"] == {"frontend": 1.0, "zone_a": 0.5}
    assert options["scheduling_strategy"] == "SPREAD"
    assert options["num_cpus"] == 0


def test_host_options_do_not_share_the_settings_dict() -> None:
    settings = Settings(connection_host_resources={"frontend": 1})
    host_actor_options(settings, "h")["resources"]["frontend"] = 99
    assert settings.connection_host_resources == {"frontend": 1.0}


def test_host_resources_are_read_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAVEN_CONNECTION_HOST_RESOURCES", '{"frontend": 2}')
    assert Settings().connection_host_resources == {"frontend": 2.0}


@pytest.mark.parametrize("amount", [0, -1])
def test_host_resource_amounts_must_be_positive(amount: float) -> None:
    with pytest.raises(ValidationError):
        Settings(connection_host_resources={"frontend": amount})
