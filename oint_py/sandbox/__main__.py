"""`python -m oint_py.sandbox ARGS`: the detached child of `oint sandbox --background`."""

import sys

from oint_py.sandbox.command import sandbox

try:
    sandbox.main(sys.argv[1:], prog_name="oint sandbox", standalone_mode=False)
except Exception:  # the parent has read the first stdout line; nothing else is listening
    sys.exit(5)
