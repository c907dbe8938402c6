"""A minimal Gradio client that speaks the queue protocol the way the web page does, for latency benchmarks.

The page POSTs ``gradio_api/queue/join`` (its session hash, the event's ``fn_index``, the inputs with session
State slots as null) and then reads the ``gradio_api/queue/data`` event stream until the server closes it.
gradio_client does the same over HTTP but polls its message queue every 50 ms (``gradio_client/utils.py``),
which adds ~100 ms to every call: right for scripting a study, wrong for measuring a 150 ms target.

The call signature matches gradio_client's ``predict``: State inputs and outputs are left out.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import httpx


class AppRefused(Exception):
    """The app answered the event with an error (a ``gr.Error`` message): the session is intact."""


@dataclass(frozen=True)
class Endpoint:
    fn_index: int
    state_inputs: frozenset[int]
    state_outputs: frozenset[int]
    n_inputs: int = 0  # trailing inputs a call leaves out are sent as null (their defaults)


def read_endpoints(url: str, timeout: float = 60.0) -> dict[str, Endpoint]:
    """Every named event of the app at ``url``, with the positions of its session-State inputs and outputs."""
    config = httpx.get(url + "config", timeout=timeout).json()
    kinds = {c["id"]: c.get("type") for c in config["components"]}

    def states(ids: list[int]) -> frozenset[int]:
        return frozenset(i for i, cid in enumerate(ids) if kinds.get(cid) == "state")

    return {
        d["api_name"]: Endpoint(d["id"], states(d["inputs"]), states(d["outputs"]), len(d["inputs"]))
        for d in config["dependencies"]
        if d.get("api_name")
    }


class BrowserProtocolSession:
    """One browser session: its own session hash, so the app keeps its State between calls."""

    def __init__(
        self, url: str, endpoints: dict[str, Endpoint] | None = None, timeout: float = 600.0
    ) -> None:
        self.endpoints = endpoints or read_endpoints(url)
        self.http = httpx.Client(base_url=url + "gradio_api/", timeout=timeout)
        self.session_hash = uuid.uuid4().hex

    def close(self) -> None:
        self.http.close()

    def predict(self, *data: object, api_name: str) -> tuple:
        """Run one event and return its outputs (AppRefused on an app error; httpx errors when unreachable)."""
        return self.submit_together([data], api_name)[0]

    def submit_together(self, calls: list[tuple], api_name: str) -> list[tuple]:
        """Join several events of this session at once (a double click), then read the stream until all have
        completed. Outputs in completion order; AppRefused if any failed."""
        endpoint = self.endpoints[api_name.lstrip("/")]
        pending = {self._join(endpoint, data) for data in calls}
        results: list[tuple] = []
        errors: list[str] = []
        with self.http.stream("GET", "queue/data", params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                msg = json.loads(line[5:]) if line.startswith("data:") else {}
                if msg.get("msg") == "process_completed" and msg.get("event_id") in pending:
                    pending.discard(msg["event_id"])
                    if msg.get("success"):
                        data = msg["output"]["data"]
                        results.append(
                            tuple(v for i, v in enumerate(data) if i not in endpoint.state_outputs)
                        )
                    else:
                        errors.append(str((msg.get("output") or {}).get("error") or msg))
                if msg.get("msg") in ("close_stream", "unexpected_error") or not pending:
                    break
        if errors:
            raise AppRefused(errors[0])
        if pending:
            raise httpx.RemoteProtocolError(
                f"the event stream closed with {len(pending)} event(s) unanswered"
            )
        return results

    def _join(self, endpoint: Endpoint, data: tuple) -> str:
        values = iter(data)
        n_inputs = max(len(data) + len(endpoint.state_inputs), endpoint.n_inputs)
        full = [None if i in endpoint.state_inputs else next(values, None) for i in range(n_inputs)]
        body = {"data": full, "fn_index": endpoint.fn_index, "session_hash": self.session_hash,
                "event_data": None, "trigger_id": None}  # fmt: skip
        reply = self.http.post("queue/join", json=body)
        reply.raise_for_status()
        return reply.json()["event_id"]
