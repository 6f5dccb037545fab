"""One lock for the model stage's sections that change process-wide state.

torch's exporter and onnxruntime's quantization tools print to stdout, log
and warn, and symbolic shape inference writes into the current directory. The
stage quiets them with ``redirect_stdout``, logger levels,
``warnings.catch_warnings`` and ``chdir``: all process-wide.
``edgepack build --target all`` runs several targets' model stages on threads,
and unserialised, one thread's restore undid another's (stdout stayed a
StringIO for the rest of the run; a chdir went back into a deleted scratch
folder). Those sections take this lock; it is re-entrant, for nested ones.
"""

from __future__ import annotations

import threading

PROCESS_STATE = threading.RLock()
