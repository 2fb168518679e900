"""HTTP plumbing shared by the faces (wire protocols, REST API, pages) and nothing else.

One error path (domain errors and DRF's own as ``{"error", "detail"}`` JSON,
``WWW-Authenticate`` on every 401, JSON 404/500 handlers), the msgpack
parser and renderer, Bearer authentication, the throttling of failed sign-ins
and tokens (``throttle``, with this package's one table), request context and the
instruments (counters) that push, fetch and errors are measured with.
"""
