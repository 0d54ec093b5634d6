"""The site's HTTP control plane: the admin API, the client API (management point) and the
DP API. `routes/` holds the routes (one module per resource), `schemas/` the request and
response models that the console shares, and `app.py` assembles them. Who may call a route,
the audit trail and the error shape are site/web/'s."""
