#!/usr/bin/env python3
"""Drives a running `stylevn serve` with the official `openai` Python client.

Run by tests/suite/serve_openai.rs (which starts the server on SmolLM2-135M-Instruct), or by
hand:  python3 scripts/serve_openai_client.py --base-url http://127.0.0.1:8000/v1 --model smollm2-135m-instruct

Checks, each an assert (exit status 1 on the first failure):
- non-streaming chat at temperature 0;
- streaming: the content deltas reassemble to the non-streaming text, one finish_reason;
- stream_options.include_usage: a last chunk with empty choices and the same usage;
- tools: a forced call (tool_choice naming the function) comes back as `tool_calls`
  with JSON arguments, streamed and not;
- a tool-result round trip: the call and a `tool` message sent back get an answer;
- errors: an unknown model is NotFoundError (404), empty messages BadRequestError (400).
Prints one JSON line summarising what was seen.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

import openai

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "description": "Trạng thái đơn hàng theo mã đơn (DHxxxxxx).",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "Mã đơn, ví dụ DH250004"}},
                "required": ["order_id"],
            },
        },
    }
]


def wait_ready(health_url: str, timeout_s: float = 300) -> None:
    """Polls /health until it answers 200: the server listens before the model is loaded."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(health_url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{health_url} never answered 200")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default="unused")
    args = parser.parse_args()
    wait_ready(args.base_url.rstrip("/").removesuffix("/v1") + "/health")
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    common = dict(model=args.model, messages=messages, temperature=0, max_tokens=24)

    full = client.chat.completions.create(**common)
    text = full.choices[0].message.content
    assert full.object == "chat.completion" and full.choices[0].message.role == "assistant"
    assert text, "empty answer"
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens

    pieces, finishes = [], []
    for chunk in client.chat.completions.create(**common, stream=True):
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(pieces) == text, f"stream {''.join(pieces)!r} != full {text!r}"
    assert finishes == [full.choices[0].finish_reason], finishes

    chunks = list(client.chat.completions.create(**common, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None, last
    assert all(c.usage is None for c in chunks[:-1])
    assert last.usage.completion_tokens == full.usage.completion_tokens
    assert last.usage.prompt_tokens == full.usage.prompt_tokens

    ask = [
        {"role": "system", "content": "Bạn là trợ lý của shop thời trang StyleVN."},
        {"role": "user", "content": "Đơn DH250004 của em tới đâu rồi ạ?"},
    ]
    forced = {"type": "function", "function": {"name": "get_order_status"}}
    call_reply = client.chat.completions.create(
        model=args.model, messages=ask, tools=TOOLS, tool_choice=forced, temperature=0, max_tokens=64
    )
    message = call_reply.choices[0].message
    assert message.tool_calls and len(message.tool_calls) == 1, message
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_order_status" and call.id
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments, dict), arguments

    streamed_calls = {}
    for chunk in client.chat.completions.create(
        model=args.model, messages=ask, tools=TOOLS, tool_choice=forced, temperature=0, max_tokens=64, stream=True
    ):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                entry = streamed_calls.setdefault(delta.index, {"name": "", "arguments": ""})
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    assert streamed_calls == {0: {"name": "get_order_status", "arguments": call.function.arguments}}, streamed_calls

    round_trip = ask + [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"order_id": "DH250004", "status": "Đang giao"}, ensure_ascii=False)},
    ]
    answer = client.chat.completions.create(model=args.model, messages=round_trip, tools=TOOLS, temperature=0, max_tokens=32)
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert answer.usage.prompt_tokens > call_reply.usage.prompt_tokens, "the tool result is part of the prompt"

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError:
        pass
    try:
        client.chat.completions.create(model=args.model, messages=[])
        raise AssertionError("empty messages accepted")
    except openai.BadRequestError:
        pass

    print(json.dumps({
        "text": text,
        "stream_chunks": len(pieces),
        "usage": last.usage.model_dump(),
        "tool_call": {"name": call.function.name, "arguments": arguments},
        "round_trip_answer": answer.choices[0].message.content,
    }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
