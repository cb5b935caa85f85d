"""Where Ray may start a ConnectionHost: anywhere by default, or spread over the nodes that
advertise `connection_host_resources`, host i on the same node whichever replica creates it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.pool import HOST_MAX_CONCURRENCY, host_actor_options, node_for_host
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


def test_a_chosen_node_is_preferred_softly_over_spreading() -> None:
    settings = Settings(connection_host_resources={"frontend": 1})
    node_b = "b2" * 28  # Ray node ids are 28 bytes of hex
    options = host_actor_options(settings, "haven-connection-host-1", node_id=node_b)
    strategy = options["scheduling_strategy"]
    assert isinstance(strategy, NodeAffinitySchedulingStrategy)
    assert (strategy.node_id, strategy.soft) == (node_b, True)
    assert options["resources"] == {"frontend": 1.0}


def test_without_resources_a_node_id_changes_nothing() -> None:
    assert "scheduling_strategy" not in host_actor_options(Settings(), "h", node_id="node-b")


NODES = [
    {"NodeID": "c", "Alive": True, "Resources": {"CPU": 2.0, "frontend": 1.0}},
    {"NodeID": "head", "Alive": True, "Resources": {"CPU": 2.0, "models": 1.0}},
    {"NodeID": "a", "Alive": True, "Resources": {"CPU": 2.0, "frontend": 2.0}},
    {"NodeID": "b", "Alive": False, "Resources": {"CPU": 2.0, "frontend": 1.0}},
]


def test_hosts_go_round_robin_over_the_live_nodes_with_the_resources() -> None:
    chosen = [node_for_host(NODES, {"frontend": 1.0}, index) for index in range(4)]
    assert chosen == ["a", "c", "a", "c"]  # "b" is dead, "head" lacks the resource
    assert node_for_host(NODES, {"frontend": 2.0}, 1) == "a"
    assert node_for_host(NODES, {"gpu_frontend": 1.0}, 0) is None


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
