"""Names of the client API that the site and the client agent must spell alike
(docs/protocol.md)."""

CLIENT_API = "/api/client/v1"
POLL_AFTER_HEADER = "QM-Poll-After"  # "poll for policy again within N seconds"
