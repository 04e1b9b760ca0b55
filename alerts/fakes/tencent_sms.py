"""A local fake of Tencent Cloud SMS (API 2021-01-11), for tests and the demo.

The official ``tencentcloud-sdk-python-sms`` client talks to it with
``HttpProfile(endpoint="127.0.0.1:PORT", protocol="http")``. API 3.0 style: every call is
``POST /`` with a JSON body, the action in ``X-TC-Action`` and ``X-TC-Version: 2021-01-11``; every
answer is ``{"Response": {..., "RequestId"}}``, an error ``{"Response": {"Error": {"Code",
"Message"}, "RequestId"}}``. Implemented:

- ``SendSms`` (PhoneNumberSet, SmsSdkAppId, TemplateId required; SignName, TemplateParamSet,
  SessionContext): one ``SendStatusSet`` entry per number, ``Code: "Ok"`` with a SerialNo, or the
  number's own error code (``LimitExceeded.PhoneNumberDailyLimit``,
  ``InvalidParameterValue.IncorrectPhoneNumber``) while the request as a whole succeeds;
- ``PullSmsSendStatusByPhoneNumber`` (BeginTime, Offset, Limit, PhoneNumber, SmsSdkAppId):
  the delivery receipts of a number with their SessionContext. The fake reports every accepted
  message at once; Tencent reports when the carrier answers, usually within seconds.

The TC3-HMAC-SHA256 signature is not verified; ``Authorization`` must name a credential.
Template refusal is a request error, ``FailedOperation.TemplateIncorrectOrUnapproved``.
Failure injection: :mod:`alerts.fakes.server`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from alerts.fakes.server import Dropped, FakeServer, command_line, create_base_app, hold, serve_forever

__all__ = ["create_app", "main", "server"]

CHINA = timezone(timedelta(hours=8))
_NUMBER_ERRORS = {
    "rate-limit": ("LimitExceeded.PhoneNumberDailyLimit",
                   "the number of SMS messages sent to one mobile number a day exceeds the upper limit"),
    "invalid-number": ("InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number format"),
}
_TEMPLATE_ERROR = ("FailedOperation.TemplateIncorrectOrUnapproved",
                   "the template is not approved or the content does not match it")
_PHONE = re.compile(r"^(?:\+86|0086|86)?1\d{10}$|^\+[1-9]\d{6,14}$")


def _response(status: int = 200, **fields: Any) -> JSONResponse:
    return JSONResponse({"Response": {**fields, "RequestId": str(uuid.uuid4())}}, status_code=status)


def _error(code: str, message: str) -> JSONResponse:
    return _response(Error={"Code": code, "Message": message})


def create_app() -> Any:
    app, state = create_base_app("fake-tencent-sms")

    @app.post("/")
    async def api(request: Request) -> JSONResponse:
        if "Credential=" not in request.headers.get("authorization", ""):
            return _error("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
        if request.headers.get("x-tc-version") != "2021-01-11":
            return _error("NoSuchVersion", "The requested version does not exist.")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error("FailedOperation.FailResolvePacket", "cannot parse the request body")
        action = request.headers.get("x-tc-action")
        if action == "SendSms":
            return await send_sms(body)
        if action == "PullSmsSendStatusByPhoneNumber":
            return pull_status(body)
        return _error("InvalidAction", f"the action {action} does not exist")

    async def send_sms(body: dict[str, Any]) -> JSONResponse:
        for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if not body.get(name):
                return _error("MissingParameter", f"the parameter {name} is missing")
        numbers: list[str] = body["PhoneNumberSet"]
        rule = state.rules.take(numbers[0])
        mode = rule["mode"] if rule else None
        if mode == "invalid-template":
            return _error(*_TEMPLATE_ERROR)
        if mode == "503":
            return JSONResponse({"message": "service unavailable"}, status_code=503)
        statuses = []
        for number in numbers:
            code, message = ("Ok", "send success")
            if mode in _NUMBER_ERRORS:
                code, message = _NUMBER_ERRORS[mode]
            elif not _PHONE.match(number):
                code, message = _NUMBER_ERRORS["invalid-number"]
            serial = f"3369:{uuid.uuid4().int % 10**28:028d}" if code == "Ok" else ""
            statuses.append({"SerialNo": serial, "PhoneNumber": number, "Fee": 1 if serial else 0,
                             "SessionContext": body.get("SessionContext", ""), "Code": code,
                             "Message": message, "IsoCode": "CN"})
            if serial:
                state.add({"serial_no": serial, "to": number, "sdk_app_id": body["SmsSdkAppId"],
                           "sign_name": body.get("SignName"), "template_id": body["TemplateId"],
                           "template_params": body.get("TemplateParamSet", []),
                           "session_context": body.get("SessionContext", ""), "ts": int(time.time()),
                           "undelivered": mode == "undelivered"})
        if mode == "drop":
            return Dropped()
        if mode == "500":
            return JSONResponse({"message": "internal error"}, status_code=500)
        await hold(rule)
        return _response(SendStatusSet=statuses)

    def pull_status(body: dict[str, Any]) -> JSONResponse:
        for name in ("BeginTime", "Offset", "Limit", "PhoneNumber", "SmsSdkAppId"):
            if body.get(name) is None:
                return _error("MissingParameter", f"the parameter {name} is missing")
        if not 0 < int(body["Limit"]) <= 100:
            return _error("InvalidParameterValue", "Limit must be from 1 to 100")
        end = int(body.get("EndTime") or 2**31)
        rows = state.find(lambda m: m["to"] == body["PhoneNumber"] and m["sdk_app_id"] == body["SmsSdkAppId"]
                          and int(body["BeginTime"]) <= m["ts"] <= end)
        offset, limit = int(body["Offset"]), int(body["Limit"])
        receipts = [{"UserReceiveTime": datetime.fromtimestamp(m["ts"], CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                     "CountryCode": "86", "SubscriberNumber": m["to"][-11:], "PhoneNumber": m["to"],
                     "SerialNo": m["serial_no"], "ReportStatus": "FAIL" if m["undelivered"] else "SUCCESS",
                     "Description": "MK:0001" if m["undelivered"] else "DELIVRD",
                     "SessionContext": m["session_context"]} for m in rows[offset: offset + limit]]
        return _response(PullSmsSendStatusSet=receipts)

    return app


def server(host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    """The fake, not yet started; the SDK's endpoint is ``url`` (``http://host:port``)."""
    return FakeServer(create_app(), "fake-tencent-sms", host, port)


def main(argv: list[str] | None = None) -> int:
    parser = command_line("alerts.fakes.tencent_sms", __doc__)
    args = parser.parse_args(argv)
    return serve_forever(server(args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
