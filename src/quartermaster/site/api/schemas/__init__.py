"""The request and response models of the site's APIs, one module per resource. The REST
routes (site/api/routes/) and the console both validate with these, so a form and a JSON
body obey the same bounds."""
