"""The site server: site database, content library, signing key, admin and client APIs."""
