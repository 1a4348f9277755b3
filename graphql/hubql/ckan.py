"""The data products through CKAN's action API, read-only, so CKAN clients (``ckanapi``, the scripts people
point at energy portals) work against the hub unchanged.

Served under both paths CKAN serves, ``/api/3/action/<action>`` and ``/api/action/<action>``, by GET
(query parameters) and POST (a JSON object), answering in CKAN's envelope ``{"help", "success",
"result"}``, errors as CKAN gives them (``success: false`` and ``error: {"__type", "message"}``: 404 Not
Found Error, 409 Validation Error and Search Query Error, 400 Bad Request, 401 Authorization Error).

Actions: ``package_list`` (``limit``, ``offset``), ``package_show`` (``id``: the producer id or the
package's id), ``package_search`` (``q``, ``fq``, ``rows``, ``start``, ``sort``) and
``organization_list`` (``all_fields``, ``limit``, ``offset``). One data product
(:mod:`hub.data_products`, the model the DCAT catalogue is made from) is one package; its organisation is
its publisher.

The caller is identified as on every route (:mod:`hubql.callers`), and the token may come bare, with no
scheme, as CKAN clients send it. A product whose metadata label the caller does not satisfy does not
exist for that caller: ``package_show`` answers it as an unknown id, and lists, search counts and
organisations (and their package counts) leave it out.

Search is over the few fields a package has, in memory: ``q`` and ``fq`` are whitespace-separated terms,
all of which must hold: ``field:value`` (``field:"two words"``, ``value*`` for a prefix, ``*`` for any),
``field:(a OR b)`` for any of them, a bare word (in the name, title, notes, tags, organisation or
extras), ``-`` before a term negates it,
``*:*`` matches everything. Fields: ``name``, ``id``, ``title``, ``notes``, ``organization``, ``tags``,
``res_format``, ``license_id``, ``text`` and the extras (``sensitivity_class`` or
``extras_sensitivity_class``, ...). An unknown field is a Search Query Error, as in CKAN.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.auth import AuthError
from hub.caller import Caller
from hub.data_products import DataProduct, DataProducts, iso_duration
from hub.quality import ProductQuality
from hub.settings import Settings
from hubql.callers import http_caller, unauthorized

router = APIRouter()

# CKAN's own defaults: ten rows a page, never more than a thousand (``ckan.search.rows_max``).
DEFAULT_ROWS: Final = 10
MAX_ROWS: Final = 1000
# Package and organisation ids are UUIDs in CKAN; ours are derived from the contract id and the
# organisation's name, so they are stable across restarts.
ID_NAMESPACE: Final = uuid.UUID("5f0c7a52-3d2b-4c3e-9a51-0c6a8f1e2b7d")
# The fields a search term may name: the package's own, and its extras (bare or as ``extras_<key>``).
FIELDS: Final = frozenset(
    {"name", "id", "title", "notes", "license_id", "version", "organization", "tags", "res_format", "text"}
)
EXTRAS: Final = (
    "producer",
    "contract_id",
    "contract_version",
    "contract_status",
    "sensitivity_class",
    "sensitivity",
    "access_rights",
    "update_frequency",
    "freshness_sla",
    "limitations",
)
_QUOTED: Final = r'"(?:[^"\\]|\\.)*"'
_TERM: Final = re.compile(
    rf"(?P<sign>[+-]?)(?:(?P<field>[A-Za-z_][\w.]*):)?(?P<value>{_QUOTED}|\((?:{_QUOTED}|[^()\"])*\)|\S+)"
)
_ALTERNATIVE: Final = re.compile(rf"{_QUOTED}|[^\s\"]+")


class CkanError(Exception):
    """An action's failure, answered as CKAN answers it."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str | None = None,
        fields: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message or kind)
        self.status = status
        self.error: dict[str, Any] = {"__type": kind, **(fields or {})}
        if message is not None:
            self.error["message"] = message


def _not_found() -> CkanError:
    # The same answer for a product that does not exist and one the caller may not know of.
    return CkanError(404, "Not Found Error", "Not found")


def _invalid(field: str, message: str) -> CkanError:
    return CkanError(409, "Validation Error", fields={field: [message]})


@dataclass(frozen=True, slots=True)
class Term:
    negated: bool
    field: str | None
    values: tuple[str, ...]  # the term holds when any of them matches


def parse_query(text: str, param: str) -> list[Term]:
    """The terms of a ``q`` or ``fq`` (see the module's docstring)."""
    terms: list[Term] = []
    for match in _TERM.finditer(text):
        field, value = match["field"], match["value"]
        alternatives: tuple[str, ...] = (value,)
        if value.startswith('"'):
            alternatives = (_unquote(value),)
        elif field is not None and value.startswith("(") and value.endswith(")"):
            # field:(a OR b OR "c d"): any of them.
            words = _ALTERNATIVE.findall(value[1:-1])
            if (
                not words
                or words[0] == "OR"
                or words[-1] == "OR"
                or any((w == "OR") == (i % 2 == 0) for i, w in enumerate(words))
            ):
                raise CkanError(
                    409,
                    "Search Query Error",
                    f"Search Query is invalid: {param}={text!r}: {value!r}: expected (a OR b ...)",
                )
            alternatives = tuple(_unquote(w) for w in words[::2])
        elif field is None and value == "AND":
            continue  # every term must hold anyway
        elif field is None and (value in ("OR", "NOT") or value[0] in "()"):
            raise CkanError(
                409,
                "Search Query Error",
                f"Search Query is invalid: {param}={text!r}: {value!r} is not supported",
            )
        if field == "*" or (field is None and value == "*:*"):
            continue
        if field is not None and field not in FIELDS and field.removeprefix("extras_") not in EXTRAS:
            raise CkanError(409, "Search Query Error", f"Search Query is invalid: undefined field {field}")
        terms.append(Term(match["sign"] == "-", field, alternatives))
    return terms


def _unquote(value: str) -> str:
    if value.startswith('"') and value.endswith('"') and len(value) > 1:
        text: str = json.loads(value)
        return text
    return value.strip('"')


class CkanPortal:
    """The data products (:mod:`hub.data_products`) as CKAN packages and organisations."""

    def __init__(self, settings: Settings, products: DataProducts) -> None:
        self.settings = settings
        self.products = products

    def package(
        self, product: DataProduct, base: str, quality: ProductQuality | None = None
    ) -> dict[str, Any]:
        c = product.contract
        package_id = str(uuid.uuid5(ID_NAMESPACE, c.id))
        tags = [*product.classes, *product.domains]
        extras: dict[str, str] = {
            "producer": c.producer,
            "contract_id": c.id,
            "contract_version": c.version,
            "contract_status": c.status,
            "sensitivity_class": c.sensitivity,
            "sensitivity": product.sensitivity_name,
            "access_rights": product.access_right,
            "update_frequency": iso_duration(c.frequency.seconds),
            "freshness_sla": iso_duration(c.freshness.seconds),
            "limitations": c.limitations,
        }
        assert set(extras) == set(EXTRAS)  # the fields search knows, the same whoever asks
        if quality is not None:
            # Measured over what the caller may see (hub/quality.py); shown, not searched.
            extras.update(measured_extras(quality))
        emails = [u.removeprefix("mailto:") for u in c.contacts if u.startswith("mailto:")]
        resources = [
            {
                "id": str(uuid.uuid5(ID_NAMESPACE, f"{c.id}#{d.key}")),
                "package_id": package_id,
                "name": d.title,
                "description": d.description,
                "url": d.url,
                "format": d.format,
                "mimetype": d.media_type,
                "resource_type": d.key,
                "position": position,
                "state": "active",
            }
            for position, d in enumerate(product.distributions(base))
        ]
        return {
            "id": package_id,
            "name": c.producer,
            "title": c.name,
            "type": "dataset",
            "state": "active",
            "private": False,
            "notes": c.purpose,
            "version": c.version,
            "url": product.contract_url(base),
            "author": c.owner,
            "author_email": emails[0] if emails else None,
            "maintainer": c.owner,
            "maintainer_email": emails[0] if emails else None,
            "license_id": product.licence_id,
            "license_title": product.licence_title,
            "license_url": c.licence,
            "owner_org": self.organization(product.publisher, 0)["id"],
            "organization": self.organization(product.publisher, None),
            "tags": [
                {
                    "name": t,
                    "display_name": t,
                    "id": str(uuid.uuid5(ID_NAMESPACE, f"tag:{t}")),
                    "state": "active",
                }
                for t in tags
            ],
            "num_tags": len(tags),
            "extras": [{"key": k, "value": v} for k, v in extras.items()],
            "resources": resources,
            "num_resources": len(resources),
            "groups": [],
            "relationships_as_object": [],
            "relationships_as_subject": [],
        }

    def organization(self, name: str, package_count: int | None) -> dict[str, Any]:
        found: dict[str, Any] = {
            "id": str(uuid.uuid5(ID_NAMESPACE, f"organization:{name}")),
            "name": name,
            "title": name,
            "display_name": name,
            "description": "",
            "image_url": "",
            "type": "organization",
            "is_organization": True,
            "state": "active",
            "approval_status": "approved",
        }
        if package_count is not None:
            found["package_count"] = package_count
        return found

    # --- actions --------------------------------------------------------------------------------------

    def package_list(
        self, caller: Caller, params: Mapping[str, Any], base: str, measured: Mapping[str, ProductQuality]
    ) -> list[str]:
        names = [p.producer for p in self.products.visible(caller)]
        return _page(names, params)

    def package_show(
        self, caller: Caller, params: Mapping[str, Any], base: str, measured: Mapping[str, ProductQuality]
    ) -> dict[str, Any]:
        wanted = params.get("id") or params.get("name_or_id")
        if not isinstance(wanted, str) or not wanted:
            raise _invalid("id", "Missing value")
        for product in self.products.visible(caller):
            package = self.package(product, base, measured.get(product.producer))
            if wanted in (package["name"], package["id"]):
                return package
        raise _not_found()

    def package_search(
        self, caller: Caller, params: Mapping[str, Any], base: str, measured: Mapping[str, ProductQuality]
    ) -> dict[str, Any]:
        terms = [
            *parse_query(_text(params, "q"), "q"),
            *parse_query(_text(params, "fq"), "fq"),
        ]
        packages = [self.package(p, base, measured.get(p.producer)) for p in self.products.visible(caller)]
        found = [p for p in packages if all(_holds(t, p) for t in terms)]
        found.sort(key=_sort_key(_text(params, "sort") or "name asc"), reverse=_descending(params))
        rows = min(_natural(params, "rows", DEFAULT_ROWS), MAX_ROWS)
        start = _natural(params, "start", 0)
        return {
            "count": len(found),
            "results": found[start : start + rows],
            "sort": _text(params, "sort") or "name asc",
            "facets": {},
            "search_facets": {},
        }

    def organization_list(
        self, caller: Caller, params: Mapping[str, Any], base: str, measured: Mapping[str, ProductQuality]
    ) -> list[Any]:
        counts: dict[str, int] = {}
        for product in self.products.visible(caller):
            counts[product.publisher] = counts.get(product.publisher, 0) + 1
        names = _page(sorted(counts), params)
        if _flag(params, "all_fields"):
            return [self.organization(n, counts[n]) for n in names]
        return names


Action = Callable[[CkanPortal, Caller, Mapping[str, Any], str, Mapping[str, ProductQuality]], Any]
# The actions whose answers hold packages, and so the quality measured for the caller.
MEASURED: Final = frozenset({"package_show", "package_search"})
ACTIONS: Final[dict[str, Action]] = {
    "package_list": CkanPortal.package_list,
    "package_show": CkanPortal.package_show,
    "package_search": CkanPortal.package_search,
    "organization_list": CkanPortal.organization_list,
}
_TEXT_FIELDS: Final = ("title", "notes")


def measured_extras(pq: ProductQuality) -> dict[str, str]:
    """A product's quality as CKAN extras (strings, as CKAN keeps them); empty where not measured."""
    q = pq.measured

    def text(value: float | int | None) -> str:
        return "" if value is None else (str(value) if isinstance(value, int) else f"{value:.6g}")

    extras = {
        "object_count": text(q.objects),
        "last_update": q.last_update.isoformat() if q.last_update else "",
        "temporal_start": q.coverage.start.isoformat() if q.coverage.start else "",
        "temporal_end": q.coverage.end.isoformat() if q.coverage.end else "",
        "spatial_bbox": ",".join(str(v) for v in q.coverage.bbox) if q.coverage.bbox else "",
        "events_per_minute": text(q.events_per_minute),
        "freshness_p50_s": text(q.freshness_p50_s),
        "freshness_p99_s": text(q.freshness_p99_s),
        "dead_letter_rate": text(q.dead_letter_rate),
        "open_flags": text(pq.open_flags),
    }
    for c in q.counts:
        extras[f"object_count:{c.class_name}"] = text(c.count)
    for a in q.completeness:
        extras[f"completeness:{a.class_name}:{a.attribute}"] = text(a.ratio)
    return extras


def _field_values(field: str, package: Mapping[str, Any]) -> list[str] | None:
    """What ``field`` holds in ``package`` (None: the field does not exist)."""
    extras = {e["key"]: e["value"] for e in package["extras"]}
    if field in ("name", "id", "title", "notes", "license_id", "version"):
        return [str(package[field])]
    if field == "organization":
        return [package["organization"]["name"]]
    if field == "tags":
        return [t["name"] for t in package["tags"]]
    if field == "res_format":
        return [r["format"] for r in package["resources"]]
    if field == "text":
        return [
            package["name"],
            package["title"],
            package["notes"],
            package["organization"]["name"],
            *(t["name"] for t in package["tags"]),
            *extras.values(),
        ]
    key = field.removeprefix("extras_")
    if key in extras:
        return [extras[key]]
    return None


def _holds(term: Term, package: Mapping[str, Any]) -> bool:
    field = term.field or "text"
    values = _field_values(field, package) or []
    found = any(_holds_one(field, wanted.lower(), values) for wanted in term.values)
    return found != term.negated


def _holds_one(field: str, wanted: str, values: list[str]) -> bool:
    if wanted == "*":
        found = bool(values)
    elif field in (*_TEXT_FIELDS, "text"):
        # Free text: every word of the value is a word (or, with ``*``, a word's prefix) of the field.
        words = {w for v in values for w in re.findall(r"\w+", v.lower())}
        found = all(_matches(w, words) for w in re.findall(r"\w+\*?", wanted))
    else:
        found = _matches(wanted, {v.lower() for v in values})
    return found


def _matches(wanted: str, values: set[str]) -> bool:
    if wanted.endswith("*"):
        return any(v.startswith(wanted[:-1]) for v in values)
    return wanted in values


def _sort_key(sort: str) -> Callable[[Mapping[str, Any]], str]:
    field = sort.split(",")[0].split()[0] if sort.strip() else "name"
    field = {"title_string": "title", "score": "name", "metadata_modified": "name"}.get(field, field)
    if field not in ("name", "title", "id"):
        raise CkanError(409, "Search Query Error", f"Search Query is invalid: cannot sort by {field}")
    return lambda package: str(package[field]).lower()


def _descending(params: Mapping[str, Any]) -> bool:
    parts = (_text(params, "sort") or "name asc").split(",")[0].split()
    return len(parts) > 1 and parts[1].lower() == "desc"


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(key, "Must be a string")
    return value


def _natural(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(key, "Invalid integer") from None
    if number < 0:
        raise _invalid(key, "Must be a natural number")
    return number


def _flag(params: Mapping[str, Any], key: str) -> bool:
    value = params.get(key)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _page(items: list[str], params: Mapping[str, Any]) -> list[str]:
    """``limit`` items from ``offset`` on (all of them when there is no limit)."""
    start = _natural(params, "offset", 0)
    return items[start : start + _natural(params, "limit", len(items))]


def _answer(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    # What the answer holds depends on who asks: no shared cache may keep it.
    merged = {"Cache-Control": "private, no-store", "Vary": "Authorization", **(headers or {})}
    return JSONResponse(body, status_code=status, headers=merged)


async def _params(request: Request) -> dict[str, Any]:
    """The action's parameters: the query string, and for a POST its JSON object or form."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        if body.strip():
            if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                params.update((await request.form()).items())
            else:
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise CkanError(400, "Bad Request", f"Bad request - JSON Error: {exc}") from None
                if not isinstance(data, dict):
                    raise CkanError(400, "Bad Request", "Bad request - JSON Error: not a JSON object")
                params.update(data)
    return params


async def action(request: Request, name: str) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    envelope: dict[str, Any] = {"help": f"{base}/api/3/action/help_show?name={name}"}
    try:
        caller = http_caller(request, bare_token=True)
    except AuthError as exc:
        refusal = unauthorized(exc)
        envelope |= {
            "success": False,
            "error": {"__type": "Authorization Error", "message": f"Access denied: {exc.reason}"},
        }
        return _answer(401, envelope, refusal.headers)
    try:
        found = ACTIONS.get(name)
        if found is None:
            raise CkanError(400, "Bad Request", f"Bad request - Action name not known: {name}")
        portal: CkanPortal = request.app.state.ckan
        measured: dict[str, ProductQuality] = {}
        if name in MEASURED:
            services = request.app.state.hub
            guard = services.guard(caller)
            for product in portal.products.visible(caller):
                measured[product.producer] = await services.quality(guard, product)
        result = found(portal, caller, await _params(request), base, measured)
    except CkanError as exc:
        return _answer(exc.status, envelope | {"success": False, "error": exc.error})
    return _answer(200, envelope | {"success": True, "result": result})


for _prefix in ("/api/3/action", "/api/action"):
    router.add_api_route(f"{_prefix}/{{name}}", action, methods=["GET", "POST"], include_in_schema=False)
