"""Crisis resources by region: what a person at risk is shown before anything else.

The seed's keys (`crisis_hotline`, `crisis_text`, `message`) are always present; the other fields
add detail. Numbers are the national lines each country publishes; review them before adding a
region.
"""

from __future__ import annotations

from haven.protocol import EmergencyResources
from haven.settings import Settings

_TABLE: dict[str, EmergencyResources] = {
    "GB": EmergencyResources(
        locale="GB",
        crisis_hotline="116 123",
        crisis_text="85258",
        text_instruction="Text SHOUT to 85258",
        emergency_number="999",
        message=(
            "If you are in immediate danger, call 999 now. You can call Samaritans free on "
            "116 123 any time, or text SHOUT to 85258."
        ),
    ),
    "CA": EmergencyResources(
        locale="CA",
        crisis_hotline="988",
        crisis_text="988",
        text_instruction="Text 988",
        emergency_number="911",
        chat_url="https://988.ca",
        message=(
            "If you are in immediate danger, call 911 now. You can call or text 988 "
            "(Suicide Crisis Helpline) any time."
        ),
    ),
    "IE": EmergencyResources(
        locale="IE",
        crisis_hotline="116 123",
        crisis_text="50808",
        text_instruction="Text HELLO to 50808",
        emergency_number="112",
        message=(
            "If you are in immediate danger, call 112 or 999 now. You can call Samaritans free "
            "on 116 123 any time, or text HELLO to 50808."
        ),
    ),
    "AU": EmergencyResources(
        locale="AU",
        crisis_hotline="13 11 14",
        crisis_text="0477 13 11 14",
        text_instruction="Text 0477 13 11 14",
        emergency_number="000",
        chat_url="https://www.lifeline.org.au",
        message=(
            "If you are in immediate danger, call 000 now. You can call Lifeline on 13 11 14 "
            "or text 0477 13 11 14 any time."
        ),
    ),
}
# Other spellings people and browsers use for the same regions.
_ALIASES = {
    "UK": "GB",
    "EN-GB": "GB",
    "EN-US": "US",
    "EN-CA": "CA",
    "FR-CA": "CA",
    "EN-IE": "IE",
    "GA-IE": "IE",
    "EN-AU": "AU",
}
SUPPORTED_LOCALES: tuple[str, ...] = ("US", *_TABLE)


def normalize_locale(value: str | None) -> str | None:
    """A supported region code for `value` ("en-GB", "uk", "AU"), or None."""
    if not value:
        return None
    key = value.strip().replace("_", "-").upper()
    key = _ALIASES.get(key, key)
    if key in SUPPORTED_LOCALES:
        return key
    region = key.rsplit("-", 1)[-1]
    region = _ALIASES.get(region, region)
    return region if region in SUPPORTED_LOCALES else None


def resources_for(locale: str | None, settings: Settings) -> EmergencyResources:
    key = normalize_locale(locale) or normalize_locale(settings.default_locale) or "US"
    if key in _TABLE:
        return _TABLE[key]
    # The United States entry comes from the settings, so a deployment can adjust it.
    return EmergencyResources(
        locale="US",
        crisis_hotline=settings.crisis_hotline,
        crisis_text=settings.crisis_text,
        text_instruction=f"Text HOME to {settings.crisis_text}",
        emergency_number="911",
        chat_url="https://988lifeline.org/chat",
        message=settings.crisis_message,
    )
