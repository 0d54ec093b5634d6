"""Identity and trust: administrator accounts and API tokens, who may do what, the audit log,
and the site's signing keys."""
