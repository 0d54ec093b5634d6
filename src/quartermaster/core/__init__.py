"""Pure building blocks shared by every part: manifests, hashing, signing, ids, status catalog.

Nothing in here imports the site, the distribution point, the client or a face.
"""
