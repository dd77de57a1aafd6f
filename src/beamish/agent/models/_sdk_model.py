"""What the adapters built on an official provider SDK share: settings, the client, error mapping.

The Anthropic and OpenAI adapters differ in their wire formats only; how a call is made (streamed or
not), how the SDK's and the transport's errors become :class:`~beamish.ModelError` subclasses, and
how the client is opened and closed is one policy, kept here so the two cannot drift apart. So is
reading a successful answer's rate-limit headers into its ``rate_hint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

from beamish._exceptions import ModelError, SpecError
from beamish.agent._messages import ModelRequest, ModelResponse, RateHint
from beamish.agent.models._errors import rate_hint, translate_sdk_error, translate_transport_error
from beamish.agent.models._protocol import ChunkCallback, guard_stream
from beamish.agent.models._settings import ModelSettings


class SdkModel(ABC):
    """A model reached through the SDK package named ``provider`` (also the extra that installs it).

    Settings shared by every adapter are a :class:`ModelSettings`; a subclass takes its own extras
    by name and the rest as options. Subclasses build the request (``_params``), make one unstreamed
    call (``_create``, which also hands back the answer's headers) and read its result
    (``_from_response``), and read a stream (``_complete_streaming``, its hint from :meth:`_hint`).
    """

    provider: str

    def __init__(self, model: str, settings: ModelSettings, *, example: str) -> None:
        if not model:
            raise SpecError(
                f"{self.provider} model name is empty (expected e.g. '{self.provider}:{example}')"
            )
        self.model = model
        self.name = f"{self.provider}:{model}"
        self.settings = settings
        self.stream = settings.stream
        self.first_chunk_timeout_s = settings.first_chunk_timeout_s
        self.next_chunk_timeout_s = settings.next_chunk_timeout_s
        self._clock = settings.clock
        self._api_key = settings.api_key
        self._base_url = settings.base_url
        self._timeout = settings.request_timeout_s
        self._client = settings.client
        self._warming: asyncio.Future[Any] | None = None

    def warm(self) -> asyncio.Future[Any] | None:
        """Import the SDK and open the client on a thread, from the agent's start.

        The SDK's imports and the client's TLS context take 0.25-0.6 s of CPU: done by the first
        call they would stall the node's loop, and every other run and agent on it, that long.
        Returns what to await for it (None: nothing to do).
        """
        if self._client is None and self._warming is None:
            self._warming = asyncio.ensure_future(asyncio.to_thread(self._get_client))
            self._warming.add_done_callback(lambda done: done.cancelled() or done.exception())
        return self._warming

    async def _warmed(self) -> None:
        """Wait for :meth:`warm` (its failure is the call's to raise, so it is ignored here)."""
        warming = self._warming
        if warming is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(warming)  # every call waits for it; a cancelled one leaves it be
            self._warming = None

    def _sdk(self) -> Any:
        try:
            return importlib.import_module(self.provider)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelError(
                f"the '{self.provider}' extra is not installed: pip install 'beamish[{self.provider}]'"
            ) from exc

    def _guarded(self, stream: Any, on_chunk: ChunkCallback | None) -> AsyncIterator[Any]:
        """``stream``'s chunks under this model's first- and next-chunk limits, each a heartbeat."""
        return guard_stream(
            stream,
            first_chunk_timeout_s=self.first_chunk_timeout_s,
            next_chunk_timeout_s=self.next_chunk_timeout_s,
            on_chunk=on_chunk,
            clock=self._clock,
            what=f"{self.name} stream",
        )

    def _hint(self, headers: Any) -> RateHint | None:
        """The rate-limit headers of a successful answer (resets read on this model's clock)."""
        return rate_hint(headers, self._clock.time()) if headers else None

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = self._new_client(self._sdk())
        return self._client

    @abstractmethod
    def _new_client(self, sdk: Any) -> Any: ...

    @abstractmethod
    def _params(self, request: ModelRequest) -> dict[str, Any]: ...

    @abstractmethod
    async def _create(self, client: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        """The answer to one unstreamed call and the HTTP headers it came with."""

    @abstractmethod
    def _from_response(self, response: Any) -> ModelResponse: ...

    @abstractmethod
    async def _complete_streaming(
        self, client: Any, params: dict[str, Any], on_chunk: ChunkCallback | None
    ) -> ModelResponse: ...

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkCallback | None = None
    ) -> ModelResponse:
        if self._warming is not None:
            await self._warmed()
        sdk = self._sdk()
        client = self._get_client()
        params = self._params(request)
        try:
            if not self.stream:
                answer, headers = await self._create(client, params)
                if on_chunk is not None:
                    on_chunk()
                response = self._from_response(answer)
                hint = self._hint(headers)
                return response if hint is None else dataclasses.replace(response, rate_hint=hint)
            return await self._complete_streaming(client, params, on_chunk)
        except ModelError:
            raise
        except sdk.APIError as exc:
            raise translate_sdk_error(exc, sdk, self.name) from exc
        except Exception as exc:
            mapped = translate_transport_error(exc, self.name)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        await self._warmed()
        if self._client is not None:
            await self._client.close()
            self._client = None
