"""What both web faces of the site (the REST API in site/api/ and the console) share: the
request's site context, who is calling and whether the action is allowed, the audit row
around every change, and the one error shape. No routes live here."""
