#!/usr/bin/env python3
"""Writes the fuzz corpus in Fuzz/corpus/: run it again whenever Protocols/examples change.

    python3 Fuzz/seed_corpus.py

A corpus file is one RRP message, its frames separated by the byte 0xFF (which never occurs in
UTF-8; see Sources/RujukFuzz/FuzzInput.swift). Two kinds of file:

- example-<valid|invalid>-<name>.rrp: every message of Protocols/examples, its frames encoded
  as RRP.md section 14 says (a string as UTF-8, anything else as compact JSON with sorted keys).
  The example's expected verdict is not kept: the fuzz target checks only that the decoder
  either decodes or refuses with a codec error, never what it decides.
- sealed-<valid|invalid>-<name>.rrp: the plaintext bodies of Protocols/examples/sealed, each
  as a single frame: the fuzz target decodes a one-frame input as what a recipient's adapter
  reads from an opened seal.
- hostile-<what>.rrp: hand-made inputs aimed at the decoder's edges (deep nesting, huge
  numbers, invalid UTF-8, lone surrogates, bracket storms inside strings, many frames, odd
  timestamps). They are derived from the examples where they need a valid body, so they
  follow the examples when those change.

A fourth kind, found-<what>.rrp, is an input a fuzz run found and that was then fixed: the script
leaves those alone. It removes the example-, sealed- and hostile- files it no longer writes.
Standard library only.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "Protocols" / "examples"
CORPUS = Path(__file__).resolve().parent / "corpus"
SEPARATOR = b"\xff"
# libFuzzer runs with -max_len of this size (Makefile, FUZZ_MAX_LEN); seeds stay within it.
MAX_SEED = 16384


def encode(frame):
    """An example's frame as bytes, as Protocols/check_examples.py encodes it."""
    if isinstance(frame, str):
        return frame.encode("utf-8")
    return json.dumps(frame, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def message(*frames):
    return SEPARATOR.join(f if isinstance(f, bytes) else encode(f) for f in frames)


def body(command, fields):
    return message("RRP/1", command, fields)


def nest(levels, inner=b"1", opener=b"[", closer=b"]"):
    return opener * levels + inner + closer * levels


def nest_objects(levels):
    return b'{"a":' * levels + b"1" + b"}" * levels


def with_raw_field(fields, key, raw):
    """A body with one more field whose value is raw bytes (possibly not valid JSON)."""
    text = encode(fields)
    return text[:-1] + b',"' + key.encode() + b'":' + raw + b"}"


def examples():
    found = {}
    for path in sorted(EXAMPLES.glob("*/*.json")):
        example = json.loads(path.read_text(encoding="utf-8"))
        found[f"example-{path.parent.name}-{path.stem}"] = example
    return found


def sealed_bodies():
    """The plaintext bodies of Protocols/examples/sealed, one frame each."""
    return {f"sealed-{path.parent.name}-{path.stem}": encode(json.loads(path.read_text(encoding="utf-8"))["body"])
            for path in sorted(EXAMPLES.glob("sealed/*/*.json"))}


def hostile(found):
    """Hand-made seeds; the ones needing a valid body take it from the examples."""
    seeds = {}

    def first_body(name, command):
        example = found.get(f"example-valid-{name}")
        if example and len(example["frames"]) >= 3 and example["frames"][1] == command:
            return dict(example["frames"][2])
        return None

    hello = first_body("hello", "HELLO") or {"agency": "polda-kepri", "versions": [1], "credit": 10, "heartbeat_ms": 5000}
    referral = first_body("refer", "REFER")
    event = first_body("update-accepted", "UPDATE")

    # Nesting: far over the limit, at the limit, one over it, inside strings, unbalanced.
    seeds["deep-array-body"] = message("RRP/1", "HELLO", b"[" * 4000)
    seeds["deep-object-body"] = message("RRP/1", "READY", nest_objects(200))
    # Levels count the body object itself: 32 in all is the most JSONCoding accepts.
    seeds["deep-unknown-field-32"] = message("RRP/1", "HELLO", with_raw_field(hello, "x", nest(30, b"[]")))
    seeds["deep-unknown-field-33"] = message("RRP/1", "HELLO", with_raw_field(hello, "x", nest(31, b"[]")))
    seeds["deep-unknown-field-1000"] = message("RRP/1", "HELLO", with_raw_field(hello, "x", nest(1000)))
    seeds["deep-unclosed-after-float"] = message("RRP/1", "HELLO", with_raw_field(hello, "f", b"1.5")[:-1] + b',"x":' + b"{\"a\":" * 500)
    seeds["brackets-inside-strings"] = body("HELLO", {**hello, "software": "[{" * 300 + '\\"]}' + '"' + "[" * 50})
    seeds["escaped-quotes-and-brackets"] = message(
        "RRP/1", "HELLO", with_raw_field(hello, "x", b'"\\\\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\"'))
    seeds["unbalanced-closers"] = message("RRP/1", "HELLO", b"]" * 40 + b"[" * 40)
    seeds["closers-then-deep"] = message("RRP/1", "COMMIT", b'{"ids":[]}' + b"]]]]" + b"[" * 100)
    if referral:
        seeds["deep-in-referral-body"] = message("RRP/1", "REFER", with_raw_field(referral, "extension", nest_objects(40)))
        seeds["deliver-deep-payload"] = message(
            "RRP/1", "DELIVER", {"kind": "referral", "id": referral["id"], "attempt": 1}, nest(5000))

    # Numbers: over Int64, over Double, fractions and exponents where integers belong.
    for name, raw in [("huge-int", b"123456789012345678901234567890"), ("huge-exponent", b"1e400"),
                      ("negative-zero", b"-0"), ("fraction", b"1.0"), ("tiny", b"4.9e-325"),
                      ("int64-max-plus-one", b"9223372036854775808"), ("int64-min", b"-9223372036854775808"),
                      ("leading-zero", b"007"), ("exponent-int", b"1E3")]:
        text = encode({**hello, "credit": 0})
        seeds[f"number-{name}"] = message("RRP/1", "HELLO", text.replace(b'"credit":0', b'"credit":' + raw))
    seeds["number-receipt-ids"] = body("RECEIPT", {"ids": [1e300, -1, 0.5]})

    # Strings: invalid UTF-8, surrogates, NUL, control characters, long runs of escapes.
    for name, raw in [("overlong", b"\xc0\xaf"), ("utf8-surrogate", b"\xed\xa0\x80"), ("over-max", b"\xf4\x90\x80\x80"),
                      ("lone-continuation", b"\x80"), ("truncated-sequence", b"\xe2\x82"), ("nul", b"\x00"),
                      ("control", b"\x01\x1f"), ("bom", b"\xef\xbb\xbf")]:
        seeds[f"utf8-{name}"] = message("RRP/1", "HELLO", with_raw_field(hello, "software", b'"a' + raw + b'b"'))
    seeds["utf8-bom-before-body"] = message("RRP/1", "HELLO", b"\xef\xbb\xbf" + encode(hello))
    seeds["utf8-invalid-command"] = message("RRP/1", b"HEL\xc0LO", encode(hello))
    for name, raw in [("lone-high", b'"\\ud800"'), ("lone-low", b'"\\udc00"'), ("reversed-pair", b'"\\udc00\\ud800"'),
                      ("high-then-text", b'"\\ud800abc"'), ("escaped-nul", b'"\\u0000"'), ("bad-hex", b'"\\u12g4"'),
                      ("short-escape", b'"\\u12"'), ("unknown-escape", b'"\\x41"')]:
        seeds[f"escape-{name}"] = message("RRP/1", "HELLO", with_raw_field(hello, "software", raw))
    seeds["escape-storm"] = body("HELLO", {**hello, "software": "\u00e9\"\\\n" * 600})
    seeds["long-string"] = body("HELLO", {**hello, "software": "a" * 12000})
    seeds["duplicate-keys"] = message("RRP/1", "HELLO", encode(hello)[:-1] + b',"agency":"other","credit":2}')
    seeds["trailing-garbage"] = message("RRP/1", "HELLO", encode(hello) + b" {")

    # Frames: many, empty, misplaced, near-miss headers.
    seeds["many-empty-frames"] = message("RRP/1", "PING") + SEPARATOR * 3000
    seeds["only-separators"] = SEPARATOR * 64
    seeds["empty-body-frames"] = message("RRP/1", "DELIVER", b"", b"")
    seeds["header-rrp2"] = message("RRP/2", "PING")
    seeds["header-with-nul"] = message(b"RRP/1\x00", "PING")
    seeds["header-prefix-only"] = message("RRP/", "PING")
    seeds["body-is-array"] = body("COMMIT", [{"ids": []}])
    seeds["body-is-string"] = body("ERROR", "internal")
    seeds["receipt-many-ids"] = body("RECEIPT", {"ids": ["01a207bd-a9c0-7c13-b970-56d89362da5c"] * 300})
    seeds["error-unknown-code"] = body("ERROR", {"code": "x" * 500, "reason": "", "id": None})

    # Instants at the edges of what the parser and the writer handle.
    if referral:
        for name, stamp in [("year-zero-plus-offset", "0000-01-01T00:00:00.000+23:59"),
                            ("year-9999-minus-offset", "9999-12-31T23:59:59.999-23:59"),
                            ("leap-second", "2026-06-30T23:59:60.000Z"), ("many-fraction-digits", "2026-11-23T09:30:00.123456789Z"),
                            ("lowercase", "2026-11-23t09:30:00.000z"), ("february-29", "2028-02-29T00:00:00Z")]:
            seeds[f"instant-{name}"] = body("REFER", {**referral, "created_at": stamp, "due_receive": stamp})
    # The sealed part: the decoder checks only its suite and the base64 lengths.
    if referral and isinstance(referral.get("sealed"), dict):
        sealed = referral["sealed"]
        for name, change in [("ct-padding-only", {"ct": "===="}), ("ct-padding-inside", {"ct": "AA=A" * 8}),
                             ("ct-not-a-string", {"ct": ["AAAA"]}), ("enc-one-byte-short", {"enc": "A" * 40 + "=="}),
                             ("ct-long", {"ct": "A" * 12000}), ("suite-unicode", {"suite": sealed.get("suite", "") + "\u0301"})]:
            seeds[f"sealed-{name}"] = body("REFER", {**referral, "sealed": {**sealed, **change}})
    plaintext = json.loads(sealed_bodies().get("sealed-valid-refer", b"null"))
    if isinstance(plaintext, dict):
        seeds["sealed-body-deep"] = with_raw_field(plaintext, "x", nest_objects(100))
        seeds["sealed-body-bad-utf8-name"] = encode(plaintext).replace(b'"name":"', b'"name":"\xc0\xaf', 1)
    if event:
        seeds["event-null-everywhere"] = body("UPDATE", {key: None for key in event})
    return seeds


def main():
    found = examples()
    if not found:
        sys.exit(f"no examples in {EXAMPLES}")
    files = {name: message(*example["frames"]) for name, example in found.items()}
    files.update(sealed_bodies())
    files.update({f"hostile-{name}": data for name, data in hostile(found).items()})
    for name, data in files.items():
        if len(data) > MAX_SEED:
            sys.exit(f"{name} is {len(data)} bytes; seeds stay within {MAX_SEED}")
    CORPUS.mkdir(exist_ok=True)
    wanted = {f"{name}.rrp" for name in files}
    removed = [path for path in CORPUS.glob("*.rrp")
               if path.name.startswith(("example-", "sealed-", "hostile-")) and path.name not in wanted]
    for path in removed:
        path.unlink()
    changed = 0
    for name, data in sorted(files.items()):
        path = CORPUS / f"{name}.rrp"
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            changed += 1
    print(f"{len(files)} corpus files in {CORPUS.relative_to(ROOT)} ({changed} written, {len(removed)} removed)")


if __name__ == "__main__":
    main()
