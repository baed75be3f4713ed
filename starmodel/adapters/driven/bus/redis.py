"""The bus over Redis: facts committed in one server process reach every other one.

Publishing runs one Lua script that numbers the fact (``<prefix>:bus:seq``), appends it to a
capped Redis stream (``<prefix>:bus:log``, the replay buffer) and sends it on the pub/sub
channel ``<prefix>:bus``, all at once, so every process sees facts in the same order under
the same numbers. Each process keeps one subscription: it hands each fact to its
``everywhere`` subscribers (the live streams) with ``delivery_position`` set, so a live
message has the same event id in every process and a tab can resume on any of them.

Handlers subscribed without ``everywhere`` run once, in the publishing process, at once.

When Redis goes away, facts are still delivered in this process (tabs connected here stay
live) and a warning is logged once; the subscription retries with backoff, and once back it
replays what it missed from the log. If facts could not cross processes meanwhile (or the
log no longer reaches back far enough, or Redis lost its data), every process asks its tabs
to resync.

A frozen Redis (the process stopped, the network silent) costs a publisher at most one
``timeout``: the connection's circuit breaker then opens, and until Redis answers again
every fact is delivered in this process at once, without trying Redis; when it answers, the
other processes are asked to resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from redis.exceptions import RedisError

from starmodel.adapters.driven.breaker import first_line
from starmodel.adapters.driven.stores.redis import RedisConnection, where
from starmodel.app.bus import InProcessBus, delivery_position
from starmodel.app.observe import BusTracer
from starmodel.core.errors import StoreUnavailable
from starmodel.core.messages import DomainEvent, EntityChanged, EventOutputs, OutputsCodec
from starmodel.core.ports import EventBus, Handler
from starmodel.core.tasks import cancel_and_wait

__all__ = ["RedisBus"]

log = logging.getLogger("starmodel.bus")

# KEYS: seq, epoch, log. ARGV: channel, body, log length, a fresh epoch (used if none is set).
_PUBLISH = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[1], KEYS[3])
end
local seq = redis.call('INCR', KEYS[1])
local message = epoch .. ' ' .. seq .. ' ' .. ARGV[2]
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', message)
redis.call('PUBLISH', ARGV[1], message)
return seq
"""
_RESYNC = "starmodel.resync"  # the body type asking every process to resync its tabs
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
_LOST = (RedisError, OSError, StoreUnavailable)  # what a Redis call raises when Redis is away


class RedisBus(EventBus):
    """An ``EventBus`` spanning every process connected to one Redis.

    Args:
        connection: the Redis to use (shared with the Redis store, if any).
        log_size: facts kept in the Redis log for processes catching up after a disconnect.
        timeout: seconds a publish may wait for Redis before the fact is delivered in this
            process only.
    """

    def __init__(
        self,
        connection: RedisConnection,
        *,
        log_size: int = 10_000,
        timeout: float = 1.0,
        outputs: OutputsCodec | None = None,
    ) -> None:
        self.connection = connection
        self.outputs = outputs  # how background events' outputs cross (without it, they stay here)
        self.log_size = log_size
        self.timeout = timeout
        self.local = InProcessBus()
        self.everywhere = InProcessBus()
        prefix = connection.prefix
        self.channel = f"{prefix}:bus"
        self._keys = [f"{prefix}:bus:seq", f"{prefix}:bus:epoch", f"{prefix}:bus:log"]
        self._script: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._epoch: str | None = None
        self._last = 0  # the last fact delivered here
        self._isolated = False  # facts were delivered here only: others must resync
        self._warned = False  # the outage has been logged
        self._resync_handlers: list[Callable[[], None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self.tracer: BusTracer | None = None  # set when tracing is on: facts carry their trace
        connection.breaker.on_back(self._redis_answers_again)

    # --- EventBus -----------------------------------------------------------------------

    def subscribe(self, event_type: type, handler: Handler, *, everywhere: bool = False) -> None:
        (self.everywhere if everywhere else self.local).subscribe(event_type, handler)

    async def publish(self, event: Any) -> None:
        await self.local.publish(event)
        body = _encode(event, self.outputs, self.tracer.inject() if self.tracer is not None else None)
        if body is None:  # cannot cross processes: delivered here only
            await self.everywhere.publish(event)
            return
        # sent even with no handler here: another process may subscribe everywhere
        self.start()
        breaker = self.connection.breaker
        if not self._connected.is_set():
            self._lost("not subscribed")
        elif breaker.is_open:  # known to be away: no waiting for it
            self._lost(breaker.reason or "")
        else:
            try:
                await self._publish_body(body)
                return
            except _LOST as exc:
                self._lost(breaker.reason or first_line(exc))
        self._isolated = True
        await self.everywhere.publish(event)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait([self._task, self._recovery])
        self._task = self._recovery = None

    async def history(self, epoch: str, after: int, limit: int) -> list[tuple[tuple[str, int], Any]] | None:
        """Facts after ``after`` up to the last one delivered here, from the Redis log
        (``None`` if it no longer reaches back that far, or Redis cannot say)."""
        upto = self._last  # later facts reach the stream live
        if epoch != self._epoch or after > upto:
            return None
        if after == upto:
            return []
        if upto - after > limit:
            return None
        try:
            entries = await self.connection.call(
                self.connection.client.xrange(self._keys[2], min=f"({after}-0", max=f"{upto}-0"),
                timeout=self.timeout,
            ) or []
        except _LOST:
            return None
        if not entries or int(str(entries[0][0]).split("-")[0]) != after + 1:
            return None
        found: list[tuple[tuple[str, int], Any]] = []
        for entry_id, fields in entries:
            message = str((fields or {}).get("m", ""))
            head, _, body = message.partition(" ")
            _, _, body = body.partition(" ")
            if head != epoch:
                return None
            try:
                decoded = json.loads(body)
            except ValueError:
                continue
            if not isinstance(decoded, dict):
                continue
            if decoded.get("t") == _RESYNC:  # facts were missed there: a replay cannot make up for it
                return None
            event = _decode(decoded, self.outputs)
            if event is not None:
                found.append(((epoch, int(str(entry_id).split("-")[0])), event))
        return found

    # --- lifecycle ----------------------------------------------------------------------

    def on_resync(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` when facts may have been missed (tabs should resync)."""
        self._resync_handlers.append(handler)

    def start(self) -> None:
        """Start listening (idempotent; needs a running event loop)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="starmodel-redis-bus")

    async def wait_connected(self, timeout: float) -> bool:
        """Start listening and wait until subscribed; ``False`` if Redis did not answer."""
        self.start()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- the subscription ---------------------------------------------------------------

    async def _publish_body(self, body: str) -> int:
        if self._script is None:
            self._script = self.connection.client.register_script(_PUBLISH)
        fresh_epoch = secrets.token_hex(4)
        args = [self.channel, body, self.log_size, fresh_epoch]
        return int(await self.connection.call(self._script(keys=self._keys, args=args), timeout=self.timeout))

    async def _listen(self) -> None:
        failures = 0
        client = self.connection.client
        while not self._closed:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                if self._epoch is None:  # first connection: start from the current position
                    self._epoch = _text(await client.get(self._keys[1]))
                    self._last = int(await client.get(self._keys[0]) or 0)
                await pubsub.subscribe(self.channel)
                await self._catch_up()
                self._connected.set()
                self._back()
                await self._end_isolation()
                failures = 0
                while not self._closed:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is not None and message.get("type") == "message":
                        await self._receive(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except _LOST as exc:
                self._connected.clear()
                self._lost(first_line(exc))
                await asyncio.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
                failures += 1
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _lost(self, detail: str) -> None:
        """Redis went away: say so once; until it is back, facts are delivered here only."""
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis bus at %s unreachable (%s): changes reach this process's tabs only "
                "until it is back", where(self.connection.url), detail,
            )

    def _back(self) -> None:
        if self._warned:
            self._warned = False
            log.warning("Redis bus at %s is back: real time spans processes again",
                        where(self.connection.url))

    async def _end_isolation(self) -> None:
        """Facts delivered here only during an outage never reached the other processes:
        ask every process to resync its tabs (and keep asking until that message is sent)."""
        if self._isolated:
            self._isolated = False
            try:
                await self._publish_body(json.dumps({"t": _RESYNC, "b": {}}))
            except BaseException:
                self._isolated = True
                raise

    def _redis_answers_again(self) -> None:
        """The breaker closed. A frozen Redis leaves the subscription in place (it never
        saw an error), so the end of the outage is handled here rather than on resubscribing."""
        if self._closed or not self._connected.is_set():
            return  # the subscription is being renewed: it ends the outage itself

        async def recover() -> None:
            with contextlib.suppress(*_LOST):  # away again: the next recovery retries
                await self._end_isolation()
                self._back()

        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(recover(), name="starmodel-bus-recovery")

    async def _catch_up(self) -> None:
        """After (re)subscribing: deliver the facts of the log this process has not seen."""
        client = self.connection.client
        epoch = _text(await client.get(self._keys[1]))
        if epoch != self._epoch:
            if self._epoch is not None:  # Redis lost its data: nothing to replay
                self._resync()
            self._epoch = epoch
            self._last = int(await client.get(self._keys[0]) or 0)
            return
        entries = await client.xrange(self._keys[2], min=f"({self._last}-0", max="+") or []
        if entries and int(str(entries[0][0]).split("-")[0]) > self._last + 1:
            self._resync()  # the log was trimmed past what was missed
        for _, fields in entries:
            await self._receive(str((fields or {}).get("m", "")))

    async def _receive(self, message: str) -> None:
        try:
            epoch, raw_seq, body = message.split(" ", 2)
            seq = int(raw_seq)
        except ValueError:
            log.warning("foreign message on the bus channel %s ignored: %.80r", self.channel, message)
            return
        if epoch != self._epoch:
            if self._epoch is not None:
                self._resync()
            self._epoch, self._last = epoch, 0
        if seq <= self._last:
            return  # seen already (delivered by the catch-up)
        self._last = seq
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            log.warning("foreign message on the bus channel %s ignored: %.80r", self.channel, body)
            return
        if decoded.get("t") == _RESYNC:
            self._resync()
            return
        event = _decode(decoded, self.outputs)
        if event is None:
            return
        token = delivery_position.set((epoch, seq))
        try:
            if self.tracer is None:
                await self.everywhere.publish(event)
            else:
                with self.tracer.delivering(decoded.get("x"), event):
                    await self.everywhere.publish(event)
        finally:
            delivery_position.reset(token)

    def _resync(self) -> None:
        for handler in self._resync_handlers:
            try:
                handler()
            except Exception:
                log.exception("resync handler %r failed", handler)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# --- facts <-> JSON ---------------------------------------------------------------------


def _encode(
    event: Any, outputs: OutputsCodec | None, carried: dict[str, str] | None = None
) -> str | None:
    """The fact as JSON (with ``carried``, its trace context, if any), or ``None`` if it
    cannot leave this process."""
    if isinstance(event, EventOutputs):
        if outputs is None:
            return None
        payload: Any = {
            "namespace": event.namespace, "key": event.key, "scope": event.scope,
            "session_id": event.session_id, "outputs": outputs.encode(event),
        }
    elif isinstance(event, BaseModel):
        payload = event.model_dump(mode="json")
    elif dataclasses.is_dataclass(event) and not isinstance(event, type):
        payload = dataclasses.asdict(event)
    else:
        return None
    kind = type(event)
    if not isinstance(event, DomainEvent) or DomainEvent.registry.get(kind.event_name()) is not kind:
        return None
    try:
        message = {"t": kind.event_name(), "b": payload, **({"x": carried} if carried else {})}
        return json.dumps(message, separators=(",", ":"))
    except (TypeError, ValueError):
        log.warning("%s cannot be sent to other processes (its fields are not JSON)", kind.__name__)
        return None


def _decode(message: dict[str, Any], outputs: OutputsCodec | None) -> Any:
    kind = DomainEvent.registry.get(str(message.get("t")))
    if kind is None:
        log.warning("bus message of unknown type %r ignored", message.get("t"))
        return None
    payload = message.get("b") or {}
    try:
        if kind is EventOutputs:
            if outputs is None:
                return None
            encoded = payload.pop("outputs", None)
            return EventOutputs(**payload, outputs=outputs.decode(encoded))
        if kind is EntityChanged:
            return EntityChanged(**payload)
        if issubclass(kind, BaseModel):
            return kind.model_validate(payload)
        return kind(**payload)
    except (TypeError, ValueError) as exc:
        log.warning("bus message %s could not be read: %s", kind.__name__, exc)
        return None
