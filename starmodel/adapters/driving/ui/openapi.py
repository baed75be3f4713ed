"""The OpenAPI 3.1 document of an app's generated JSON APIs, built from the entities' pydantic
schemas (public fields only: server-only fields are never described, nor accepted)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import create_model

from starmodel.core.entity import Entity
from starmodel.core.fields import editable_fields

if TYPE_CHECKING:
    from starmodel.adapters.driving.ui.api import JsonApi

__all__ = ["openapi_document"]

REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["detail"],
}


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    components.update(schema.pop("$defs", {}))
    return schema


def _output_schema(entity_cls: type[Entity], components: dict[str, Any]) -> dict[str, Any]:
    schema = _hoist(entity_cls.model_json_schema(ref_template=REF, mode="serialization"), components)
    hidden = entity_cls.__starmodel_server_only__
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in hidden}
    schema["required"] = [k for k in schema.get("required", []) if k not in hidden]
    schema["title"] = entity_cls.__name__
    return schema


def _input_schema(
    entity_cls: type[Entity], name: str, *, creating: bool, components: dict[str, Any]
) -> dict[str, Any]:
    fields = {
        field: (info.annotation, info)
        for field, info in entity_cls.model_fields.items()
        if field in editable_fields(entity_cls, creating=creating)
    }
    model = create_model(name, **fields)  # type: ignore[call-overload]
    schema = _hoist(model.model_json_schema(ref_template=REF), components)
    schema["additionalProperties"] = False
    if not creating:
        schema.pop("required", None)  # PATCH: any subset of the fields
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "Unreadable request",
        401: "Not signed in",
        403: "Not allowed",
        404: "No such record",
        409: "Changed meanwhile",
        412: "The record changed since the ETag given in If-Match",
        415: "Not JSON",
        422: "Invalid values (one message per field)",
        503: "Store unavailable",
    }
    return {str(code): {"description": texts[code], **_json(_ref("Error"))} for code in codes}


def _change(
    name: str, verb: str, summary: str, one: dict[str, Any], if_match: dict[str, Any]
) -> dict[str, Any]:
    """A PATCH or PUT operation on one record."""
    return {
        "tags": [name],
        "summary": summary,
        "operationId": f"{verb}{name}",
        "parameters": [if_match],
        "requestBody": {"required": True, **_json(_ref(f"{name}Update"))},
        "responses": {"200": one, **_errors(400, 401, 403, 404, 409, 412, 415, 422, 503)},
    }


def _paths(api: JsonApi, components: dict[str, Any]) -> dict[str, Any]:
    entity_cls = api.entity_cls
    name = entity_cls.__name__
    components[name] = _output_schema(entity_cls, components)
    components[f"{name}Create"] = _input_schema(
        entity_cls, f"{name}Create", creating=True, components=components
    )
    components[f"{name}Update"] = _input_schema(
        entity_cls, f"{name}Update", creating=False, components=components
    )
    components[f"{name}Page"] = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "pages": {"type": "integer"},
        },
        "required": ["items", "total", "page", "per_page", "pages"],
    }
    tag = [name]
    key = {
        "name": "key",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": f"The {name}'s primary key",
    }
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "The ETag the change is based on; refused with 412 if the record changed since",
    }
    list_params = [
        {
            "name": "q",
            "in": "query",
            "schema": {"type": "string", "maxLength": 200},
            "description": "Search text",
        },
        {
            "name": "sort",
            "in": "query",
            "schema": {"type": "string"},
            "description": "A field to sort by; a leading '-' sorts descending",
        },
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    ]
    one = {
        "description": f"The {name}",
        **_json(_ref(name)),
        "headers": {"ETag": {"schema": {"type": "string"}, "description": "The record's version"}},
    }
    return {
        api.path: {
            "get": {
                "tags": tag,
                "summary": f"List {name} records",
                "operationId": f"list{name}",
                "parameters": list_params,
                "responses": {
                    "200": {"description": "One page", **_json(_ref(f"{name}Page"))},
                    **_errors(401, 403, 422, 503),
                },
            },
            "post": {
                "tags": tag,
                "summary": f"Create a {name}",
                "operationId": f"create{name}",
                "requestBody": {"required": True, **_json(_ref(f"{name}Create"))},
                "responses": {
                    "201": {**one, "description": "Created"},
                    **_errors(400, 401, 403, 415, 422, 503),
                },
            },
        },
        api.path + "/{key}": {
            "parameters": [key],
            "get": {
                "tags": tag,
                "summary": f"Read a {name}",
                "operationId": f"get{name}",
                "responses": {"200": one, **_errors(401, 403, 404, 503)},
            },
            "patch": _change(name, "update", f"Change some fields of a {name}", one, if_match),
            "put": _change(name, "replace", f"Replace the fields of a {name}", one, if_match),
            "delete": {
                "tags": tag,
                "summary": f"Delete a {name}",
                "operationId": f"delete{name}",
                "parameters": [if_match],
                "responses": {
                    "204": {"description": "Deleted"},
                    **_errors(400, 401, 403, 404, 409, 412, 503),
                },
            },
        },
    }


def openapi_document(apis: Iterable[JsonApi], *, title: str, version: str = "1.0.0") -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for api in apis:
        paths.update(_paths(api, components))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
