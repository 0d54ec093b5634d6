"""Distribution points: the registry, enrollment and DP credentials, which versions each DP
holds, what DP agents report, validation of bad copies, content locations for clients, and the
site's own embedded DP."""
