"""``sms-twilio`` (also ``sms``): today's Twilio SMS behind the channel protocol.

The client and its error table stay in :mod:`alerts.channels.sms` (``SmsChannel``); this adapter
turns a :class:`~alerts.channels.base.Message` into its ``send`` call and its ``SendResult``
into an :class:`~alerts.channels.base.Outcome`. Unknown is resolved exactly once with
``SmsChannel.find_sent`` (Twilio lists what it took, by number and body).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

from alerts.channels.base import ChannelError, Message, Outcome
from alerts.channels.sms import SmsChannel, SmsChannelError

__all__ = ["TwilioSms"]


class TwilioSms:
    name: ClassVar[str] = "sms-twilio"
    can_look_up: ClassVar[bool] = True

    def __init__(self, sms: SmsChannel, status_callback: str | None = None) -> None:
        self.sms = sms
        self.status_callback = status_callback

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        """From ``settings.sms`` (its environment, TWILIO_*, is applied by the configuration loader)."""
        s = settings.sms
        return cls(SmsChannel(s.account_sid, s.auth_token.get_secret_value(), s.from_number,
                              base_url=s.base_url, timeout_s=settings.notify.sms_timeout_s))

    def send(self, message: Message) -> Outcome:
        r = self.sms.send(message.to, message.text, status_callback=self.status_callback)
        code = None if r.error_code is None else str(r.error_code)
        return Outcome(r.outcome, provider_id=r.sid, error_code=code, error=r.error)

    def find_sent(self, message: Message, since: datetime) -> str | None:
        try:
            return self.sms.find_sent(message.to, message.text, since)
        except SmsChannelError as exc:
            raise ChannelError(str(exc)) from exc
