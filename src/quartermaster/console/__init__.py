"""The web console: server-rendered pages over the site's own services (a face).

Only the composition point (`qm site serve`) imports it; nothing in site/ knows it exists.
"""

from quartermaster.console.app import create_console

__all__ = ["create_console"]
