"""amqtt's authentication for the interop suite: every client is accepted, as with amqtt's
AnonymousAuthPlugin and allow_anonymous, but not marked anonymous. amqtt 0.12 treats an
anonymous session as a clean one: about a second after the client disconnects (its session
monitor's tick) it forgets the session, subscriptions and queued messages included, so a
persistent session survives only a reconnect within that second. A broker that keeps
sessions for authenticated clients is what nodes meet in practice.

Loaded by amqtt from its configuration (tools/brokers/__init__.py, class Amqtt) with this
directory on PYTHONPATH."""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class OpenAuth(BaseAuthPlugin):
    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session: Session) -> bool:
        return True
