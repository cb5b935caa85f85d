"""The Serve application builder named by `serve_config.yaml` (`deployments.app:build_app`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from ray.serve import Application

from deployments.gateway import Gateway
from deployments.generator import GeneratorOptions, ResponseGenerator
from deployments.safety import SafetyClassifier, SafetyOptions
from haven.settings import Settings


class AppArgs(BaseModel):
    """The `args:` block of the application in `serve_config.yaml`."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] = {}
    safety: SafetyOptions = SafetyOptions()
    generator: GeneratorOptions = GeneratorOptions()


def app_settings(parsed: AppArgs) -> Settings:
    """HAVEN_* variables fill what the config leaves out; the config wins where both are set.
    The generator's trust at medium and high risk is the turn's to apply; this is its only
    source, and trust at high includes medium."""
    trust = parsed.generator
    return Settings(
        **parsed.settings
        | {
            "generated_replies_at_high": trust.trusted_at_high,
            "generated_replies_at_medium": trust.trusted_at_medium or trust.trusted_at_high,
        }
    )


def build_app(args: dict[str, Any]) -> Application:
    parsed = AppArgs.model_validate(args)
    settings = app_settings(parsed)
    # @serve.deployment turns each class into a Deployment; the stubs keep the class type.
    classifier = SafetyClassifier.bind(parsed.safety, settings.model_cache_dir)  # type: ignore[attr-defined]
    generator = ResponseGenerator.bind(parsed.generator, settings)  # type: ignore[attr-defined]
    app: Application = Gateway.bind(settings, classifier, generator)  # type: ignore[attr-defined]
    return app
