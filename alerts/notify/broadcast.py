"""Broadcast: a CAP message to a zone's loudspeakers over MQTT -- one Alert per site and zone, its
all-clear or Cancel, GB/T 35965.1 identifiers, and the spoken audio. A stage of its own: a CAP
document is built, validated, recorded and published (QoS 1; a repeat carries the same
identifier, which a gateway recognises), so it needs no rate limit, grouping or retry stage.
"""

from __future__ import annotations

import datetime as dt
import logging
from sqlalchemy import func, select

from alerts.audio import espeak_available, synthesize
from alerts.cap import build_cap, cap_identifier, validate_cap
from alerts.notify.deps import Deps
from alerts.notify.record import finish
from alerts.notify.stage import Ctx
from alerts.render import render_sms
from alerts.store import Episode, Notification
from formats.warning import WarningEvent

__all__ = ["Broadcast"]

log = logging.getLogger("hazwatch.alerts")


class Broadcast:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        self._cap(rows[0])
        return []

    def _finish(self, rows: list[Notification], status: str, **values: object) -> None:
        finish(self.deps, rows, status, **values)

    def _open_alert(self, row: Notification) -> str | None:
        """The identifier of a CAP Alert sent for this site and zone that has no all-clear yet."""
        with self.deps.store.session() as s:
            alerts = s.execute(select(Notification.episode, Notification.provider_id).where(
                Notification.channel == "cap", Notification.kind == "cap-alert", Notification.status == "sent",
                Notification.site == row.site, Notification.recipient == row.recipient)).all()
            cleared = {e for (e,) in s.execute(select(Notification.episode).where(
                Notification.channel == "cap", Notification.kind == "cap-allclear", Notification.status == "sent",
                Notification.site == row.site, Notification.recipient == row.recipient))}
        return next((ident for ep, ident in alerts if ep not in cleared and ep != row.episode), None)

    def _allclear_refs(self, row: Notification) -> list[tuple[str, dt.datetime]] | None:
        """What an all-clear references, or None when it must wait or has nothing to clear.

        It waits for its own Alert to be sent, and for every red episode of the site that the
        Alert covers to clear: the loudspeakers stop only when the whole site is safe."""
        with self.deps.store.session() as s:
            alerts = list(s.scalars(select(Notification).where(
                Notification.episode == row.episode, Notification.channel == "cap",
                Notification.recipient == row.recipient, Notification.kind == "cap-alert")))
            if any(a.status in ("pending", "sending", "unknown") for a in alerts):
                return None  # the Alert goes first; try again on the next pass
            own = [a for a in alerts if a.status == "sent"]
            if not own:
                covered = next((a.suppressed_reason for a in alerts
                                if (a.suppressed_reason or "").startswith("covered by CAP")), None)
                self._finish([row], "suppressed", suppressed_reason=covered or "no broadcast alert to clear")
                return None
            reasons = [f"covered by CAP {a.provider_id}" for a in own]
            still_red = s.scalar(select(func.count()).select_from(Notification).join(
                Episode, Episode.id == Notification.episode).where(
                Notification.suppressed_reason.in_(reasons), Episode.state.in_(("active", "acknowledged"))))
        if still_red:
            self.deps.claims.write([row.id], not_before=self.deps.clock() + dt.timedelta(seconds=1))
            return None
        return [(a.provider_id, a.sent_at) for a in own]

    def _free_identifier(self, region: str, sent: dt.datetime) -> tuple[dt.datetime, int]:
        """A (sent second, sequence digit) whose GB/T 35965.1 identifier is not taken yet: the
        pattern has one digit for messages of one issuer within one second."""
        while True:
            prefix = cap_identifier(region, self.deps.config.settings.cap, sent, 0)[:-1]
            with self.deps.store.session() as s:
                taken = {p[-1] for (p,) in s.execute(select(Notification.provider_id).where(
                    Notification.channel == "cap", Notification.provider_id.like(f"{prefix}%")))}
            free = [d for d in range(10) if str(d) not in taken]
            if free:
                return sent, free[0]
            sent += dt.timedelta(seconds=1)

    def _cap(self, row: Notification) -> None:
        if row.body and row.provider_id:
            # built and maybe published before a crash or a PUBACK timeout: publish the very same
            # document again
            # (same identifier, so a gateway that has it already recognises the repeat)
            self.deps.publish_cap(row.recipient, row.body.encode())
            self._finish([row], "sent", provider_id=row.provider_id, sent_at=row.sent_at or self.deps.clock())
            return
        event = row.warning
        site, zone = self.deps.config.site(event.site), self.deps.config.zone(row.recipient)
        cap_cfg, tz = self.deps.config.settings.cap, self.deps.config.settings.timezone
        if row.kind in ("cap-allclear", "cap-cancel"):
            refs = self._allclear_refs(row)
            if refs is None:
                return
            sent, seq = self._free_identifier(site.region, self.deps.clock().replace(microsecond=0))
            if row.kind == "cap-cancel":  # an operator found it a false alarm: withdraw the Alert
                ident, xml = build_cap(event, site, zone, cap_cfg, msg_type="Cancel", sent=sent, seq=seq,
                                       references=[(cap_cfg.sender, i, t) for i, t in refs], tz=tz)
            else:
                ident, xml = build_cap(event, site, zone, cap_cfg, msg_type="Update", sent=sent, seq=seq,
                                       references=[(cap_cfg.sender, i, t) for i, t in refs],
                                       response_type="AllClear", tz=tz)
        else:
            owner = self._open_alert(row)
            if owner is not None:
                # one loudspeaker alert per site and zone: a second red episode of the same site
                # is covered by the alert already sounding (its SMS still go out)
                self._finish([row], "suppressed", suppressed_reason=f"covered by CAP {owner}")
                return
            sent, seq = self._free_identifier(site.region, self.deps.clock().replace(microsecond=0))
            ident, xml = build_cap(event, site, zone, cap_cfg, msg_type="Alert", sent=sent, seq=seq, tz=tz)
        validate_cap(xml)
        if not self.deps.claims.begin_send([row.id], self.deps.clock(), attempts=row.attempts + 1, body=xml.decode(),
                                      provider_id=ident, sent_at=sent):
            return
        self.deps.publish_cap(row.recipient, xml)  # QoS 1; a duplicate CAP is harmless (same identifier)
        self._finish([row], "sent", provider_id=ident, sent_at=sent, body=xml.decode())
        self._speak(row, event, ident)

    def _speak(self, row: Notification, event: WarningEvent, ident: str) -> None:
        """Loudspeaker audio (optional): a zh-CN WAV of the broadcast, when espeak-ng is installed."""
        if self.deps.publish_audio is None or self.deps.audio_dir is None or not espeak_available():
            return
        site = self.deps.config.site(event.site)
        if row.kind == "cap-alert":
            text = f"{render_sms(event, site, self.deps.config.sensor(event.site, event.sensor), role='resident')}"
        else:
            text = f"{site.name}预警解除。" if row.kind == "cap-allclear" else f"{site.name}预警取消。"
        try:
            wav = synthesize(text.replace("【hazwatch】", ""), self.deps.audio_dir / f"{ident}.wav")
            if wav is not None:
                self.deps.publish_audio(row.recipient, wav.read_bytes())
        except Exception:  # noqa: BLE001 - audio is an extra; the CAP document already went out
            log.exception("loudspeaker audio for %s failed", ident)
