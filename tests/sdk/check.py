#!/usr/bin/env python3
"""Exercises the OpenAI API surface with the official `openai` and `anthropic`
Python SDKs against a base URL (the agent, or the mock provider alone via
`residency-agent demo --mock-only --listen ADDR`).

    python3 tests/sdk/check.py --base-url http://127.0.0.1:8090/v1 --api-key KEY

Prints one line per check; exits 1 at the first failure, saying which.
"""

import argparse
import sys
import warnings

import anthropic
import openai


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8090/v1")
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--model", default="mock-gpt")
    ap.add_argument("--no-auth-check", action="store_true",
                    help="skip the wrong-key check (through the agent, the gateway sends its own key)")
    args = ap.parse_args()
    # audio.translations is marked deprecated in recent SDKs; it still works.
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30)
    anthropic_base = args.base_url.rstrip("/")
    if anthropic_base.endswith("/v1"):
        anthropic_base = anthropic_base[: -len("/v1")]
    claude = anthropic.Anthropic(base_url=anthropic_base, api_key=args.api_key, max_retries=0, timeout=30)
    model = args.model
    state = {}

    def models():
        ids = [m.id for m in client.models.list()]
        expect(model in ids, f"{model} not in {ids}")
        return f"{len(ids)} models"

    def bad_key():
        bad = openai.OpenAI(base_url=args.base_url, api_key="sk-wrong-key", max_retries=0)
        try:
            bad.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError:
            return "401 AuthenticationError"
        raise CheckFailed("a wrong key was accepted (the server may accept any key)")

    def files_upload():
        lines = b'{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}}\n'
        f = client.files.create(file=("batch.jsonl", lines, "application/jsonl"), purpose="batch")
        expect(f.id.startswith("file-") and f.bytes == len(lines), f"bad file {f}")
        state["file"] = f.id
        got = client.files.retrieve(f.id)
        expect(got.filename == "batch.jsonl" and got.purpose == "batch", f"retrieve gave {got}")
        content = client.files.content(f.id).read()
        expect(content == lines, f"content differs: {content!r}")
        ids = [x.id for x in client.files.list()]
        expect(f.id in ids, "uploaded file not listed")
        return f.id

    def files_delete():
        f = client.files.create(file=("tmp.txt", b"scratch", "text/plain"), purpose="user_data")
        d = client.files.delete(f.id)
        expect(d.deleted, f"delete gave {d}")
        try:
            client.files.retrieve(f.id)
        except openai.NotFoundError:
            return "deleted, then 404"
        raise CheckFailed("a deleted file is still there")

    def batches():
        b = client.batches.create(input_file_id=state["file"], endpoint="/v1/chat/completions", completion_window="24h")
        expect(b.id.startswith("batch_") and b.input_file_id == state["file"], f"bad batch {b}")
        expect(client.batches.retrieve(b.id).id == b.id, "retrieve")
        expect(b.id in [x.id for x in client.batches.list()], "batch not listed")
        c = client.batches.cancel(b.id)
        expect(c.status in ("cancelling", "cancelled"), f"cancel gave {c.status}")
        try:
            client.batches.create(input_file_id="file-does-not-exist", endpoint="/v1/chat/completions", completion_window="24h")
        except (openai.NotFoundError, openai.BadRequestError):
            return f"{b.id}, missing file refused"
        raise CheckFailed("a batch on a missing file was accepted")

    def vector_stores():
        vs = client.vector_stores.create(name="check", file_ids=[state["file"]])
        expect(vs.id.startswith("vs_"), f"bad id {vs.id}")
        other = client.files.create(file=("notes.txt", b"monsoon notes", "text/plain"), purpose="assistants")
        vf = client.vector_stores.files.create(vector_store_id=vs.id, file_id=other.id)
        expect(vf.id == other.id, f"vector store file {vf}")
        ids = {f.id for f in client.vector_stores.files.list(vector_store_id=vs.id)}
        expect(ids == {state["file"], other.id}, f"files listed: {ids}")
        expect(client.vector_stores.retrieve(vs.id).file_counts.total == 2, "file_counts")
        expect(client.vector_stores.delete(vs.id).deleted, "delete")
        return vs.id

    def responses():
        r = client.responses.create(model=model, input="Say hi")
        expect(r.id.startswith("resp_") and r.status == "completed", f"bad response {r.id} {r.status}")
        expect(r.output_text, "the response has no output_text")
        state["resp"] = r.id
        got = client.responses.retrieve(r.id)
        expect(got.id == r.id and got.output_text == r.output_text, "retrieve differs")
        items = list(client.responses.input_items.list(r.id))
        expect(items and items[0].type == "message", f"input items {items}")
        follow = client.responses.create(model=model, input="And again", previous_response_id=r.id)
        expect(follow.previous_response_id == r.id, "previous_response_id not kept")
        try:
            client.responses.create(model=model, input="x", previous_response_id="resp_missing")
        except (openai.BadRequestError, openai.NotFoundError):
            pass
        else:
            raise CheckFailed("an unknown previous_response_id was accepted")
        return r.id

    def responses_stream():
        kinds, text, final = [], "", None
        for ev in client.responses.create(model=model, input="Stream hi", stream=True):
            kinds.append(ev.type)
            if ev.type == "response.output_text.delta":
                text += ev.delta
            if ev.type == "response.completed":
                final = ev.response
        expect(kinds[:1] == ["response.created"], f"first event {kinds[:1]}")
        expect(kinds[-1:] == ["response.completed"], f"last event {kinds[-1:]}")
        expect(text and final is not None and final.output_text == text, f"text {text!r}")
        return f"{len(kinds)} events, {kinds.count('response.output_text.delta')} deltas"

    def responses_delete():
        client.responses.delete(state["resp"])
        try:
            client.responses.retrieve(state["resp"])
        except openai.NotFoundError:
            return "deleted, then 404"
        raise CheckFailed("a deleted response is still there")

    def conversations():
        c = client.conversations.create(items=[{"type": "message", "role": "user", "content": "Hello"}], metadata={"topic": "check"})
        expect(c.id.startswith("conv_"), f"bad id {c.id}")
        expect(client.conversations.retrieve(c.id).metadata == {"topic": "check"}, "metadata")
        u = client.conversations.update(c.id, metadata={"topic": "updated"})
        expect(u.metadata == {"topic": "updated"}, "update")
        added = client.conversations.items.create(c.id, items=[{"type": "message", "role": "user", "content": "More"}])
        expect(len(added.data) == 1, f"added {added}")
        r = client.responses.create(model=model, input="In the conversation", conversation=c.id)
        expect(r.status == "completed", "response in conversation")
        items = list(client.conversations.items.list(c.id))
        expect(len(items) == 4, f"{len(items)} items, want 4")
        expect(client.conversations.delete(c.id).deleted, "delete")
        return c.id

    def chat_stored():
        msgs = [{"role": "user", "content": "Hello"}]
        c = client.chat.completions.create(model=model, messages=msgs, store=True, metadata={"check": "sdk"})
        expect(c.id.startswith("chatcmpl-") and c.choices[0].message.content, f"bad completion {c}")
        got = client.chat.completions.retrieve(c.id)
        expect(got.id == c.id, "retrieve")
        expect(c.id in [x.id for x in client.chat.completions.list()], "not listed")
        m = list(client.chat.completions.messages.list(c.id))
        expect(len(m) == 1 and m[0].content == "Hello", f"messages {m}")
        expect(client.chat.completions.delete(c.id).deleted, "delete")
        return c.id

    def chat_stream():
        text = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello"}], stream=True) if ch.choices)
        expect(text, "no streamed text")
        return f"{len(text)} chars"

    def embeddings():
        e = client.embeddings.create(model="mock-embed", input=["a", "b"])
        expect(len(e.data) == 2 and e.data[0].embedding, "embeddings")
        return f"{len(e.data)} vectors"

    def moderations():
        m = client.moderations.create(input="I love monsoon rain")
        expect(len(m.results) == 1 and m.results[0].flagged is False, f"moderation {m}")
        return m.id

    def images():
        i = client.images.generate(model="gpt-image-1", prompt="a mango", n=1)
        expect(i.data and i.data[0].b64_json, "no b64_json")
        e = client.images.edit(model="gpt-image-1", image=("a.png", b"\x89PNG\r\n", "image/png"), prompt="bluer")
        expect(e.data and e.data[0].b64_json, "edit gave no b64_json")
        return "generate + edit"

    def speech():
        with client.audio.speech.with_streaming_response.create(model="gpt-4o-mini-tts", voice="alloy", input="Hello") as r:
            expect(r.headers.get("content-type", "").startswith("audio/mpeg"), f"content-type {r.headers.get('content-type')}")
            audio = b"".join(r.iter_bytes())
        expect(len(audio) > 0, "no audio")
        return f"{len(audio)} bytes"

    def transcription():
        t = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"\xff\xf3\x14\xc4" + bytes(64), "audio/mpeg"))
        expect(t.text, "no text")
        tr = client.audio.translations.create(model="whisper-1", file=("a.mp3", b"\xff\xf3\x14\xc4" + bytes(64), "audio/mpeg"))
        expect(tr.text, "no translation")
        return t.text

    def uploads():
        data = b"x" * 10
        u = client.uploads.create(bytes=len(data), filename="big.txt", mime_type="text/plain", purpose="assistants")
        expect(u.id.startswith("upload_") and u.status == "pending", f"upload {u}")
        p1 = client.uploads.parts.create(upload_id=u.id, data=data[:6])
        p2 = client.uploads.parts.create(upload_id=u.id, data=data[6:])
        done = client.uploads.complete(upload_id=u.id, part_ids=[p1.id, p2.id])
        expect(done.status == "completed" and done.file and done.file.bytes == len(data), f"complete {done}")
        expect(client.files.content(done.file.id).read() == data, "assembled content differs")
        u2 = client.uploads.create(bytes=1, filename="x.txt", mime_type="text/plain", purpose="assistants")
        expect(client.uploads.cancel(upload_id=u2.id).status == "cancelled", "cancel")
        return done.file.id

    def anthropic_plain():
        m = claude.messages.create(model="claude-mock", max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
        expect(m.id.startswith("msg_") and m.content[0].text and m.stop_reason == "end_turn", f"message {m}")
        return m.id

    def anthropic_stream():
        with claude.messages.stream(model="claude-mock", max_tokens=64, messages=[{"role": "user", "content": "Hello"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        expect(text and final.content[0].text == text and final.stop_reason == "end_turn", f"stream {text!r}")
        return f"{len(text)} chars"

    checks = [
        ("models", models), ("bad key is 401", bad_key), ("files upload", files_upload),
        ("files delete", files_delete), ("batches", batches), ("vector stores", vector_stores),
        ("responses", responses), ("responses stream", responses_stream),
        ("responses delete", responses_delete), ("conversations", conversations),
        ("chat completions stored", chat_stored), ("chat completions stream", chat_stream),
        ("embeddings", embeddings), ("moderations", moderations), ("images", images),
        ("audio speech", speech), ("audio transcription", transcription), ("uploads", uploads),
        ("anthropic messages", anthropic_plain), ("anthropic messages stream", anthropic_stream),
    ]
    if args.no_auth_check:
        checks = [c for c in checks if c[1] is not bad_key]
    for name, fn in checks:
        try:
            detail = fn()
        except CheckFailed as e:
            print(f"FAIL  {name}: {e}")
            return 1
        except Exception as e:  # an SDK error: say which check and what
            print(f"FAIL  {name}: {type(e).__name__}: {e}")
            return 1
        print(f"ok    {name}: {detail}")
    print(f"all {len(checks)} SDK checks passed against {args.base_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
