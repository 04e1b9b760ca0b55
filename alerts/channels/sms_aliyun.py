"""``sms-aliyun``: Alibaba Cloud SMS (dysmsapi 2017-05-25) with the official SDK
``alibabacloud_dysmsapi20170525``.

``SendSms`` with SignName, TemplateCode and TemplateParam (Chinese SMS must use an approved
template: ``alerts.channels.templates`` picks it by level and kind and fills its variables) and
``OutId`` = the message's idempotency key. Aliyun answers business errors with HTTP 200 and a
``Code`` other than ``OK``:

| Aliyun                                                        | outcome                   |
|---------------------------------------------------------------|---------------------------|
| ``OK``                                                        | sent, provider id BizId   |
| ``isv.BUSINESS_LIMIT_CONTROL`` (flow control per number)      | retry after 60 s (minute),|
|                                                               | 3600 s (hour or day)      |
| ``isv.DAY_LIMIT_CONTROL``, ``isv.MONTH_LIMIT_CONTROL``,       | retry after 3600 s        |
| ``Throttling*``, HTTP 429 / 503                               | retry                     |
| account: ``isv.OUT_OF_SERVICE``, ``isv.AMOUNT_NOT_ENOUGH``,   | retry after 60 s (every   |
| ``isv.ACCOUNT_*``, ``isp.RAM_PERMISSION_DENY``, bad AccessKey | message waits for a fix,  |
|                                                               | as Twilio's 20003)        |
| ``isp.SYSTEM_ERROR``, other HTTP 5xx                          | unknown                   |
| ``isv.MOBILE_NUMBER_ILLEGAL``, ``isv.SMS_TEMPLATE_ILLEGAL``,  | failed                    |
| any other code, a template field the message lacks            |                           |
| connection never made / read timeout or dropped               | retry / unknown           |

Unknown is resolved exactly once: ``QuerySendDetails`` lists what Aliyun took for a number on a
day, with each message's OutId (also messages still waiting for their delivery receipt), so
``find_sent`` finds the key, and the dispatcher resends only when it is absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Self

from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
from alibabacloud_tea_openapi.models import Config as SdkConfig

from alerts.channels.base import ChannelError, Message, Outcome, Receipt
from alerts.channels.templates import MissingField, choose, fill
from alerts.channels.transport import http_status_outcome, transport_outcome
from config.channels import AliyunSmsSettings, ChannelConfigError

__all__ = ["AliyunSms", "outcome_of_code"]

CHINA = timezone(timedelta(hours=8))
RATE_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL"})
ACCOUNT_CODES = frozenset({"isv.OUT_OF_SERVICE", "isv.AMOUNT_NOT_ENOUGH", "isv.ACCOUNT_NOT_EXISTS",
                           "isv.ACCOUNT_ABNORMAL", "isp.RAM_PERMISSION_DENY", "isv.PRODUCT_UN_SUBSCRIPT",
                           "InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch", "MissingAccessKeyId"})
UNKNOWN_CODES = frozenset({"isp.SYSTEM_ERROR", "InternalError"})


def outcome_of_code(code: str, message: str) -> Outcome:
    """The outcome of an answer whose ``Code`` is not ``OK``."""
    error = f"{code}: {message}"
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        wait = 60.0 if "分钟" in message or "minute" in message.lower() else 3600.0
        return Outcome("retry", retry_after_s=wait, error_code=code, error=error)
    if code in RATE_CODES:
        return Outcome("retry", retry_after_s=3600.0, error_code=code, error=error)
    if code.startswith("Throttling"):
        return Outcome("retry", error_code=code, error=error)
    if code in ACCOUNT_CODES:
        return Outcome("retry", retry_after_s=60.0, error_code=code, error=error)
    if code in UNKNOWN_CODES:
        return Outcome("unknown", error_code=code, error=error)
    return Outcome("failed", error_code=code, error=error)


def _number(e164: str) -> str:
    """Aliyun's form: a mainland number without +86, others with their country code, no +."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


def _endpoint(endpoint: str) -> tuple[str, str]:
    """``(host[:port], protocol)`` of a host or URL setting."""
    for scheme in ("http", "https"):
        if endpoint.startswith(f"{scheme}://"):
            return endpoint[len(scheme) + 3:].rstrip("/"), scheme
    return endpoint, "https"


class AliyunSms:
    name: ClassVar[str] = "sms-aliyun"
    can_look_up: ClassVar[bool] = True

    def __init__(self, settings: AliyunSmsSettings, timeout_s: float = 10.0) -> None:
        if not settings.access_key_id or settings.access_key_secret is None:
            raise ChannelConfigError("sms-aliyun needs notify.channels.sms_aliyun.access_key_id and "
                                     "access_key_secret (or ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET)")
        host, protocol = _endpoint(settings.endpoint)
        ms = int(timeout_s * 1000)
        self.settings = settings
        self._client = Client(SdkConfig(
            access_key_id=settings.access_key_id,
            access_key_secret=settings.access_key_secret.get_secret_value(),
            endpoint=host, protocol=protocol, read_timeout=ms, connect_timeout=ms))

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        """From the whole ``config.models.Settings``, its environment (secrets, endpoints) applied
        by the configuration loader (``config.channels.channel_env``); the registry calls this."""
        channels = settings.notify.channels
        if channels.sms_aliyun is None:
            raise ChannelConfigError("sms-aliyun is used but notify.channels.sms_aliyun is not configured")
        return cls(channels.sms_aliyun, channels.timeout_s)

    def send(self, message: Message) -> Outcome:
        template = choose(self.settings.templates, message)
        try:
            params = fill(template.params, message, self.settings.max_param_chars)
        except MissingField as exc:
            return Outcome("failed", error_code="template-field", error=str(exc))
        request = models.SendSmsRequest(
            phone_numbers=_number(message.to), sign_name=self.settings.sign_name,
            template_code=template.code, out_id=message.key or None,
            template_param=json.dumps(params, ensure_ascii=False) if params else None)
        try:
            body = self._client.send_sms(request).body
        except ThrottlingException as exc:
            return Outcome("retry", retry_after_s=float(exc.retry_after) if exc.retry_after else None,
                           error_code=exc.code, error=str(exc.message))
        except AlibabaCloudException as exc:  # HTTP 4xx / 5xx with a code
            code, status = str(exc.code), int(exc.status_code or 0)
            if code in ACCOUNT_CODES or code.startswith("Throttling") or code in RATE_CODES:
                return outcome_of_code(code, str(exc.message))
            return http_status_outcome(status, f"HTTP {status}: {exc.message}", code)
        except Exception as exc:  # noqa: BLE001 - network, or a 2xx we cannot read
            return transport_outcome(exc) or Outcome("unknown", error=f"{type(exc).__name__}: {exc}")
        if body is None or body.code is None:
            return Outcome("unknown", error="an answer without Code")
        if body.code != "OK":
            return outcome_of_code(body.code, body.message or "")
        return Outcome("sent", provider_id=body.biz_id)

    def receipt(self, message: Message, sent_after: datetime, provider_id: str) -> Receipt | None:
        """The delivery receipt of the send ``provider_id`` of ``message``, made after
        ``sent_after``: ``QuerySendDetails`` of its number on that day and the next (China time),
        by its BizId (or, for a send a lookup found, ``OutId:<key>``, the best entry with its
        key); ``SendStatus`` 3 delivered, 2 failed (``ErrCode``), 1 still waiting (None). Raises
        ``ChannelError`` when Aliyun cannot be asked."""
        sent_after = sent_after.replace(tzinfo=UTC) if sent_after.tzinfo is None else sent_after
        day = sent_after.astimezone(CHINA).date()
        biz_id = None if provider_id.startswith("OutId:") else provider_id
        for date in (day, day + timedelta(days=1)):
            found = [d for d in self._details(message.to, date.strftime("%Y%m%d"), biz_id)
                     if d.out_id == message.key]
            if not found:
                continue
            best = max(found, key=lambda d: {3: 2, 1: 1}.get(d.send_status, 0))  # delivered > waiting > failed
            if best.send_status == 3:
                return Receipt("delivered")
            if best.send_status == 2:
                return Receipt("undelivered", error_code=best.err_code, error=f"Aliyun: {best.err_code}")
            return None  # 1: waiting for the handset's receipt
        return None

    def _details(self, to: str, send_date: str, biz_id: str | None = None) -> list[Any]:
        """Every ``SmsSendDetailDTO`` of ``to`` on ``send_date`` (yyyyMMdd), of one send when
        ``biz_id`` is given, page by page."""
        out: list[Any] = []
        page = 1
        while True:
            request = models.QuerySendDetailsRequest(phone_number=_number(to), send_date=send_date,
                                                     page_size=50, current_page=page, biz_id=biz_id)
            try:
                body = self._client.query_send_details(request).body
            except Exception as exc:  # noqa: BLE001 - whatever it is, Aliyun could not be asked
                raise ChannelError(f"cannot query Aliyun's sent messages to {to}: {exc}") from exc
            if body.code != "OK":
                raise ChannelError(f"cannot query Aliyun's sent messages: {body.code} {body.message}")
            dtos = body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else []
            out += dtos or []
            if not dtos or page * 50 >= int(body.total_count or 0):
                return out
            page += 1

    def find_sent(self, message: Message, since: datetime) -> str | None:
        """``OutId:<key>`` for a message with this key to this number, taken on or after ``since``'s day
        (China time; each day since then is asked). Raises ``ChannelError`` when Aliyun cannot
        be asked."""
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        day, last = since.astimezone(CHINA).date(), datetime.now(CHINA).date()
        while day <= last:
            for dto in self._details(message.to, day.strftime("%Y%m%d")):
                if dto.out_id == message.key and dto.send_status != 2:  # 2: failed, not delivered
                    return f"OutId:{dto.out_id}"  # the listing has no BizId
            day += timedelta(days=1)
        return None
