"""A pydantic ValidationError as the one line an operator acts on.

The error that explains the others comes first: an unknown key (a typo) is named
with the nearest known key ("did you mean `source`?"), not reported as the
required key it left missing. Union tags (``cameras.0.file.source``) are left
out of the path the operator reads (``cameras.0.source``).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

Loc = tuple[int | str, ...]


def closest(name: str, known: Iterable[str]) -> list[str]:
    """The one known name ``name`` is most likely a typo of, or none."""
    return difflib.get_close_matches(name.lower(), sorted(set(known)), n=1, cutoff=0.6)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean `x`?`` for the closest of ``known``, else ``; known: a, b, c``."""
    choices = sorted(set(known))
    close = closest(name, choices)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; known: {', '.join(choices)}" if choices else ""


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        found: list[Any] = []
        for arg in get_args(annotation):
            found += _members(arg)
        return [m for m in found if m is not type(None)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _keys(model: type[BaseModel]) -> set[str]:
    fields = model.model_fields
    return set(fields) | {f.alias for f in fields.values() if f.alias}


def _tagged(model: type[BaseModel], tag: str) -> bool:
    return any(
        get_origin(_unwrap(field.annotation)) is Literal
        and tag in get_args(_unwrap(field.annotation))
        for field in model.model_fields.values()
    )


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.annotation
    return None


def walk(root: type[BaseModel], loc: Loc) -> tuple[Loc, type[BaseModel] | None]:
    """``loc`` without union tags, and the model class the last part of ``loc`` names (None
    where it names no model, or the annotations cannot be followed)."""
    shown: list[int | str] = []
    current: Any = root
    for part in loc:
        members = _members(current) if current is not None else []
        models = [m for m in members if _is_model(m)]
        if isinstance(part, str) and models:
            owner = next((m for m in models if part in _keys(m)), None)
            if owner is None:
                tagged = [m for m in models if _tagged(m, part)]
                if tagged:  # the union's tag: picks the member, not shown
                    current = tagged[0]
                    continue
                shown.append(part)
                current = None
                continue
            shown.append(part)
            current = _field(owner, part)
            continue
        shown.append(part)
        current = _item(members, part)
    models = _models(current)
    return tuple(shown), (models[0] if len(models) == 1 else None)


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if _is_model(m)] if annotation is not None else []


def _tag_field(model: type[BaseModel], tag: str) -> str | None:
    return next(
        (
            name
            for name, field in model.model_fields.items()
            if get_origin(_unwrap(field.annotation)) is Literal
            and tag in get_args(_unwrap(field.annotation))
        ),
        None,
    )


def _union_at(root: type[BaseModel], loc: Loc) -> list[type[BaseModel]]:
    """The members of the union that ``loc`` names (empty where it names none)."""
    current: Any = root
    for part in loc:
        models = _models(current)
        if isinstance(part, str) and models:
            owner = next((m for m in models if part in _keys(m)), None)
            current = _field(owner, part) if owner is not None else None
        else:
            current = _item(_members(current), part) if current is not None else None
        if current is None:
            return []
    return _models(current)


def _unknown_key(root: type[BaseModel], raw: Loc, key: str) -> tuple[str, list[str]]:
    """The reason for an unknown ``key`` at ``raw`` (pydantic's loc), and the names it
    suggests instead."""
    parent_loc = raw[:-1]
    _, parent = walk(root, parent_loc)
    known = _keys(parent) if parent is not None else set()
    close = closest(key, known)
    tag = parent_loc[-1] if parent_loc else None
    members = _union_at(root, parent_loc[:-1]) if isinstance(tag, str) else []
    if parent is not None and not close and len(members) > 1 and isinstance(tag, str):
        field = _tag_field(parent, tag)
        having = [
            repr(value)
            for m in members
            if field is not None and m is not parent and key in _keys(m) and field in m.model_fields
            for value in get_args(_unwrap(m.model_fields[field].annotation))
        ]
        if having:
            return f"unknown key for {field} = {tag!r} (a key of {field} = {', '.join(having)})", []
    return f"unknown key{did_you_mean(key, known)}", close


def _item(members: Sequence[Any], part: int | str) -> Any:
    """The annotation of one item of a list, tuple or dict among ``members``."""
    for member in members:
        origin, args = get_origin(member), get_args(member)
        if origin in (list, set, frozenset) and args:
            return args[0]
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return args[0]
            return args[part] if isinstance(part, int) and part < len(args) else None
        if origin in (dict, Mapping) and len(args) == 2:
            return args[1]
    return None


def describe(
    error: ValidationError,
    root: type[BaseModel],
    origin: str,
    blame: Mapping[Loc, str] | None = None,
) -> str:
    """``<origin>: <field path>: <reason>[ (and N more)]``, one line.

    ``blame`` maps a field path (as pydantic gives it, tags left out) to the environment
    variable that set it: that variable is named instead of ``origin`` (the file).
    """
    try:
        return _describe(error, root, origin, blame)
    except Exception:  # a model shape this walk does not know: pydantic's own words, still one line
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        return f"{origin}: {where}: {first['msg']}".replace("\n", " ")


def _describe(
    error: ValidationError, root: type[BaseModel], origin: str, blame: Mapping[Loc, str] | None
) -> str:
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc, _ = walk(root, tuple(first["loc"]))
    reason = str(first["msg"]).removeprefix("Value error, ")
    explained: set[Loc] = set()
    if first["type"] == "extra_forbidden" and loc:
        reason, suggested = _unknown_key(root, tuple(first["loc"]), str(loc[-1]))
        # The key the typo left missing is the same mistake, not one more.
        explained = {(*loc[:-1], name) for name in suggested}
    others = [
        e
        for e in errors
        if e is not first
        and not (e["type"] == "missing" and walk(root, tuple(e["loc"]))[0] in explained)
    ]
    where = ".".join(str(part) for part in loc) or "(top level)"
    for depth in range(len(loc), 0, -1):
        if blame and loc[:depth] in blame:
            origin = blame[loc[:depth]]
            break
    more = f" (and {len(others)} more)" if others else ""
    return " ".join(f"{origin}: {where}: {reason}{more}".splitlines())
