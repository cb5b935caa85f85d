"""How `make serve` starts Ray: JSON logs for the whole job, metrics on the port it was given."""

from __future__ import annotations

import pytest

from deployments import launch


def test_a_local_cluster_gets_json_logs_and_the_fixed_metrics_port() -> None:
    options = launch.ray_init_options("local", 9123)
    assert options["_metrics_export_port"] == 9123
    assert options["logging_config"].encoding == "JSON"
    assert options["include_dashboard"] is False


def test_a_running_cluster_keeps_the_metrics_port_its_nodes_were_started_with() -> None:
    options = launch.ray_init_options("ray://head:10001", 9123)
    assert "_metrics_export_port" not in options
    assert options["logging_config"].encoding == "JSON"


def test_metrics_port_defaults_to_8080_and_may_not_be_the_gateways(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert launch.DEFAULT_METRICS_EXPORT_PORT == 8080
    monkeypatch.setenv("PORT", "3000")
    with pytest.raises(SystemExit) as refused:
        launch.main(["--metrics-export-port", "3000"])
    assert refused.value.code == 2
    assert "other than PORT (3000)" in capsys.readouterr().err
