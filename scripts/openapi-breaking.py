#!/usr/bin/env python3
"""Breaking changes between two OpenAPI documents of the HTTP API.

    scripts/openapi-breaking.py OLD.json NEW.json

Exits 1 and lists each breaking change, 0 when NEW can replace OLD for every client written
against OLD. What breaks a client:

- an operation (path + method) removed;
- a parameter or request field added as required, or an optional one made required;
- a request field or parameter removed (clients send it; it would now be refused as unknown);
- a request field's, parameter's or response field's type changed;
- an enum value removed from a request field or parameter (clients send it);
- a response field removed (clients read it);
- a success status code of an operation removed.

Schemas are compared through `$ref`s, by the path that reaches them (e.g.
`POST /api/v1/orders request.location.lat`), so renaming a component is not itself a break.
"""

import json
import sys

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def resolve(doc, schema, seen=()):
    """Follows `$ref`s; returns the schema and the refs followed (to stop on cycles)."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return {}, seen
        seen = seen + (ref,)
        node = doc
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part, {})
        schema = node
    return schema or {}, seen


def types(schema):
    t = schema.get("type")
    if t is None:
        return None
    return tuple(sorted(t)) if isinstance(t, list) else (t,)


def alternatives(doc, schema, seen):
    """The branches of a nullable `oneOf`/`anyOf` (e.g. `null | Location`), else the schema."""
    branches = schema.get("oneOf") or schema.get("anyOf")
    if not branches:
        return schema, seen
    non_null = [b for b in branches if b.get("type") != "null"]
    if len(non_null) == 1:
        return resolve(doc, non_null[0], seen)
    return schema, seen


def compare_schema(old_doc, new_doc, old, new, where, request, problems, seen=()):
    old, seen_old = resolve(old_doc, old, seen)
    new, seen_new = resolve(new_doc, new, seen)
    if len(seen_old) > 8:
        return
    old, seen_old = alternatives(old_doc, old, seen_old)
    new, seen_new = alternatives(new_doc, new, seen_new)
    old_types, new_types = types(old), types(new)
    if old_types and new_types and not set(old_types) <= set(new_types):
        if request or not set(new_types) <= set(old_types):
            problems.append(f"{where}: type {list(old_types)} → {list(new_types)}")
            return
    if request and "enum" in old and "enum" in new:
        for value in old["enum"]:
            if value not in new["enum"]:
                problems.append(f"{where}: enum value {value!r} removed")
    if request and "enum" not in old and "enum" in new:
        problems.append(f"{where}: restricted to an enum {new['enum']}")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_prop in old_props.items():
        path = f"{where}.{name}"
        if name not in new_props:
            problems.append(f"{path}: removed")
            continue
        compare_schema(old_doc, new_doc, old_prop, new_props[name], path, request, problems,
                       seen_old)
    if request:
        for name in sorted(new_required - old_required):
            problems.append(f"{where}.{name}: now required")
    if "items" in old and "items" in new:
        compare_schema(old_doc, new_doc, old["items"], new["items"], f"{where}[]", request,
                       problems, seen_old)


def json_body(doc, holder):
    content = (holder or {}).get("content", {})
    for media, body in content.items():
        if "json" in media:
            return body.get("schema", {})
    return None


def operations(doc):
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def compare(old_doc, new_doc):
    problems = []
    new_ops = dict(operations(new_doc))
    for name, old_op in operations(old_doc):
        new_op = new_ops.get(name)
        if new_op is None:
            problems.append(f"{name}: operation removed")
            continue
        old_params = {(p["in"], p["name"]): p for p in old_op.get("parameters", [])}
        new_params = {(p["in"], p["name"]): p for p in new_op.get("parameters", [])}
        for key, old_p in old_params.items():
            where = f"{name} {key[0]} parameter {key[1]}"
            if key not in new_params:
                problems.append(f"{where}: removed")
                continue
            if new_params[key].get("required") and not old_p.get("required"):
                problems.append(f"{where}: now required")
            compare_schema(old_doc, new_doc, old_p.get("schema", {}),
                           new_params[key].get("schema", {}), where, True, problems)
        for key, new_p in new_params.items():
            if key not in old_params and new_p.get("required"):
                problems.append(f"{name} {key[0]} parameter {key[1]}: added as required")
        old_body = json_body(old_doc, old_op.get("requestBody"))
        new_body = json_body(new_doc, new_op.get("requestBody"))
        if old_body is not None and new_body is not None:
            compare_schema(old_doc, new_doc, old_body, new_body, f"{name} request", True,
                           problems)
        old_responses, new_responses = old_op.get("responses", {}), new_op.get("responses", {})
        for status, old_response in old_responses.items():
            if not status.startswith("2"):
                continue
            if status not in new_responses:
                problems.append(f"{name} response {status}: removed")
                continue
            old_schema = json_body(old_doc, old_response)
            new_schema = json_body(new_doc, new_responses[status])
            if old_schema is not None and new_schema is not None:
                compare_schema(old_doc, new_doc, old_schema, new_schema,
                               f"{name} response {status}", False, problems)
    return problems


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        old = json.load(f)
    with open(sys.argv[2]) as f:
        new = json.load(f)
    problems = compare(old, new)
    for p in problems:
        print(f"breaking: {p}")
    if problems:
        sys.exit(1)
    print("openapi-breaking: no breaking change")


if __name__ == "__main__":
    main()
