"""Pure building blocks shared by every part: manifests, hashing, signing, ids, status catalog.

Nothing in here imports the site, the distribution point, the client or a face.
"""

import sys

# httpx imports its own command-line tool at import time when click, rich and pygments are
# installed (they are, with typer): about 5 MB resident in every agent for code that never
# runs. Marking the module absent makes httpx skip it (it catches the ImportError).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
