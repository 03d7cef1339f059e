"""The OpenAPI document, built from the agent's real schemas.

Clients generate code from it and the pipeline runner reads it, so /run is described with
the exact input and output schemas, not a generic object. Nested ``$defs`` move to
``components/schemas`` because a ``#/$defs`` pointer is relative to the document root.
"""

from __future__ import annotations

import copy
from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
                "requestId": {"type": "string"},
                "retryAfterSeconds": {"type": "number"},
            },
        }
    },
}


def _relocate(schema: dict[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    defs = {**schema.pop("$defs", {}), **schema.pop("definitions", {})}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
                node = {**node, "$ref": f"#/components/schemas/{prefix}{ref.rsplit('/', 1)[1]}"}
            elif isinstance(ref, str) and ref == "#":
                node = {**node, "$ref": f"#/components/schemas/{prefix}"}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, sub in defs.items():
        out[f"{prefix}{name}"] = rewrite(sub)
    return rewrite(schema)  # type: ignore[no-any-return]


def build_openapi(
    name: str, input_schema: dict[str, Any], output_schema: dict[str, Any], bearer: bool = False
) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    components["AgentInput"] = _relocate(input_schema, "AgentInput", components)
    components["AgentOutput"] = _relocate(output_schema, "AgentOutput", components)

    def err(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    plain = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    run_errors = {
        "400": err("The body is not JSON (or nested too deeply)"),
        "408": err("The body did not arrive within the body timeout"),
        "413": err("The body exceeds maxBodyBytes"),
        "415": err("The Content-Type is not JSON"),
        "422": err("The input does not match the input schema; details name the failing paths"),
        "429": err("Over maxInFlight + queueSize; honour Retry-After"),
        "500": err("A runtime failure; the log has the request id"),
        "502": err("The model provider failed or its output stayed invalid"),
        "503": err("Draining, not ready (a missing context file), or the provider is "
                   "rate-limiting (Retry-After)"),
        "504": err("The request deadline or the model timeout expired"),
    }  # fmt: skip
    security: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    if bearer:
        run_errors["401"] = err("Missing or wrong bearer token")
        security = {"security": [{"bearer": []}]}
        schemes = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"atomic agent {name}", "version": "v1alpha1"},
        "paths": {
            "/run": {
                "post": {
                    "operationId": "run",
                    "summary": f"Run the {name} agent once",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/AgentInput"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The agent's output, valid against its output schema",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/AgentOutput"}
                                }
                            },
                        },
                        **dict(sorted(run_errors.items())),
                    },
                    **security,
                }
            },
            "/schema": {
                "get": {"operationId": "schema", "responses": {"200": {"description": "OK"}}}
            },
            "/healthz": {"get": {"operationId": "healthz", "responses": {"200": plain}}},
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {"200": plain, "503": {"description": "Starting or draining"}},
                }
            },
            "/metrics": {"get": {"operationId": "metrics", "responses": {"200": plain}}},
        },
        "components": {"schemas": components, **schemes},
    }
