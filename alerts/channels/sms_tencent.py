"""``sms-tencent``: Tencent Cloud SMS (API 2021-01-11) with the official SDK
``tencentcloud-sdk-python-sms``.

``SendSms`` with SmsSdkAppId, SignName, TemplateId and TemplateParamSet (an approved template,
chosen and filled by ``alerts.channels.templates``), SessionContext = the message's idempotency
key. Tencent answers a refused number inside a successful request, in ``SendStatusSet[].Code``;
a refused request as ``Response.Error``, which the SDK raises as ``TencentCloudSDKException``.

| Tencent                                                          | outcome                  |
|------------------------------------------------------------------|--------------------------|
| ``Ok``                                                           | sent, provider id SerialNo|
| ``LimitExceeded.PhoneNumberThirtySecondLimit``                   | retry after 30 s         |
| ``LimitExceeded.PhoneNumberOneHourLimit``, ``…DailyLimit``,      | retry after 3600 s       |
| ``LimitExceeded.App*Limit``                                      |                          |
| other ``LimitExceeded.*``, ``RequestLimitExceeded*``             | retry after 60 s / retry |
| ``AuthFailure.*``, ``UnauthorizedOperation.*``,                  | retry after 60 s (every  |
| ``FailedOperation.InsufficientBalanceInSmsPackage``              | message waits for a fix) |
| ``InternalError*``; an HTTP status other than 200 (the SDK hides | unknown                  |
| which: a 503 is treated as a 500 that may have been taken)       |                          |
| ``InvalidParameterValue.IncorrectPhoneNumber``,                  | failed                   |
| ``FailedOperation.TemplateIncorrectOrUnapproved``, any other     |                          |
| connection never made / read timeout or dropped                  | retry / unknown          |

Unknown is resolved at least once, not exactly once: Tencent lists a message only when its
delivery receipt has come (``PullSmsSendStatusByPhoneNumber``, with the SessionContext), which
is usually within seconds but not bounded. ``find_sent`` finds a receipt carrying the key;
when none has come the dispatcher resends, so a receipt later than the reconciliation
(``alerts.notify.retry.RECONCILE_AFTER_S``) means a second SMS. For a warning, a duplicate is the
lesser harm than a loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from alerts.channels.base import ChannelError, Message, Outcome, Receipt
from alerts.channels.templates import MissingField, choose, fill_list
from alerts.channels.transport import transport_outcome
from config.channels import ChannelConfigError, TencentSmsSettings

__all__ = ["TencentSms", "outcome_of_code"]

PAGE = 100
_WAIT = {"LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
         "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
         "LimitExceeded.PhoneNumberDailyLimit": 3600.0}
_ACCOUNT = ("AuthFailure", "UnauthorizedOperation", "FailedOperation.InsufficientBalanceInSmsPackage")


def outcome_of_code(code: str, message: str) -> Outcome:
    """The outcome of a Tencent error code (of a number or of the request)."""
    error = f"{code}: {message}"
    if code in _WAIT:
        return Outcome("retry", retry_after_s=_WAIT[code], error_code=code, error=error)
    if code.startswith("LimitExceeded.App"):
        return Outcome("retry", retry_after_s=3600.0, error_code=code, error=error)
    if code.startswith("LimitExceeded"):
        return Outcome("retry", retry_after_s=60.0, error_code=code, error=error)
    if code.startswith("RequestLimitExceeded"):
        return Outcome("retry", error_code=code, error=error)
    if code.startswith(_ACCOUNT):
        return Outcome("retry", retry_after_s=60.0, error_code=code, error=error)
    if code.startswith("InternalError") or code == "ServerNetworkError":
        return Outcome("unknown", error_code=code, error=error)
    return Outcome("failed", error_code=code, error=error)


def _endpoint(endpoint: str) -> tuple[str, str]:
    for scheme in ("http", "https"):
        if endpoint.startswith(f"{scheme}://"):
            return endpoint[len(scheme) + 3:].rstrip("/"), scheme
    return endpoint, "https"


class TencentSms:
    name: ClassVar[str] = "sms-tencent"
    can_look_up: ClassVar[bool] = True

    def __init__(self, settings: TencentSmsSettings, timeout_s: float = 10.0) -> None:
        if not settings.secret_id or settings.secret_key is None:
            raise ChannelConfigError("sms-tencent needs notify.channels.sms_tencent.secret_id and secret_key "
                                     "(or TENCENTCLOUD_SECRET_ID/_KEY)")
        host, protocol = _endpoint(settings.endpoint)
        http = HttpProfile(endpoint=host, protocol=protocol, reqTimeout=max(1, round(timeout_s)))
        self.settings = settings
        # no retryer: only hazwatch's retry stage resends (a resent create can send twice)
        self._client = sms_client.SmsClient(
            credential.Credential(settings.secret_id, settings.secret_key.get_secret_value()),
            settings.region, ClientProfile(httpProfile=http))

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        """From the whole ``config.models.Settings``, its environment (secrets, endpoints) applied
        by the configuration loader (``config.channels.channel_env``); the registry calls this."""
        channels = settings.notify.channels
        if channels.sms_tencent is None:
            raise ChannelConfigError("sms-tencent is used but notify.channels.sms_tencent is not configured")
        return cls(channels.sms_tencent, channels.timeout_s)

    def send(self, message: Message) -> Outcome:
        template = choose(self.settings.templates, message)
        try:
            params = fill_list(template.params, message, self.settings.max_param_chars)
        except MissingField as exc:
            return Outcome("failed", error_code="template-field", error=str(exc))
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [message.to]
        request.SmsSdkAppId = self.settings.sms_sdk_app_id
        request.SignName = self.settings.sign_name
        request.TemplateId = template.id
        request.TemplateParamSet = params
        request.SessionContext = message.key
        try:
            response = self._client.SendSms(request)
        except TencentCloudSDKException as exc:
            if exc.code == "ClientNetworkError":
                return transport_outcome(exc) or Outcome("unknown", error=f"{exc.code}: {exc.message}")
            if exc.code in ("ServerNetworkError",) or not exc.requestId:
                # an HTTP status other than 200, or an answer the SDK could not read
                return Outcome("unknown", error_code=exc.code, error=f"{exc.code}: {exc.message}"[:500])
            return outcome_of_code(str(exc.code), str(exc.message))
        statuses = response.SendStatusSet or []
        status = next((s for s in statuses if s.PhoneNumber == message.to), statuses[0] if statuses else None)
        if status is None:
            return Outcome("unknown", error="an answer without SendStatusSet")
        if status.Code != "Ok":
            return outcome_of_code(str(status.Code), str(status.Message))
        return Outcome("sent", provider_id=status.SerialNo)

    def receipt(self, message: Message, sent_after: datetime, provider_id: str) -> Receipt | None:
        """The delivery receipt of the send ``provider_id`` (its SerialNo) of ``message``, made
        after ``sent_after``: pulled for its number since then; ``ReportStatus`` SUCCESS
        delivered, FAIL undelivered (``Description``); None while there is none. Raises
        ``ChannelError`` when Tencent cannot be asked."""
        for receipt in self._receipts(message.to, sent_after):
            if receipt.SerialNo == provider_id:
                if receipt.ReportStatus == "SUCCESS":
                    return Receipt("delivered")
                return Receipt("undelivered", error_code=receipt.Description,
                               error=f"Tencent: {receipt.ReportStatus} {receipt.Description}")
        return None

    def _receipts(self, to: str, since: datetime) -> list[Any]:
        """Every delivery receipt of ``to`` for a message sent at or after ``since``."""
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        out: list[Any] = []
        offset = 0
        while True:
            request = models.PullSmsSendStatusByPhoneNumberRequest()
            request.BeginTime = int(since.timestamp())
            request.EndTime = int(datetime.now(UTC).timestamp()) + 60
            request.Offset, request.Limit = offset, PAGE
            request.PhoneNumber = to
            request.SmsSdkAppId = self.settings.sms_sdk_app_id
            try:
                receipts = self._client.PullSmsSendStatusByPhoneNumber(request).PullSmsSendStatusSet or []
            except TencentCloudSDKException as exc:
                raise ChannelError(f"cannot pull Tencent's receipts for {to}: {exc.code} {exc.message}") from exc
            out += receipts
            if len(receipts) < PAGE:
                return out
            offset += PAGE

    def find_sent(self, message: Message, since: datetime) -> str | None:
        """The SerialNo of a delivery receipt carrying this message's key, reported for a message
        sent at or after ``since``; None when there is none (yet). Raises ``ChannelError`` when
        Tencent cannot be asked."""
        return next((str(r.SerialNo) for r in self._receipts(message.to, since) if r.SessionContext == message.key),
                    None)
