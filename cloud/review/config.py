"""The ``review:`` section of a Seamline configuration file: the review console.

The console shares the ``cloud:`` section's audit database and crop store (it reviews what the classifier
service stored), so those are not repeated here.
"""

from __future__ import annotations

from pydantic import Field

from seamline.config.base import StrictModel


class ReviewConfig(StrictModel):
    """The browser console where people decide the garments routed to them."""

    host: str = Field(
        default="127.0.0.1",
        title="Listen address",
        description="Interface the console listens on (0.0.0.0 behind a proxy).",
    )
    port: int = Field(default=8080, ge=0, le=65535, title="Port", description="HTTP port (0: any free port).")
    lease_minutes: float = Field(
        default=15.0,
        gt=0,
        le=24 * 60,
        title="Item lease (min)",
        description="How long a taken item stays with its reviewer before it returns to the queue.",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, title="Session length (h)", description="How long a login lasts."
    )
    secure_cookies: bool = Field(
        default=False,
        title="Secure cookies",
        description="Send cookies over HTTPS only (set true behind TLS).",
    )
    queue_preview: int = Field(
        default=50,
        ge=1,
        le=1000,
        title="Queue preview",
        description="How many queued items the queue page lists.",
    )
    language: str = Field(
        default="en",
        pattern="^(en|ko|zh|ja)$",
        title="Language",
        description="Language of defect names in the console.",
    )
