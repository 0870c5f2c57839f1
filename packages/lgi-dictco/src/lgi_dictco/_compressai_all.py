"""All of compressai, imported quietly, sharing the ``ans`` module :mod:`lgi_dictco._compressai` loaded.

Importing this module is what the DCAE codec does first (``lgi_dictco.dcae``).
"""

from lgi_dictco._compressai import full

compressai = full()
