"""The exported OpenAPI of the events routes is complete and up to date."""

from __future__ import annotations

import json

from junction.openapi import export_path, rendered


def test_docs_file_is_up_to_date() -> None:
    assert export_path("events").read_text() == rendered("events"), (
        "run `uv run python -m junction.openapi events`"
    )


def test_routes_document_parameters_examples_and_error_shapes() -> None:
    spec = json.loads(rendered("events"))
    assert set(spec["paths"]) == {
        "/api/v1/events", "/api/v1/events/sync", "/api/v1/events/sync/runs", "/search",
    }  # fmt: skip
    listing = spec["paths"]["/api/v1/events"]["get"]
    assert [p["name"] for p in listing["parameters"]] == [
        "starts_at",
        "ends_at",
        "page",
        "per_page",
    ]
    assert all(p.get("description") for p in listing["parameters"])
    errors = listing["responses"]["422"]
    assert errors["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorsBody")
    assert "example" in errors["content"]["application/json"]
    search_error = spec["paths"]["/search"]["get"]["responses"]["400"]
    assert search_error["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SearchErrorResponse"
    )
    assert spec["components"]["schemas"]["EventsPage"]["examples"]
    assert "HTTPValidationError" not in json.dumps(spec)
