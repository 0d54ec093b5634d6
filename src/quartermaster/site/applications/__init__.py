"""Applications: records with immutable revisions (a package version, install and uninstall
programs, detection rules, requirements, run-as), the dependency and supersedence graph
(cycles refused when made), and compliance roll-ups per application. Deployments of
applications live in site/deployments/ like every other deployment."""
