"""The OpenAPI 3.1 document of the facade (served at /uapi/openapi.json).

The package's front door: ``openapi_document`` builds the document, ``openapi_endpoint`` serves
it.  Its parts are modules of their own: :mod:`api.openapi.paths` (every operation and its
answers), :mod:`api.openapi.parameters` (the path and query parameters operations share),
:mod:`api.openapi.schemas` (the component schemas of every body; those of the request
bodies are generated from their models in :mod:`api.create_bodies` and :mod:`api.action_body`)
and :mod:`api.openapi.document` (the whole, with servers and security schemes).
``tests/api/test_openapi.py`` checks that every route of the app is documented and every
documented path is routed.
"""

from __future__ import annotations

from api.openapi.document import openapi_document, openapi_endpoint

__all__ = ["openapi_document", "openapi_endpoint"]
