#!/usr/bin/env python3
"""Check schemas/: every schema is a valid Draft 2020-12 schema, every valid-*.json example
passes the envelope schema and its type's data schema, and every invalid-*.json example
fails at the level its name says, for the attribute its name says.

Example names (schemas/README.md):
  valid-*.json                 passes everything
  invalid-json-*.json          is not JSON the envelope reader accepts
  invalid-imp.<type>-*.json    a valid envelope whose data breaks schemas/events/<type>.json
  invalid-unknown-*.json       an attribute the envelope does not know
  invalid-<attribute>-*.json   breaks the envelope schema at <attribute>

JSON is read with the limits of jansson, which the C reader uses: duplicate keys, NaN and
Infinity, integers beyond 64 bits, overflowing reals, \\u0000, lone surrogates and invalid
UTF-8 are refused, and the top level must be an object. "integer" means written without a
fraction or exponent (JSON Schema would take 1.0), "date-time" is checked by the same rules
as common/src/envelope.c, and a pattern's final "$" is the end of the text (ECMA-262), not
"before a final newline" (Python).

Usage: check_schemas.py <schemas dir>
"""
import calendar
import datetime
import json
import math
import pathlib
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TYPE_RE = re.compile(r"imp(\.[a-z0-9_]+)+\.v[0-9]+")
TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()
TIME_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


class NotJson(ValueError):
    pass


def load_json(raw):
    """Parse bytes as jansson would (json_loadb with JSON_REJECT_DUPLICATES)."""

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise NotJson("duplicate object key")
        return dict(items)

    def constant(name):
        raise NotJson(f"{name} is not JSON")

    def integer(text):
        value = int(text)
        if not -(2**63) <= value < 2**63:
            raise NotJson("too big integer")
        return value

    def real(text):
        value = float(text)
        if math.isinf(value):
            raise NotJson("real number overflow")
        return value

    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=constant,
                         parse_int=integer, parse_float=real)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NotJson(str(e)) from None
    check_strings(doc)
    if not isinstance(doc, dict):
        raise NotJson("the envelope is not an object")
    return doc


def check_strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            check_string(key)
            check_strings(value)
    elif isinstance(node, list):
        for value in node:
            check_strings(value)
    elif isinstance(node, str):
        check_string(node)


def check_string(s):
    if "\x00" in s:
        raise NotJson("\\u0000 is not allowed")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise NotJson("invalid unicode (a lone surrogate)") from None


def rfc3339_ok(text):
    """The rules of imp_envelope_time_parse."""
    if not isinstance(text, str):
        return True  # "format" only applies to strings
    m = TIME_RE.fullmatch(text)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (year >= 1 and 1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 60):
        return False
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return False
    offset = 0
    if m.group(8):
        oh, om = int(m.group(9)), int(m.group(10))
        if oh > 23 or om > 59:
            return False
        offset = (oh * 60 + om) * (-1 if m.group(8) == "-" else 1)
    millis = int((m.group(7) or "")[:3].ljust(3, "0"))
    days = datetime.date(year, month, day).toordinal() - EPOCH_DAY
    ms = (days * 86400 + hour * 3600 + minute * 60 + second - offset * 60) * 1000 + millis
    return 0 <= ms <= TIME_MAX_MS


def ecma_pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if re.search(pattern, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def make_validator_class():
    types = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.validators.extend(
        Draft202012Validator, validators={"pattern": ecma_pattern}, type_checker=types)


def make_format_checker():
    checker = FormatChecker(formats=())
    checker.checks("date-time")(rfc3339_ok)
    return checker


class Checker:
    def __init__(self, root):
        self.root = root
        self.failures = []
        self.counts = {"schemas": 0, "valid": 0, "invalid": 0, "invalid data": 0}
        self.cls = make_validator_class()
        self.formats = make_format_checker()

    def fail(self, what, why):
        self.failures.append(f"{what}: {why}")

    def load_schema(self, path, expect_id):
        rel = path.relative_to(self.root)
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except (ValueError, jsonschema.SchemaError) as e:
            self.fail(rel, f"not a valid schema: {e}")
            return None
        if schema.get("$schema") != DRAFT:
            self.fail(rel, f"$schema is not {DRAFT}")
        if schema.get("$id") != expect_id:
            self.fail(rel, f"$id is not {expect_id}")
        self.counts["schemas"] += 1
        return self.cls(schema, format_checker=self.formats)

    def load_schemas(self):
        self.envelope = self.load_schema(self.root / "envelope.v1.json",
                                         "urn:imperium:schema:envelope.v1")
        self.types = {}
        for path in sorted((self.root / "events").glob("*.json")):
            name = path.name[: -len(".json")]
            if not TYPE_RE.fullmatch(name):
                self.fail(path.relative_to(self.root), "file name is not imp.<name>.v<n>.json")
                continue
            validator = self.load_schema(path, f"urn:imperium:schema:event:{name}")
            if validator is not None:
                self.types[name] = validator
        return self.envelope is not None

    def blamed(self, errors, doc):
        """Top-level attributes the envelope errors point at."""
        names = set()
        for e in errors:
            if e.path:
                names.add(e.path[0])
            elif e.validator == "required":
                names.update(p for p in e.validator_value if p not in doc)
            elif e.validator == "additionalProperties":
                names.update(k for k in doc if k not in e.schema.get("properties", {}))
        return names

    def check_example(self, path):
        name = path.name
        try:
            doc = load_json(path.read_bytes())
        except NotJson as e:
            if name.startswith("invalid-json-"):
                self.counts["invalid"] += 1
            else:
                self.fail(name, f"not JSON: {e}")
            return None
        if name.startswith("invalid-json-"):
            return self.fail(name, "is JSON the reader accepts")
        errors = list(self.envelope.iter_errors(doc))
        if name.startswith("valid-") or name.startswith("invalid-imp."):
            return self.check_data(name, doc, errors)
        if not name.startswith("invalid-"):
            return self.fail(name, "name is neither valid-* nor invalid-*")
        if not errors:
            return self.fail(name, "passes the envelope schema")
        attr = name[len("invalid-"):].split("-")[0]
        blamed = self.blamed(errors, doc)
        extra = set(doc) - set(self.envelope.schema["properties"])
        if attr == "unknown" and not extra & blamed:
            return self.fail(name, f"is not refused for an unknown attribute ({blamed})")
        if attr != "unknown" and attr not in blamed:
            return self.fail(name, f"is refused for {sorted(blamed)}, not {attr}")
        self.counts["invalid"] += 1

    def check_data(self, name, doc, errors):
        if errors:
            return self.fail(name, f"fails the envelope schema: {errors[0].message}")
        validator = self.types.get(doc["type"])
        if validator is None:
            return self.fail(name, f"no schema for type {doc['type']} in events/")
        data_errors = list(validator.iter_errors(doc["data"]))
        if name.startswith("valid-"):
            if data_errors:
                return self.fail(name, f"data fails {doc['type']}: {data_errors[0].message}")
            self.counts["valid"] += 1
            return doc
        if not name.startswith(f"invalid-{doc['type']}-"):
            return self.fail(name, f"its type is {doc['type']}, not the one in its name")
        if not data_errors:
            return self.fail(name, f"data passes {doc['type']}")
        self.counts["invalid data"] += 1

    def check_coverage(self, valid_docs, names):
        props = self.envelope.schema["properties"]
        seen = set().union(*(d.keys() for d in valid_docs)) if valid_docs else set()
        for attr in sorted(set(props) - seen):
            self.fail("examples", f"no valid example has {attr}")
        dlq_seen = set().union(*(d["dlq"].keys() for d in valid_docs if "dlq" in d))
        for member in sorted(set(props["dlq"]["properties"]) - dlq_seen):
            self.fail("examples", f"no valid example has dlq.{member}")
        for attr in sorted(props):
            if not any(n.startswith(f"invalid-{attr}-") for n in names):
                self.fail("examples", f"no invalid-{attr}-*.json example")
        for type_name, validator in sorted(self.types.items()):
            docs = [d for d in valid_docs if d["type"] == type_name]
            data_seen = set().union(*(d["data"].keys() for d in docs)) if docs else set()
            for member in sorted(set(validator.schema.get("properties", {})) - data_seen):
                self.fail("examples", f"no valid {type_name} example has data.{member}")
            if not any(n.startswith(f"invalid-{type_name}-") for n in names):
                self.fail("examples", f"no invalid-{type_name}-*.json example")

    def run(self):
        if not self.load_schemas():
            return
        paths = sorted((self.root / "examples").glob("*.json"))
        valid_docs = []
        for path in paths:
            result = self.check_example(path)
            if isinstance(result, dict) and path.name.startswith("valid-"):
                valid_docs.append(result)
        if not valid_docs or not self.counts["invalid"]:
            self.fail("examples", "need valid-*.json and invalid-*.json examples")
        self.check_coverage(valid_docs, [p.name for p in paths])


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    checker = Checker(pathlib.Path(sys.argv[1]))
    checker.run()
    c = checker.counts
    print(f"schemas: {c['schemas']} valid; examples: {c['valid']} valid passed, "
          f"{c['invalid']} invalid rejected, {c['invalid data']} with invalid data rejected; "
          f"{len(checker.failures)} mismatches")
    for failure in checker.failures:
        print(f"MISMATCH {failure}")
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
