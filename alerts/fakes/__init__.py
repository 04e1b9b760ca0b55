"""Local fakes of the providers' HTTP APIs (Twilio, Aliyun SMS, Tencent SMS, WeCom and DingTalk group
robots), for the tests and the demo; :mod:`alerts.fakes.server` holds what they share."""
