"""The site's HTTP control plane: admin API, client API (management point) and DP API."""
