"""The answers every endpoint may give, added to each operation of the OpenAPI schema, so that a
client (and a schema checker) knows a 401, a 404 or a 429 is part of the contract."""

from __future__ import annotations

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "description": "What is wrong, by field or query parameter, in words for a person.",
}


def error_responses(result, generator, request, public):
    """drf-spectacular's postprocessing hook: 401, 404 and 429 everywhere, 400 where a body or a query is
    read."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(
        {"Error": ERROR, "FieldErrors": FIELD_ERRORS}
    )
    for operations in result["paths"].values():
        for operation in operations.values():
            answers = {
                "401": ("No valid token or session: the reason is in `detail`.", ["Error"]),
                "404": ("Not there (an object, a page of a list), or not for this user to see.", ["Error"]),
                "429": ("Too many requests for this token, or too many runs this hour.", ["Error"]),
            }
            if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
                # By field, or one `detail` when the body is no JSON at all.
                answers["400"] = ("The body or the query is not valid.", ["FieldErrors", "Error"])
            for code, (description, schemas) in answers.items():
                operation["responses"].setdefault(code, _response(description, *schemas))
    return result


def _response(description: str, *schemas: str) -> dict:
    """A JSON answer of one of `schemas` (the names of components)."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in schemas]
    return {
        "description": description,
        "content": {"application/json": {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}},
    }
