"""Haven on a Ray cluster of three nodes on this machine, with PostgreSQL as its database.

A head node and two worker nodes (`ray.cluster_utils.Cluster`, one raylet each). Custom
resources steer placement the way an operator would on real machines:

- the head advertises `models`: the SafetyClassifier and ResponseGenerator replicas ask for it,
  so the node removed later is never one that holds a model;
- each worker advertises `frontend` (and `node_a` / `node_b`, to tell them apart): the two
  Gateway replicas and, through `connection_host_resources`, the ConnectionHosts ask for it, and
  SPREAD puts them on different workers.

Several proxies on one machine would all bind the same port, so Serve runs one proxy, on the
head (`proxy_location: HeadOnly`); clients connect there, as they would through a load balancer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray._private.node import Node
from ray.cluster_utils import Cluster
from ray.serve._private.constants import SERVE_NAMESPACE
from ray.serve.schema import ServeDeploySchema
from ray.util.state import list_actors

from deployments.launch import load_config
from tests.paths import ROOT

APP = "haven"
GATEWAY_CLASS = f"ServeReplica:{APP}:Gateway"
MODEL_CLASSES = (f"ServeReplica:{APP}:SafetyClassifier", f"ServeReplica:{APP}:ResponseGenerator")
HOST_CLASS = "ConnectionHost"
FRONTEND = "frontend"
# Node death is noticed after `period x threshold`: 15 s by default, 3 s here.
FAST_FAILURE_DETECTION = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


@dataclass(frozen=True)
class HostPlacement:
    actor_id: str
    name: str
    node_id: str
    owner_node_id: str


class HavenCluster:
    def __init__(self) -> None:
        # The head runs the models (0.5 CPU each) and Serve's controller and proxy (no CPU);
        # a worker one or two Gateway replicas (0.25 CPU each). Hosts ask for no CPU.
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2,
                "resources": {"models": 2},
                # The state API (`ray.util.state`) is served by the dashboard.
                "include_dashboard": True,
                "_system_config": FAST_FAILURE_DETECTION,
            },
        )
        self.workers: dict[str, Node] = {}
        for name in ("node_a", "node_b"):
            self.workers[name] = self.cluster.add_node(
                num_cpus=1, resources={name: 1, FRONTEND: 100}
            )
        self.cluster.wait_for_nodes()
        self.cluster.connect(namespace=SERVE_NAMESPACE)

    @property
    def head_id(self) -> str:
        assert self.cluster.head_node is not None
        node_id: str = self.cluster.head_node.node_id
        return node_id

    def node_id(self, worker: str) -> str:
        node_id: str = self.workers[worker].node_id
        return node_id

    def worker_named(self, node_id: str) -> str:
        return next(name for name, node in self.workers.items() if node.node_id == node_id)

    def hosts(self) -> list[HostPlacement]:
        """The live ConnectionHosts: where each runs, and where the replica that owns it runs.

        The owner is not in the state API; the GCS actor table has it."""
        table = self.cluster.global_state.actor_table(None)
        return [
            HostPlacement(
                actor_id=actor_id,
                name=info["Name"],
                node_id=info["Address"]["NodeID"],
                owner_node_id=info["OwnerAddress"]["NodeID"],
            )
            for actor_id, info in table.items()
            if info["ActorClassName"] == HOST_CLASS and info["State"] == "ALIVE"
        ]

    def remove(self, worker: str) -> None:
        """Kills every process of the worker node at once, as a lost machine would."""
        self.cluster.remove_node(self.workers.pop(worker), allow_graceful=False)

    def shutdown(self) -> None:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            self.cluster.shutdown()


def deploy_config(port: int, args: dict[str, dict[str, Any]]) -> ServeDeploySchema:
    """serve_config.yaml with the test's args, one proxy on the head, and placement steered."""
    base = load_config(ROOT / "serve_config.yaml", port=port, args=args)
    raw = base.model_dump(mode="json", exclude_unset=True)
    raw["proxy_location"] = "HeadOnly"
    raw["http_options"]["host"] = "127.0.0.1"
    for deployment in raw["applications"][0]["deployments"]:
        options = deployment.setdefault("ray_actor_options", {})
        if deployment["name"] == "Gateway":
            deployment["num_replicas"] = 2
            options["resources"] = {FRONTEND: 1}
        else:
            options["resources"] = {"models": 1}
    return ServeDeploySchema.model_validate(raw)


def alive_actors(class_names: Iterable[str]) -> dict[str, list[str]]:
    """Node ids of the ALIVE actors of each class, from Ray's state API."""
    wanted = set(class_names)
    placed: dict[str, list[str]] = {name: [] for name in wanted}
    alive = list_actors(
        filters=[("state", "=", "ALIVE")], limit=1000, raise_on_missing_output=False
    )
    for actor in alive:
        if actor.class_name in wanted and actor.node_id is not None:
            placed[actor.class_name].append(actor.node_id)
    return placed


def host_stats() -> dict[str, dict[str, int]]:
    """Users and open sockets of each live ConnectionHost, by actor name."""
    alive = list_actors(
        filters=[("class_name", "=", HOST_CLASS), ("state", "=", "ALIVE")],
        limit=1000,
        raise_on_missing_output=False,
    )
    stats: dict[str, dict[str, int]] = {}
    for actor in alive:
        assert actor.name, "every ConnectionHost is named"
        pending: Any = ray.get_actor(actor.name, actor.ray_namespace).stats.remote()
        stats[actor.name] = ray.get(pending)
    return stats


def app_running() -> bool:
    status = serve.status().applications.get(APP)
    return status is not None and status.status == "RUNNING"
