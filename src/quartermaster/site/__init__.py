"""The site server, in rooms whose dependencies point one way (docs/architecture.md, and the
layers contract in pyproject.toml): api → web → targeting → deployments → applications →
content → distribution → context → identity → status → the base modules beside this file
(the schema, the database, the content library, the rule language, the policy serial).
server.py runs one site process; setup.py makes a new site home."""
