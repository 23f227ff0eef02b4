"""JSON Schema of the API's models as the OpenAPI document writes it.

No titles or defaults. An optional request value reads ``null`` as left out, so it is written
``"type": [T, "null"]`` (:class:`RequestSchema`); an optional resource field is left out of
the JSON while it has no value, so it is written as ``T`` alone (:class:`ResourceSchema`), and
so is a query parameter or a form field, with its default (:class:`QuerySchema`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic.json_schema import models_json_schema as _models_json_schema
from pydantic_core import core_schema

REF_TEMPLATE = "#/components/schemas/{model}"


class RequestSchema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        kind = inner.get("type")
        if not isinstance(kind, str) or "$ref" in inner:
            return super().nullable_schema(schema)
        nullable = {**inner, "type": [kind, "null"]}
        if "enum" in nullable:
            nullable["enum"] = [*nullable["enum"], None]
        return nullable


class ResourceSchema(RequestSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        if json_schema.get("additionalProperties") is True:  # any object: JSON Schema's default
            del json_schema["additionalProperties"]
        return json_schema


def _inline(value: Any, hidden: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in hidden:
            return _inline(hidden[ref.rsplit("/", 1)[-1]], hidden)
        return {key: _inline(item, hidden) for key, item in value.items()}
    if isinstance(value, list):
        return [_inline(item, hidden) for item in value]
    return value


def component_schemas(
    models: Iterable[type[BaseModel]],
    generator: type[GenerateJsonSchema],
    *,
    mode: JsonSchemaMode = "validation",
    inline: Iterable[str] = (),
) -> dict[str, Any]:
    """components.schemas entries for ``models`` and the models they use; those named in
    ``inline`` are written out where they are used instead."""
    _, top = _models_json_schema(
        [(model, mode) for model in models], ref_template=REF_TEMPLATE, schema_generator=generator
    )
    defs: dict[str, Any] = top["$defs"]
    for schema in defs.values():
        schema.pop("title", None)
        schema.pop("description", None)  # docstrings are for the code
    for model in models:  # a model publishes the description its json_schema_extra gives
        extra = model.model_config.get("json_schema_extra")
        if isinstance(extra, dict) and "description" in extra:
            defs[model.__name__]["description"] = extra["description"]
    hidden = {name: defs.pop(name) for name in inline}
    return {name: _inline(schema, hidden) for name, schema in defs.items()}


class QuerySchema(ResourceSchema):
    """A query parameter (or form field) is absent or has a value: its type alone, with its
    default."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = self.generate_inner(schema["schema"])
        default = schema.get("default")
        if isinstance(default, bool | int | float | str):
            json_schema["default"] = default
        return json_schema
