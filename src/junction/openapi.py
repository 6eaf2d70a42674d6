"""Export the OpenAPI description of one area of the API (its tag) to a file in docs/.

``python -m junction.openapi events`` writes ``docs/events-openapi.json``: the routes
tagged ``events`` and exactly the schemas they reference, so the file changes only when
those routes do. A test checks that the file is up to date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from junction.app import create_app
from junction.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _references(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
        for value in node.values():
            found |= _references(value)
        return found
    if isinstance(node, list):
        return set().union(*(_references(item) for item in node)) if node else set()
    return set()


def openapi_for_tag(tag: str) -> dict[str, Any]:
    full = create_app(Settings(job_modules=[])).openapi()
    paths = {
        path: operations
        for path, operations in full["paths"].items()
        if any(tag in operation.get("tags", ()) for operation in operations.values())
    }
    schemas = full.get("components", {}).get("schemas", {})
    needed = _references(paths)
    while True:
        more = set().union(*(_references(schemas[name]) for name in needed)) - needed
        if not more:
            break
        needed |= more
    components: dict[str, Any] = {"schemas": {n: schemas[n] for n in sorted(needed)}}
    if "securitySchemes" in full.get("components", {}):
        components["securitySchemes"] = full["components"]["securitySchemes"]
    return {
        "openapi": full["openapi"],
        "info": {**full["info"], "title": f"Junction: {tag}"},
        "paths": paths,
        "components": components,
    }


def rendered(tag: str) -> str:
    return json.dumps(openapi_for_tag(tag), indent=2, sort_keys=True) + "\n"


def export_path(tag: str) -> Path:
    return DOCS / f"{tag}-openapi.json"


def main(argv: list[str]) -> None:
    for tag in argv or ["events"]:
        export_path(tag).write_text(rendered(tag))
        print(f"wrote {export_path(tag)}")


if __name__ == "__main__":
    main(sys.argv[1:])
