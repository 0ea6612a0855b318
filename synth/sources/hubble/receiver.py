"""GetFlows streams received in a child process, so that receiving and decoding flows use two cores.

grpcio spends about 10 µs of Python per received message, holding the interpreter lock; in the
collector's own process that time is taken from decoding and writing. A receiver is a child
process (forkserver: forked from a clean server process with this module already imported) that
opens the GetFlows stream itself and hands the serialized responses to the collector in lists of
up to `CHUNK` (at least every `_LINGER_S` while flows trickle in). What the stream raises
(`StreamBroken`, `CollectError`) is raised by the collector's iterator as if the stream were local;
cancelling ends the child. The child leaves when the collector is gone: its pipe to the collector has
no reader left, which it checks every `_LINGER_S` whether flows come or not (its parent is the
forkserver, which lives as long as its children do, so the parent says nothing). So a killed collector
leaves no receiver behind, and with the receiver gone the forkserver and resource tracker end too.
"""

from __future__ import annotations

import multiprocessing
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

from synth.sources.hubble.client import FlowRequest, HubbleClient
from synth.sources.transport import StreamBroken, TlsOptions

CHUNK = 512  # responses per message to the collector
_LINGER_S = 0.02  # how long received responses may wait to be handed over
_HELD_BACK = 8192  # responses waiting in the child before it stops reading the stream


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how a receiver connects (what HubbleClient needs)."""

    server: str
    tls: TlsOptions
    request_timeout_s: float


class ReceivedStream:
    """One GetFlows stream read by a receiver process: iterate lists of serialized responses, or cancel."""

    def __init__(self, endpoint: Endpoint, request: FlowRequest, since_ns: int | None) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._from_child, to_parent = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_receive, args=(endpoint, request, since_ns, to_parent), name="hubble-receiver", daemon=True
        )
        self._process.start()
        to_parent.close()
        self.cancelled = False

    def __iter__(self) -> Iterator[list[bytes]]:
        """Lists of responses until the stream ends; its error when it fails; StreamBroken if the child dies."""
        try:
            while True:
                message = self._from_child.recv()
                if isinstance(message, list):
                    yield message
                elif message is None:
                    return
                else:
                    raise message
        except (EOFError, OSError):
            if not self.cancelled:
                raise StreamBroken("the receiving process ended unexpectedly") from None
        finally:
            self._process.join(timeout=5)

    def cancel(self) -> None:
        """Stop the stream: the child is ended and the iterator ends quietly."""
        self.cancelled = True
        self._process.terminate()


def _receive(endpoint: Endpoint, request: FlowRequest, since_ns: int | None, parent: Connection) -> None:
    """The child: read the stream in a thread, hand the responses over in lists, then None or the error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the collector, which ends this stream
    client = HubbleClient(endpoint.server, endpoint.tls, endpoint.request_timeout_s)
    received: deque[bytes] = deque()
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            for data in client.open(request, since_ns):
                received.append(data)
                while len(received) > _HELD_BACK:
                    time.sleep(0.002)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - handed to the collector, which decides
            outcome.append(e)

    threading.Thread(target=read, name="hubble-receiver-read", daemon=True).start()
    gone = select.poll()
    gone.register(parent.fileno(), 0)  # a pipe's write end reports POLLERR once no reader is left
    try:
        while not gone.poll(0):
            ended = bool(outcome)
            while received:
                parent.send([received.popleft() for _ in range(min(len(received), CHUNK))])
            if ended:
                parent.send(outcome[0])
                return
            time.sleep(_LINGER_S)
    except OSError:
        return  # the collector is gone
    finally:
        client.close()
