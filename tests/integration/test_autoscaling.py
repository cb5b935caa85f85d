"""The ResponseGenerator scales out on ongoing requests, with the autoscaling block that
serve_config.yaml ships (its bounds and delays shortened so a test can watch it happen).

A second application on the shared cluster: the generator alone, over a scripted
OpenAI-compatible server that writes slowly, so that replies stay in flight without a second
copy of the local model in memory.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.generator import GeneratorOptions, ResponseGenerator
from haven.backends import ChatTurn, ReplyRequest
from haven.settings import Settings
from tests.integration.conftest import SECRET, Server
from tests.openai_server import FakeOpenAIServer, Script

pytestmark = pytest.mark.integration

APP = "generator-autoscaling"


def shipped_autoscaling(server: Server) -> dict[str, Any]:
    config = server.config()
    (generator,) = [d for d in config.applications[0].deployments if d.name == "ResponseGenerator"]
    block = generator.autoscaling_config
    assert isinstance(block, dict), "serve_config.yaml gives the ResponseGenerator no autoscaling"
    return dict(block)


def running_replicas() -> int:
    status = serve.status().applications[APP].deployments["ResponseGenerator"]
    return int(status.replica_states.get("RUNNING", 0))


async def hold_replies(handle: DeploymentHandle, count: int) -> list[str]:
    request = ReplyRequest(history=[ChatTurn(role="user", text="hi")], intent="validate")
    streaming = handle.options(stream=True)

    async def one() -> str:
        return "".join([str(p) async for p in streaming.generate.remote(request)][1:])

    return await asyncio.gather(*(one() for _ in range(count)))


def test_generator_adds_a_replica_when_replies_in_flight_pass_the_target(server: Server) -> None:
    shipped = shipped_autoscaling(server)
    assert shipped["min_replicas"] >= 1
    assert shipped["target_ongoing_requests"] <= ResponseGenerator.max_ongoing_requests
    autoscaling = shipped | {
        "max_replicas": 2,
        "target_ongoing_requests": 2,
        "upscale_delay_s": 1,
        "downscale_delay_s": 600,
        "metrics_interval_s": 0.5,
        "look_back_period_s": 2,
    }
    slow = Script(pieces=tuple(f"word{n} " for n in range(40)), delay_s=0.5)
    with FakeOpenAIServer(slow) as model:
        options = GeneratorOptions.model_validate(
            {
                "backend": "openai",
                "planner": False,
                "openai": {"base_url": model.base_url, "model": "m", "api_key_env": None},
            }
        )
        deployment = ResponseGenerator.options(  # type: ignore[attr-defined]
            autoscaling_config=autoscaling,
            ray_actor_options={"num_cpus": 0.05},
        )
        handle = serve.run(
            deployment.bind(options, Settings(environment="test", jwt_secret=SECRET)),
            name=APP,
            route_prefix=None,
        )
        try:
            assert running_replicas() == 1
            load = ThreadPoolExecutor(1).submit(asyncio.run, hold_replies(handle, 8))
            deadline = time.monotonic() + 60
            while running_replicas() < 2:
                assert time.monotonic() < deadline, "no second ResponseGenerator replica in 60 s"
                time.sleep(0.5)
            replies = load.result(timeout=120)
        finally:
            serve.delete(APP)
    assert replies == ["".join(slow.pieces)] * 8
