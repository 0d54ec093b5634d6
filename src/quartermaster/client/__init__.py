"""The client agent on a managed computer: policy, content cache, programs, status spool.

home.py describes the files it keeps; agent.py is one run; site_link.py is all it says to the site.
"""
