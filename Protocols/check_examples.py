#!/usr/bin/env python3
"""Checks Protocols/schemas against Protocols/examples.

Run from the repository root:

    python3 Protocols/check_examples.py [-v]

Each example is run through a model of the RRP/2 decoder written from RRP.md section 3.5: the
size limit, the frame count, the header, the command, the number of body frames, then each body
frame is parsed as JSON and validated against its JSON Schema, then the few rules JSON Schema
cannot express (listed in CODEC_ONLY_RULES) are applied. The verdict must equal the example's
"expect". Besides:

- every body frame of a valid example validates against its schema, including the second body
  frame of a DELIVER (referral or event, by the header's kind), which the decoder itself does not
  look into;
- an invalid example expecting schema_violation that its schemas accept must be refused by one
  of CODEC_ONLY_RULES, i.e. by a rule JSON Schema cannot state (RRP.md section 14);
- ids in valid examples are lowercase UUIDv7, as senders must write them.

Prints one line per failure (and per example with -v), then "N passed, M failed"; exits 1 if
anything failed. Needs the jsonschema package (4.18 or later).
"""
import datetime
import json
import re
import sys
from pathlib import Path

try:
    import jsonschema
except ImportError:  # pragma: no cover
    sys.exit("check_examples.py needs the jsonschema package: pip install 'jsonschema>=4.18'")

HERE = Path(__file__).resolve().parent
HEADER = b"RRP/2"
DEFAULT_MAX_MESSAGE_BYTES = 262144

# Command -> the schema of each body frame, in order. None: a frame the decoder does not
# validate (the stored message inside a DELIVER, checked separately by kind).
BODIES = {
    "HELLO": ["hello"],
    "READY": ["ready"],
    "REFER": ["referral"],
    "UPDATE": ["event"],
    "ESCALATE": ["escalation"],
    "COMMIT": ["commit"],
    "DELIVER": ["delivery-header", None],
    "RECEIPT": ["receipt"],
    "ERROR": ["error"],
    "PING": [],
    "PONG": [],
    "BYE": [],
    "CHECKPOINT": ["checkpoint"],
}
DELIVERY_SCHEMA = {"referral": "referral", "event": "event", "escalation": "escalation"}

# The only outcomes the codec itself produces; the other codes need broker state.
CODEC_CODES = {"bad_frame", "unknown_command", "version_unsupported", "too_large", "schema_violation"}

LOWER_UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|([+-])(\d{2}):(\d{2}))$")


class Refused(Exception):
    def __init__(self, code, why):
        super().__init__(f"{code}: {why}")
        self.code = code
        self.why = why


def instant(text):
    """An RFC 3339 timestamp as milliseconds since the epoch (already checked by the schema)."""
    m = TIMESTAMP.match(text)
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    millis = int((m.group(7) or "0")[:3].ljust(3, "0"))
    offset = 0
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * (1 if m.group(9) == "+" else -1)
    base = datetime.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=datetime.timezone.utc)
    return int(base.timestamp()) * 1000 + millis - offset * 60_000


def rule_from_differs_from_to(referral):
    if referral["from"] == referral["to"]:
        return "'to' must differ from 'from'"


def rule_deadlines_in_order(referral):
    created, receive, respond, complete = (
        instant(referral[k]) for k in ("created_at", "due_receive", "due_respond", "due_complete"))
    if not created <= receive <= respond <= complete:
        return "deadlines must satisfy created_at <= due_receive <= due_respond <= due_complete"


def rule_child_protection_needs_a_child(body):
    consent = body.get("consent", {})
    if consent.get("ground") == "child_protection" and body.get("subject", {}).get("child") is not True:
        return "an override on the 'child_protection' ground needs a subject who is a child"


def rule_base64_sizes(referral):
    sealed = referral["sealed"]
    if len(sealed["enc"]) != 44:
        return "'sealed.enc' must be 32 bytes in base64"


# Rules the codec enforces that JSON Schema cannot express, by schema.
CODEC_ONLY_RULES = {
    "referral": [rule_from_differs_from_to, rule_deadlines_in_order, rule_base64_sizes],
    "sealed-body": [rule_child_protection_needs_a_child],
}


MAX_DEPTH = 32


def depth(value):
    """Nesting depth of a JSON value: an object or array is one level more than its deepest item."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def encode(frame):
    """An example's frame as bytes: a string as UTF-8, anything else as compact JSON."""
    if isinstance(frame, str):
        return frame.encode("utf-8")
    return json.dumps(frame, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Checker:
    def __init__(self):
        self.validators = {}
        for path in sorted((HERE / "schemas").glob("*.schema.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            jsonschema.Draft202012Validator.check_schema(schema)
            name = path.name[: -len(".schema.json")]
            expected_id = f"https://rujuk.id/schemas/{name}.schema.json"
            if schema.get("$id") != expected_id:
                raise SystemExit(f"{path.name}: $id is {schema.get('$id')!r}, expected {expected_id!r}")
            if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
                raise SystemExit(f"{path.name}: not a draft 2020-12 schema")
            self.validators[name] = jsonschema.Draft202012Validator(schema)
        missing = {s for bodies in BODIES.values() for s in bodies if s} - set(self.validators)
        if missing:
            raise SystemExit(f"missing schemas: {', '.join(sorted(missing))}")

    def body(self, schema, raw, label):
        """Parses and validates one body frame; returns (value, refused_only_by_codec_rule)."""
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise Refused("schema_violation", f"{label}: not valid JSON")
        if depth(value) > MAX_DEPTH:
            raise Refused("schema_violation", f"{label}: nested deeper than {MAX_DEPTH} levels [codec-only rule]")
        errors = sorted(self.validators[schema].iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "the body"
            raise Refused("schema_violation", f"{label} ({schema}.schema.json) at {where}: {first.message[:160]}")
        for rule in CODEC_ONLY_RULES.get(schema, []):
            why = rule(value)
            if why:
                raise Refused("schema_violation", f"{label}: {why} [codec-only rule]")
        return value

    def decode(self, frames, max_message_bytes):
        """The decoder's verdict on frames, in the order RRP.md section 3.5 gives."""
        total = sum(len(f) for f in frames)
        if total > max_message_bytes:
            raise Refused("too_large", f"message is {total} bytes; the limit is {max_message_bytes}")
        if len(frames) < 2:
            raise Refused("bad_frame", f"at least 2 frames; got {len(frames)}")
        if frames[0] != HEADER:
            if frames[0].startswith(b"RRP/"):
                raise Refused("version_unsupported", "header names another version")
            raise Refused("bad_frame", "the first frame must be 'RRP/1'")
        try:
            command = frames[1].decode("utf-8")
        except UnicodeDecodeError:
            command = None
        if command not in BODIES:
            raise Refused("unknown_command", f"unknown command {frames[1][:16]!r}")
        schemas = BODIES[command]
        bodies = frames[2:]
        if len(bodies) != len(schemas):
            raise Refused("bad_frame", f"{command} has {len(schemas)} body frames; got {len(bodies)}")
        values = []
        for index, (schema, raw) in enumerate(zip(schemas, bodies)):
            values.append(self.body(schema, raw, f"{command} body frame {index + 1}") if schema else raw)
        return command, values


def ids_in(value):
    """The message ids in a JSON value: fields named id, referral_id and ids."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("id", "referral_id") and isinstance(item, str):
                yield item
            elif key == "ids" and isinstance(item, list):
                yield from (i for i in item if isinstance(i, str))
            else:
                yield from ids_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from ids_in(item)


def check(checker, path):
    """Returns (ok, message) for one example file."""
    example = json.loads(path.read_text(encoding="utf-8"))
    expect = example.get("expect")
    frames = example.get("frames")
    if not isinstance(example.get("description"), str) or not isinstance(frames, list):
        return False, "needs a 'description' string and a 'frames' array"
    valid = path.parent.name == "valid"
    if valid and expect != "ok":
        return False, f"a valid example must expect 'ok', not {expect!r}"
    if not valid and expect not in CODEC_CODES:
        return False, f"an invalid example must expect one of {sorted(CODEC_CODES)}, not {expect!r}"
    limit = example.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    raw = [encode(f) for f in frames]
    try:
        command, values = checker.decode(raw, limit)
        verdict, why = "ok", f"decodes as {command}"
    except Refused as refused:
        verdict, why = refused.code, refused.why
    if verdict != expect:
        return False, f"expected {expect}, the model decoder says {verdict} ({why})"
    if valid:
        if command == "DELIVER":
            kind = values[0]["kind"]
            try:
                checker.body(DELIVERY_SCHEMA[kind], values[1], f"DELIVER body frame 2 ({kind})")
            except Refused as refused:
                return False, f"the delivered message does not validate: {refused.why}"
        for frame in frames:
            for message_id in ids_in(frame):
                if not LOWER_UUID7.match(message_id):
                    return False, f"id {message_id!r} is not a lowercase UUIDv7"
    return True, why


def check_sealed(checker, path):
    """Returns (ok, message) for one example of the sealed part (examples/sealed/)."""
    example = json.loads(path.read_text(encoding="utf-8"))
    expect = example.get("expect")
    if not isinstance(example.get("description"), str) or not isinstance(example.get("body"), dict):
        return False, "needs a 'description' string and a 'body' object"
    valid = path.parent.name == "valid"
    if valid != (expect == "ok"):
        return False, f"a {path.parent.name} example cannot expect {expect!r}"
    try:
        checker.body("sealed-body", encode(example["body"]), "sealed part")
        verdict, why = "ok", "validates"
    except Refused as refused:
        verdict, why = refused.code, refused.why
    if verdict != expect:
        return False, f"expected {expect}, got {verdict} ({why})"
    return True, why


def main():
    verbose = "-v" in sys.argv[1:]
    checker = Checker()
    for path in sorted((HERE / "examples" / "sealed").glob("*/*.json")):
        ok, message = check_sealed(checker, path)
        print(f"{'ok   ' if ok else 'FAIL '} sealed/{path.parent.name}/{path.name}: {message}") if (verbose or not ok) else None
        if not ok:
            return 1
    files = sorted((HERE / "examples").glob("*/*.json"))
    if not any(f.parent.name == "valid" for f in files) or not any(f.parent.name == "invalid" for f in files):
        sys.exit("Protocols/examples needs both valid/ and invalid/ examples")
    passed = failed = 0
    codec_only = []
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        ok, message = check(checker, path)
        if ok:
            passed += 1
            if "[codec-only rule]" in message:
                codec_only.append(name)
            if verbose:
                print(f"ok    {name}: {message}")
        else:
            failed += 1
            print(f"FAIL  {name}: {message}")
    if codec_only:
        print(f"note: refused only by rules JSON Schema cannot express: {', '.join(codec_only)}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
