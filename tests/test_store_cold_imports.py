"""A cold `imgcap search` does not import pandas through sqlite-utils (0.2-0.3 s when the `ray`
extra has installed it), and pandas still imports later in the same process."""

from __future__ import annotations

import subprocess
import sys


def test_store_import_leaves_pandas_out_and_importable():
    code = (
        "import importlib.util, sys\n"
        "import indexer.store, sqlite_utils.db\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
        "assert sqlite_utils.db.pd is None\n"
        "if importlib.util.find_spec('pandas') is not None:\n"
        "    import pandas\n"
        "    print('pandas', pandas.__version__)\n"
        "else:\n"
        "    print('no pandas')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(("pandas ", "no pandas"))
