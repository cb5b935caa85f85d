"""The FastAPI echo of `bench.peers.echo_fastapi` as a Ray Serve ingress, behind Serve's proxy.

`bench/sockets.py --servers serve_echo` runs it on a local Ray cluster with the WebSocket
settings Haven's proxy gets (`deployments.proxy_hooks`) and one replica, so that what Serve
itself costs per socket (its proxy, and the replica side of forwarding each socket) is measured
apart from what Haven's Gateway and hosts add to it.
"""

from __future__ import annotations

from ray import serve

from bench.peers.echo_fastapi import app


@serve.deployment(max_ongoing_requests=100_000, ray_actor_options={"num_cpus": 0.25})
@serve.ingress(app)
class Echo:
    """Each open socket holds one request slot for its life, as a Gateway replica's does."""


APP = Echo.bind()
