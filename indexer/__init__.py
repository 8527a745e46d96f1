"""The searchd library: files, models, vectors and the catalog.

Never prints, exits, reads the environment or knows about HTTP/CLI; edges in
``searchd/`` wire it together and translate its errors.
"""

__version__ = "0.1.0"
