"""A local fake of Alibaba Cloud SMS (dysmsapi, API version 2017-05-25), for tests and the demo.

The official ``alibabacloud_dysmsapi20170525`` client talks to it when its ``Config`` has
``endpoint="127.0.0.1:PORT"`` and ``protocol="http"``. RPC style: every call is ``POST /`` with
the action in the ``x-acs-action`` header and the parameters in the query string. Implemented:

- ``SendSms`` (PhoneNumbers, SignName, TemplateCode required; TemplateParam JSON; OutId kept):
  ``{"Code": "OK", "Message": "OK", "BizId": "…^0", "RequestId": …}``;
- ``QuerySendDetails`` (PhoneNumber, SendDate yyyyMMdd in China time, PageSize 1-50,
  CurrentPage, optional BizId): ``SmsSendDetailDTOs.SmsSendDetailDTO[]`` with OutId.

The ACS3-HMAC-SHA256 signature is not verified; the ``Authorization`` header must name a
credential. Business errors come, as from Aliyun, with HTTP 200 and a ``Code`` other than OK:
rate limit ``isv.BUSINESS_LIMIT_CONTROL``, invalid number ``isv.MOBILE_NUMBER_ILLEGAL``,
template ``isv.SMS_TEMPLATE_ILLEGAL``. Failure injection: :mod:`alerts.fakes.server`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from alerts.fakes.server import Dropped, FakeServer, command_line, create_base_app, hold, serve_forever

__all__ = ["BUSINESS_ERRORS", "create_app", "main", "server"]

CHINA = timezone(timedelta(hours=8))
#: fail mode -> (Code, Message) as Aliyun answers them, with HTTP 200
BUSINESS_ERRORS = {
    "rate-limit": ("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"),
    "invalid-number": ("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"),
    "invalid-template": ("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"),
}
_PHONE = re.compile(r"^(?:1\d{10}|(?:00)?[1-9]\d{6,14})$")


def _answer(code: str, message: str, status: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse({"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper(), **extra},
                        status_code=status)


def create_app() -> Any:
    app, state = create_base_app("fake-aliyun-sms")

    @app.post("/")
    async def rpc(request: Request) -> JSONResponse:
        q = dict(request.query_params)
        action = request.headers.get("x-acs-action") or q.get("Action")
        if "Credential=" not in request.headers.get("authorization", "") and "AccessKeyId" not in q:
            return _answer("MissingAccessKeyId", "AccessKeyId is mandatory for this action.", 400)
        if request.headers.get("x-acs-version", q.get("Version")) != "2017-05-25":
            return _answer("InvalidVersion", "Specified parameter Version is not valid.", 400)
        if action == "SendSms":
            return await send_sms(q)
        if action == "QuerySendDetails":
            return query_send_details(q)
        return _answer("InvalidAction.NotFound", f"Specified api is not found, please check your url "
                       f"and method. ({action})", 404)

    async def send_sms(q: dict[str, str]) -> JSONResponse:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not q.get(name):
                return _answer(f"Missing{name}", f"{name} is mandatory for this action.", 400)
        params: dict[str, Any] = {}
        if q.get("TemplateParam"):
            try:
                params = json.loads(q["TemplateParam"])
            except ValueError:
                return _answer("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        phones = q["PhoneNumbers"].split(",")
        rule = state.rules.take(phones[0])
        mode = rule["mode"] if rule else None
        if mode in BUSINESS_ERRORS:
            return _answer(*BUSINESS_ERRORS[mode])
        if mode == "503":
            return _answer("ServiceUnavailable", "The request has failed due to a temporary failure "
                           "of the server.", 503)
        if not all(_PHONE.match(p) for p in phones):
            return _answer(*BUSINESS_ERRORS["invalid-number"])
        biz_id = f"{uuid.uuid4().int % 10**15:015d}^0"
        now = datetime.now(CHINA)
        for phone in phones:
            state.add({"biz_id": biz_id, "to": phone, "sign_name": q["SignName"],
                       "template_code": q["TemplateCode"], "template_param": params,
                       "out_id": q.get("OutId"), "send_date": now.strftime("%Y-%m-%d %H:%M:%S"),
                       "created": datetime.now(UTC).isoformat(), "undelivered": mode == "undelivered"})
        if mode == "drop":
            return Dropped()
        if mode == "500":
            return _answer("InternalError", "The request processing has failed due to some unknown "
                           "error.", 500)
        await hold(rule)
        return _answer("OK", "OK", BizId=biz_id)

    def query_send_details(q: dict[str, str]) -> JSONResponse:
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not q.get(name):
                return _answer(f"Missing{name}", f"{name} is mandatory for this action.", 400)
        size, page = int(q["PageSize"]), int(q["CurrentPage"])
        if not 1 <= size <= 50 or page < 1:
            return _answer("isv.INVALID_PARAMETERS", "参数异常")
        day = f"{q['SendDate'][:4]}-{q['SendDate'][4:6]}-{q['SendDate'][6:8]}"
        rows = state.find(lambda m: m["to"] == q["PhoneNumber"] and m["send_date"].startswith(day)
                          and (not q.get("BizId") or m["biz_id"] == q["BizId"]))
        dtos = [{"PhoneNum": m["to"], "SendStatus": 2 if m["undelivered"] else 3,
                 "ErrCode": "MOBILE_NOT_ON_SERVICE" if m["undelivered"] else "DELIVERED",
                 "TemplateCode": m["template_code"], "OutId": m["out_id"], "SendDate": m["send_date"],
                 "ReceiveDate": m["send_date"],
                 "Content": f"【{m['sign_name']}】{json.dumps(m['template_param'], ensure_ascii=False)}"}
                for m in rows[(page - 1) * size: page * size]]
        return _answer("OK", "OK", TotalCount=len(rows), SmsSendDetailDTOs={"SmsSendDetailDTO": dtos})

    return app


def server(host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    """The fake, not yet started; its endpoint for the SDK is ``url`` (``http://host:port``)."""
    return FakeServer(create_app(), "fake-aliyun-sms", host, port)


def main(argv: list[str] | None = None) -> int:
    parser = command_line("alerts.fakes.aliyun_sms", __doc__)
    args = parser.parse_args(argv)
    return serve_forever(server(args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
