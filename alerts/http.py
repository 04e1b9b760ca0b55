"""The alerts service's HTTP face: Twilio status callbacks, the CAP Atom feed, a health check.

Routes (``create_alerts_api``)::

    POST /twilio/status        Twilio status callback: verify X-Twilio-Signature, store the status
    GET  /cap/feed.atom        Atom 1.0 feed of the currently active warnings, CAP 1.2 inline
    GET  /cap/{identifier}.xml one CAP document (a sent broadcast, or a feed entry)
    GET  /healthz              200 {"ok": true, ...} or 503 naming the dependency that fails
    GET  /metrics              Prometheus text format (prometheus-client's default registry)

Status callbacks (STANDARDS.md "Warning dissemination"): the signature covers the URL Twilio
requested (``notify.http.public_url`` when set, else the URL this server saw) and the form
fields; a missing or wrong one gets 403 and nothing is stored. A valid one is recorded by
:func:`alerts.deliveries.record_status`.

The CAP feed carries CAP messages, one per active warning (episode active or acknowledged, not
a false alarm): an episode with sent broadcast alerts (``cap-alert`` rows) shows the latest per
zone, exactly as broadcast; any other (usually below red) gets an ``Alert`` built on the fly
from its latest level change, for the site's own zone, ``sent`` = when hazwatch recorded that
change (not ``raised_at``: an identifier names one message, so an escalation needs a new one;
the GB/T 35965.1 sequence digit, from the episode id and probed, separates same-second ones).
Each document is checked with ``validate_cap``; one that fails or cannot be built is logged
and left out, and the rest of the feed is served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast
from urllib.parse import parse_qsl, quote

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from lxml import etree
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from alerts.cap import CAP_NS, build_cap, cap_identifier, cap_time, validate_cap
from alerts.channels.sms import verify_signature
from alerts.deliveries import record_status, sid_status
from alerts.store import Episode, LevelChange, Notification, Store, utcnow
from config.models import Config
from hazwatch.ops import Check, health
from formats.warning import EventKind, WarningEvent

__all__ = [
    "ATOM_NS", "CAP_MEDIA_TYPE", "STATUS_PATH", "CapEntry", "Served", "active_cap_entries",
    "atom_feed", "create_alerts_api", "serve_in_thread", "status_callback_url",
]

log = logging.getLogger("hazwatch.alerts.http")

ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
STATUS_PATH = "/twilio/status"
MAX_CALLBACK_BYTES = 64 * 1024  # a Twilio status callback is well under 2 KiB

def status_callback_url(config: Config, base_url: str | None = None) -> str:
    """The StatusCallback URL to give Twilio: ``notify.http.public_url`` (which the signature
    check also uses) or else ``base_url``, the address this service is reachable at."""
    base = config.settings.notify.http.public_url or base_url
    if not base:
        raise ValueError("no public_url configured and no base_url given for status callbacks")
    return base.rstrip("/") + STATUS_PATH


def _public_base(config: Config, request: Request) -> str:
    return (config.settings.notify.http.public_url or str(request.base_url)).rstrip("/")


def _signed_url(config: Config, request: Request) -> str:
    url = _public_base(config, request) + request.url.path
    return url + "?" + request.url.query if request.url.query else url


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, "status callback too large")
        chunks.append(chunk)
    return b"".join(chunks)


# -- CAP feed ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CapEntry:
    """One CAP message of the feed; ``broadcast`` False when built for the feed only."""

    identifier: str
    episode: str
    zone: str
    level: str
    sent: dt.datetime
    headline: str
    xml: bytes
    broadcast: bool


def _parse(xml: bytes) -> etree._Element:
    # a parser per call: lxml parsers must not be shared between threads
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    return etree.fromstring(xml, parser)


def _cap_text(root: etree._Element, path: str) -> str | None:
    found = root.find(path, {"cap": CAP_NS})
    return found.text if found is not None else None


def _entry(xml: bytes, episode: str, zone: str, level: str, *, broadcast: bool) -> CapEntry:
    validate_cap(xml)
    root = _parse(xml)
    headline = (_cap_text(root, "cap:info[cap:language='zh-CN']/cap:headline")
                or _cap_text(root, "cap:info/cap:headline") or "")
    identifier, sent = _cap_text(root, "cap:identifier"), _cap_text(root, "cap:sent")
    assert identifier and sent  # the schema requires both
    return CapEntry(identifier, episode, zone, level, dt.datetime.fromisoformat(sent), headline,
                    xml, broadcast)


def _sent_of(ep: Episode, lc: LevelChange | None) -> dt.datetime:
    return (lc.recorded_at if lc is not None else ep.raised_at).replace(microsecond=0)


def _on_the_fly(config: Config, ep: Episode, lc: LevelChange | None, taken: set[str]) -> CapEntry:
    if lc is None:
        raise ValueError(f"episode {ep.id} has no level change to describe")
    site, cap, sent = config.site(ep.site), config.settings.cap, _sent_of(ep, lc)
    first = int(hashlib.sha256(ep.id.encode()).hexdigest(), 16) % 10
    seq = next((q % 10 for q in range(first, first + 10)
                if cap_identifier(site.region, cap, sent, q % 10) not in taken), None)
    if seq is None:
        raise ValueError(f"all ten CAP sequence digits of {site.region} at {sent} are taken")
    event = WarningEvent(
        episode=ep.id, site=ep.site, subject=ep.subject, rule=ep.rule,
        kind=cast(EventKind, lc.kind), level=lc.level, previous=lc.previous, ts=lc.ts,
        emitted_at=int(lc.recorded_at.timestamp() * 1000), value=lc.value,
        threshold=lc.threshold, unit=ep.unit)
    _, xml = build_cap(event, site, config.zone(site.zone), cap, msg_type="Alert", sent=sent,
                       seq=seq, tz=config.settings.timezone)
    return _entry(xml, ep.id, site.zone, lc.level, broadcast=False)


def active_cap_entries(store: Store, config: Config) -> list[CapEntry]:
    """The CAP messages of the currently active warnings, newest first (see module docstring)."""
    active = (Episode.state.in_(("active", "acknowledged")), Episode.false_alarm.is_(False))
    entries: list[CapEntry] = []
    with store.session() as s:
        episodes = s.scalars(select(Episode).where(*active)).all()
        rows = s.scalars(
            select(Notification).join(Episode, Episode.id == Notification.episode)
            .where(*active, Notification.channel == "cap", Notification.status == "sent",
                   Notification.kind == "cap-alert", Notification.body.is_not(None))
            .order_by(Notification.sent_at, Notification.id)).all()
        changes = s.scalars(
            select(LevelChange).join(Episode, Episode.id == LevelChange.episode_id)
            .where(*active, LevelChange.kind != "cleared")
            .order_by(LevelChange.ts, LevelChange.id)).all()
    # oldest first: the later row of an (episode, zone) wins
    latest: dict[tuple[str, str], Notification] = {(n.episode, n.recipient): n for n in rows}
    for n in latest.values():
        try:
            entries.append(_entry((n.body or "").encode("utf-8"), n.episode, n.recipient,
                                  n.level, broadcast=True))
        except Exception:  # one bad document must not take the feed down
            log.exception("CAP feed: stored CAP %s of %s left out", n.provider_id, n.episode)
    last_change = {lc.episode_id: lc for lc in changes}
    broadcast = {e.episode for e in entries}  # a bad stored CAP falls back to one built here
    taken = {e.identifier for e in entries}
    pending = [ep for ep in episodes if ep.id not in broadcast]
    for ep in sorted(pending, key=lambda ep: (_sent_of(ep, last_change.get(ep.id)), ep.id)):
        try:
            entry = _on_the_fly(config, ep, last_change.get(ep.id), taken)
        except Exception:  # e.g. a site no longer configured
            log.exception("CAP feed: no CAP could be built for episode %s", ep.id)
            continue
        taken.add(entry.identifier)
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.sent, e.identifier), reverse=True)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str
         ) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrib)
    if text is not None:
        el.text = text
    return el


def atom_feed(entries: Sequence[CapEntry], *, base_url: str, sender: str, now: dt.datetime,
              tz: str = "Asia/Shanghai") -> bytes:
    """An Atom 1.0 document (RFC 4287) with each CAP message inline as XML in ``content``.

    Entry id = CAP identifier, title = the zh-CN headline, updated = CAP sent with its offset;
    the ``alternate`` link is ``{base_url}/cap/{identifier}.xml``. Pure.
    """
    feed = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS})
    _sub(feed, "id", f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'hazwatch:cap-feed:{sender}')}")
    _sub(feed, "title", "hazwatch 当前预警 / current warnings (CAP 1.2)")
    _sub(feed, "updated", cap_time(max((e.sent for e in entries), default=now), tz))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=f"{base_url}/cap/feed.atom")
    _sub(_sub(feed, "author"), "name", sender)
    for e in entries:
        entry = _sub(feed, "entry")
        _sub(entry, "id", e.identifier)
        _sub(entry, "title", e.headline or e.identifier)
        _sub(entry, "updated", cap_time(e.sent, tz))
        _sub(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE,
             href=f"{base_url}/cap/{quote(e.identifier, safe='')}.xml")
        _sub(entry, "category", term=e.level, label=e.zone)
        _sub(entry, "content", type=CAP_MEDIA_TYPE).append(_parse(e.xml))
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _find_cap(store: Store, config: Config, identifier: str) -> bytes | None:
    with store.session() as s:
        body = s.scalar(select(Notification.body).where(
            Notification.channel == "cap", Notification.status == "sent",
            Notification.provider_id == identifier, Notification.body.is_not(None),
        ).order_by(Notification.id.desc()).limit(1))
    if body is not None:
        return body.encode("utf-8")
    return next((e.xml for e in active_cap_entries(store, config) if e.identifier == identifier),
                None)


# -- the app -----------------------------------------------------------------------------------
def create_alerts_api(store: Store, config: Config | Callable[[], Config], *,
                      clock: Callable[[], dt.datetime] = utcnow, checks: Mapping[str, Check] | None = None) -> FastAPI:
    """The alerts HTTP API on ``store``; ``config``: the configuration, or how to get the one in
    force (it changes on a reload); ``clock`` stamps deliveries and an empty feed; ``checks`` (read at
    each request, so the service can add to it later) answer ``/healthz``."""
    app = FastAPI(title="hazwatch-alerts", openapi_url=None, docs_url=None, redoc_url=None)
    current: Callable[[], Config] = config if callable(config) else lambda: config
    settings = current().settings  # the SMS accounts: a reload that changes them is refused
    # callbacks of the second SMS account (channel alarms) are signed with its own token
    tokens = [a.auth_token.get_secret_value() for a in (settings.sms, settings.sms_fallback) if a is not None]

    @app.post(STATUS_PATH, status_code=204)
    async def twilio_status(request: Request) -> Response:
        # parsed by hand: FastAPI's Form() would need python-multipart
        body = await _read_body(request, MAX_CALLBACK_BYTES)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        url = _signed_url(current(), request)
        signature = request.headers.get("X-Twilio-Signature")
        if not any(verify_signature(token, url, params, signature) for token in tokens):
            log.warning("status callback for %s rejected: bad signature for %s",
                        params.get("MessageSid"), url)
            return Response(status_code=403)
        sid, status = sid_status(params)
        if not sid or not status or len(sid) > 128:  # provider_id is String(128)
            return Response(status_code=400)
        outcome = await run_in_threadpool(record_status, store, params, clock())
        log.info("status callback %s %s: %s", sid, status, outcome)
        return Response(status_code=204)

    @app.get("/cap/feed.atom")
    def cap_feed(request: Request) -> Response:
        now_in_force = current()
        entries = active_cap_entries(store, now_in_force)
        body = atom_feed(entries, base_url=_public_base(now_in_force, request), sender=now_in_force.settings.cap.sender,
                         now=clock(), tz=now_in_force.settings.timezone)
        return Response(body, media_type="application/atom+xml")

    @app.get("/cap/{identifier}.xml")
    def cap_document(identifier: str) -> Response:
        xml = _find_cap(store, current(), identifier)
        if xml is None:
            raise HTTPException(404, f"no CAP message {identifier}")
        return Response(xml, media_type=CAP_MEDIA_TYPE)

    @app.get("/healthz")
    def healthz() -> Response:  # each dependency named, with why it fails (hazwatch/ops.py)
        ok, body = health("alerts", checks or {})
        return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    def metrics() -> Response:  # this process's counters (alerts.channel_alarm ...)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


class Served(NamedTuple):
    """What ``serve_in_thread`` started; unpacks as ``server, thread``."""

    server: uvicorn.Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (also when 0 was asked for)."""
        return int(self.server.config.port)

    @property
    def url(self) -> str:
        host = self.server.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout_s)


def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, *,
                    timeout_s: float = 10.0) -> Served:
    """Serve ``app`` with uvicorn in a daemon thread; return once it accepts connections.

    Binds here, so port 0 resolves to a free port nobody can take meanwhile; the bound port is
    ``served.port`` (and ``server.config.port``). Raises ``RuntimeError`` if it does not start.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=bound, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"alerts-http-{bound}", daemon=True)
    thread.start()
    served = Served(server, thread)
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            served.stop()
            sock.close()
            raise RuntimeError(f"alerts HTTP server did not start on {host}:{bound}")
        time.sleep(0.01)
    return served
