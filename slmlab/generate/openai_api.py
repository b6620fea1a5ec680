"""Any OpenAI-compatible server (`--backend openai --base-url URL`): vLLM, SGLang, llama.cpp's
server, Ollama, TGI or a hosted API, through the `openai` client, which retries 408/409/429/5xx,
dropped connections and timeouts with exponential backoff.

Chat prompts go to the chat endpoint as their turns (the server applies the model's template);
plain prompts go to the completions endpoint. The key is read from an environment variable whose
name the run is given (`--api-key-env`), never from a flag or a config file, so it is in no run
record. A sample that still fails after its retries is a generation error: it is not stored (no
model is charged with a server's failure) and the run ends saying so; running the same command
again generates what is missing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from importlib import metadata

from slmlab.errors import UserError
from slmlab.generate.base import Generation, Request, register_backend
from slmlab.generate.concurrent import run_concurrently
from slmlab.generate.params import SamplingParams
from slmlab.generate.stops import CLOSED_CODE_BLOCK, StopFinder

NO_KEY = "no-key"  # local servers take any key; the client insists on one


class ServerTemplate:
    """What the prompt builders ask of a tokenizer, for a model whose tokenizer is on the server: a
    chat template exists (the server's), and a chat prompt renders as its turns for the record."""

    chat_template = "(applied by the server)"

    @staticmethod
    def apply_chat_template(messages: list[dict], tokenize: bool = False, add_generation_prompt: bool = True) -> str:
        return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"


def _finish(server_reason: str | None, cut: bool) -> str:
    if cut:
        return "stop"
    return {"length": "length", "stop": "eos"}.get(server_reason or "", "eos")


@register_backend("openai")
class OpenAIGenerator:
    capabilities = frozenset()
    overlaps_judging = True  # the model runs in the server: the cores here are free to judge

    def __init__(self, model: str, client, base_url: str, concurrency: int, served: list[str]):
        self.model, self.client, self.base_url, self.concurrency = model, client, base_url, concurrency
        self.served = served
        self.tokenizer = ServerTemplate()
        self.down: str | None = None  # set when the server stopped answering: the rest fail at once
        self.lock = threading.Lock()

    @classmethod
    def open(cls, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
             concurrency: int = 8, request_timeout: float = 600.0, max_retries: int = 5, dtype: str = "auto",
             **_) -> OpenAIGenerator:  # fmt: skip
        try:
            import openai
        except ImportError:
            raise UserError("the openai backend needs the openai package: pip install openai") from None
        if not base_url:
            raise UserError("--backend openai needs the server's address: --base-url http://HOST:PORT/v1")
        if dtype != "auto":
            raise UserError(f"the server decides the model's precision: --dtype {dtype} is for --backend hf")
        key = os.environ.get(api_key_env)
        if key is None and api_key_env != "OPENAI_API_KEY":
            raise UserError(f"the environment variable {api_key_env} (--api-key-env) is not set: export it with the key")
        client = openai.OpenAI(base_url=base_url, api_key=key or NO_KEY, timeout=request_timeout,
                               max_retries=max_retries)  # fmt: skip
        return cls(model, client, base_url, concurrency, _served_models(client, base_url, api_key_env))

    @staticmethod
    def identify(model: str) -> tuple[str | None, str]:
        return None, "an OpenAI-compatible server"

    def setup(self) -> dict:
        return {"backend": self.name, "engine_version": f"openai-compatible server (client openai {metadata.version('openai')})",
                "base_url": self.base_url, "served_models": self.served, "model_source": self.base_url,
                "model_sha256": None, "dtype": "server", "concurrency": self.concurrency}  # fmt: skip

    def generate(self, requests: Iterable[Request], params: SamplingParams, on_result: Callable[[Generation], None],
                 on_step: Callable[[int], None] | None = None) -> None:  # fmt: skip
        run_concurrently(requests, lambda request, _, steps: self._one(request, params, steps), self.concurrency,
                         on_result, on_step)  # fmt: skip

    def _one(self, request: Request, params: SamplingParams, steps: Callable[[int], None]) -> Generation:
        import openai

        started = time.monotonic()
        if self.down:
            return self._failed(request, started, self.down)
        stops = [s for s in (request.stops or ()) if s != CLOSED_CODE_BLOCK]
        asked = {"model": self.model, "max_tokens": request.max_new_tokens or params.max_new_tokens,
                 "temperature": params.temperature, "top_p": params.top_p, "seed": request.seed % 2**31,
                 **({"stop": stops} if stops else {})}  # fmt: skip
        extra = {name: value for name, value, off in (("top_k", params.top_k, 0),
                                                      ("repetition_penalty", params.repetition_penalty, 1.0))
                 if value != off}  # fmt: skip
        try:
            if request.messages:
                response = self.client.chat.completions.create(messages=list(request.messages), extra_body=extra or None,
                                                               **asked)  # fmt: skip
                choice = response.choices[0]
                text = choice.message.content or ""
            else:
                response = self.client.completions.create(prompt=request.prompt, extra_body=extra or None, **asked)
                choice = response.choices[0]
                text = choice.text or ""
        except openai.APIConnectionError as exc:  # timeouts included: retried, then given up
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, openai.APITimeoutError):
                reason = f"the server at {self.base_url} stopped answering ({reason})"
                with self.lock:
                    self.down = reason
            return self._failed(request, started, reason)
        except openai.APIStatusError as exc:
            return self._failed(request, started, f"HTTP {exc.status_code}: {_short(exc.message)}")
        cut = StopFinder(request.stops or ()).find(text)
        usage = response.usage
        tokens = usage.completion_tokens if usage else 0
        steps(tokens)
        return Generation(request.key, text if cut is None else text[:cut], tokens,
                          _finish(choice.finish_reason, cut is not None), round(time.monotonic() - started, 4),
                          usage.prompt_tokens if usage else 0)  # fmt: skip

    @staticmethod
    def _failed(request: Request, started: float, reason: str) -> Generation:
        return Generation(request.key, "", 0, "error", round(time.monotonic() - started, 4), 0, error=reason)


def _served_models(client, base_url: str, api_key_env: str) -> list[str]:
    """The models the server lists, checked once before the run starts: an address where nothing
    answers, or a key it refuses, is one line here rather than a run of failed samples."""
    import openai

    try:
        return [m.id for m in client.with_options(max_retries=1, timeout=30).models.list()]
    except openai.APIConnectionError as exc:
        raise UserError(f"no OpenAI-compatible server answers at {base_url} ({_short(str(exc))}): "
                        "start it, or check --base-url") from None  # fmt: skip
    except openai.AuthenticationError:
        raise UserError(f"the server at {base_url} refused the key: set it in ${api_key_env} (--api-key-env)") from None
    except openai.APIStatusError:
        return []  # a server without /models still serves completions


def _short(text: str) -> str:
    return " ".join(str(text).split())[:300]
